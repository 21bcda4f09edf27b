"""One training run's folder, read back: the one place that knows its files.

    run/checkpoint.pt    step, config, weights        (generation.checkpoint, featsel train)
    run/eval.json        the latest evaluation        (generation.evaluate, featsel evaluate)
    run/eval_curve.json  one evaluation per step      (featsel validate / featsel select)

Every reader here returns None / {} for a file that is missing or unreadable (a run killed
before writing it), so the callers decide what an absent evaluation means.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from featsel.rundir import atomic_write

__all__ = ["EVAL_JSON", "EVAL_CURVE", "has_checkpoint", "checkpoint_step", "read_eval",
           "read_curve", "add_curve_point", "run_points", "point_complete", "write_json",
           "clean_json"]

EVAL_JSON = "eval.json"
EVAL_CURVE = "eval_curve.json"


def has_checkpoint(run: str | os.PathLike) -> bool:
    """Whether ``run`` holds a training checkpoint."""
    from generation.checkpoint import CHECKPOINT_NAME

    return (Path(run) / CHECKPOINT_NAME).is_file()


def checkpoint_step(run: str | os.PathLike, expect: Mapping[str, Any] | None = None) -> int | None:
    """The step of ``run``'s checkpoint (None without one). ``expect``: ``{config key: value}``;
    a checkpoint whose config holds another value for one of those keys raises ValueError
    naming ``--out`` (never continue someone else's run)."""
    from generation.checkpoint import CHECKPOINT_NAME, load_checkpoint

    run = Path(run)
    if not (run / CHECKPOINT_NAME).is_file():
        return None
    st = load_checkpoint(run / CHECKPOINT_NAME)
    have = st.get("config") or {}
    for k, want in (expect or {}).items():
        if k in have and have[k] != want:
            raise ValueError(f"--out: {str(run)!r} holds a run with {k}={have[k]!r}, not "
                             f"{want!r}; use another --out or delete that run")
    return int(st["step"])


def read_eval(run: str | os.PathLike) -> dict | None:
    """``run/eval.json`` (``generation.evaluate.evaluate_run``'s dict); None without one or
    when it is unreadable."""
    p = Path(run) / EVAL_JSON
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except ValueError:
        return None


def read_curve(run: str | os.PathLike) -> dict[int, dict]:
    """``{step: {"step", "budget", "alphas": {alpha: {space: {"fd", "cond_fd", "collapse",
    ...}}}}}`` from ``run/eval_curve.json``; {} without one (a run from before the curves, or
    one trained outside validate) or when it is unreadable."""
    p = Path(run) / EVAL_CURVE
    if not p.is_file():
        return {}
    try:
        return {int(pt["step"]): pt for pt in json.loads(p.read_text())["points"]}
    except (ValueError, KeyError, TypeError):
        return {}


def add_curve_point(run: str | os.PathLike, ev: dict, budget: int) -> dict[int, dict]:
    """Add (or replace) the point of evaluation ``ev`` (``evaluate_run``'s dict) in
    ``run/eval_curve.json`` (atomic); returns all points."""
    points = read_curve(run)
    points[int(ev["step"])] = {"step": int(ev["step"]), "budget": int(budget),
                               "alphas": ev["alphas"]}
    write_json(Path(run) / EVAL_CURVE, {"points": [points[k] for k in sorted(points)]})
    return points


def run_points(run: str | os.PathLike) -> dict[int, dict]:
    """A run's evaluated points: its curve, plus ``eval.json`` when the curve lacks that step
    (a run evaluated before the curves: its curve is the final point alone)."""
    points = dict(read_curve(run))
    ev = read_eval(run)
    if ev is not None and isinstance(ev.get("step"), int) and ev["step"] not in points:
        points[ev["step"]] = {"step": ev["step"], "alphas": ev.get("alphas") or {}}
    return points


def point_complete(point: dict | None, evaluations: list[str], alpha: float) -> bool:
    """Whether an evaluation (a curve point or ``eval.json``) holds, at guidance ``alpha``, the
    conditional FD and the collapse statistics of every evaluation space (older evaluations
    lack them and are evaluated again)."""
    got = ((point or {}).get("alphas") or {}).get(f"{float(alpha):g}") or {}
    return all("cond_fd" in got.get(e, {}) and "collapse" in got.get(e, {}) for e in evaluations)


def clean_json(obj: Any) -> Any:
    """``obj`` as strict JSON allows: string keys, lists for tuples, NaN / inf as None."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_json(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Strict JSON (NaN / inf written as null), atomically."""
    atomic_write(path, json.dumps(clean_json(obj), indent=1, allow_nan=False))
