"""Stage 5 of `featsel score`: results.json, results.csv and report.html (+ PNG figures).

``--out`` is checked before any work (:func:`prepare_out`); the outputs are built in a
temporary sibling folder and published in one step (``featsel.rundir.publish_dir``), so a
failed run leaves no partial output and an old folder stays until the new one replaces it.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from featsel.scoring.progress import Timer
from featsel.scoring.summarise import Summary

__all__ = ["jsonable", "prepare_out", "publish", "write_outputs"]


def prepare_out(out: str | os.PathLike | None, force: bool) -> Path | None:
    """Check ``--out`` before any work (featsel.rundir's rule): a non-empty folder needs
    ``force``; the old folder stays until the new one is published in one step."""
    from featsel.rundir import guard_replace

    if out is None:
        return None
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {str(out)!r} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ValueError(f"--out: {str(out)!r} is not empty; use --force to replace it")
        guard_replace(out)
    return out


def publish(summary: Summary, out_dir: Path | None, timer: Timer, *, force: bool) -> dict:
    """Add the timings to the results and, with ``out_dir``, write and publish the outputs
    (timed as "report"); returns the results, JSON-able."""
    from featsel.rundir import atomic_write_json, publish_dir, write_marker

    results = summary.results
    tmp = None
    if out_dir is not None:
        with timer("report"):
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp"))
            os.chmod(tmp, 0o755)  # mkdtemp makes 0700; a report folder is meant to be shared
            try:
                results["timings"] = dict(timer.times)
                write_outputs(results, tmp, summary.ranking.to_frame())
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    # the final timings include the report; results.json is rewritten with them
    results["timings"] = dict(timer.times)
    results["timings"]["total"] = float(sum(timer.times.values()))
    if tmp is not None:
        try:
            atomic_write_json(tmp / "results.json", jsonable(results))
            write_marker(tmp, "score", jsonable(results["settings"]))
            publish_dir(tmp, out_dir, force=force)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return jsonable(results)


def write_outputs(results: dict, out_dir: Path, frame: Any = None) -> None:
    """results.json, results.csv and report.html (+ figures) into ``out_dir``."""
    import pandas as pd

    from featsel.rundir import atomic_save, atomic_write_json
    from reports import build_report

    out_dir.mkdir(parents=True, exist_ok=True)
    clean = jsonable(results)
    atomic_write_json(out_dir / "results.json", clean)
    df = frame if frame is not None else pd.DataFrame(clean["ranking"]["table"])
    atomic_save(out_dir / "results.csv", lambda p: df.to_csv(p, index=False))
    build_report(clean, out_dir)


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy values as Python ones, tuples as lists, keys as strings and
    non-finite floats as None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
