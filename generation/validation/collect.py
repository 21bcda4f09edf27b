"""Collect the outcome of a `featsel validate` sweep: the FD of every (candidate, metric,
seed) from the jobs' ``eval.json``, and the diagnostics of the score that predict it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from generation.run import read_eval
from generation.validation.plan import Job

__all__ = ["FD_KINDS", "fd_metric", "collect_fd", "predictors", "ranking_predictor", "num"]


FD_KINDS = ("fd", "cond_fd")  # unconditional, conditional (mean of per-class FDs)


def fd_metric(kind: str, evaluation: str) -> str:
    """The name of one FD metric: ``fd[<space>]`` (unconditional) or ``cond_fd[<space>]``."""
    return f"{kind}[{evaluation}]"


def collect_fd(jobs: list[Job], evaluations: list[str], alpha: float) -> dict:
    """``{candidate: {metric: [FD per seed]}}`` from every job's ``eval.json``; two metrics per
    evaluation space, ``fd[<space>]`` and ``cond_fd[<space>]`` (`fd_metric`)."""
    fd: dict[str, dict[str, list[float]]] = {}
    key = f"{float(alpha):g}"
    for j in sorted(jobs, key=lambda j: (j.candidate, j.seed)):
        ev = read_eval(Path(j.run_dir))
        if ev is None or key not in ev.get("alphas", {}):
            raise FileNotFoundError(f"no evaluation at alpha={key} in {j.run_dir}/eval.json")
        row = fd.setdefault(j.candidate, {})
        for e in evaluations:
            entry = ev["alphas"][key].get(e)
            if entry is None:
                raise FileNotFoundError(f"no evaluation in space {e!r} in {j.run_dir}/eval.json")
            if "cond_fd" not in entry:
                raise ValueError(f"{j.run_dir}/eval.json predates the conditional FD (no "
                                 f"'cond_fd'); rerun featsel validate (--resume) or featsel "
                                 f"evaluate to re-evaluate it")
            for k in FD_KINDS:
                v = entry[k]
                row.setdefault(fd_metric(k, e), []).append(math.nan if v is None else float(v))
    return fd


def predictors(score: dict, cands: list[str], exclude) -> dict:
    """``{diagnostic: ({cand: value}, lower_is_better)}`` from the score results."""
    import numpy as np

    per = score["ranking"]["candidates"]
    out: dict[str, tuple[dict, bool]] = {}
    delta_keys = sorted({t for c in cands for t in per[c]["delta"]}, key=float)
    for t in delta_keys:
        out[f"delta_ot@{t}"] = ({c: per[c]["delta"][t]["mean"] for c in cands}, True)
    for k, lower in (("effective_rank", False), ("participation_ratio", False),
                     ("curve_slope", True)):
        vals = {c: per[c].get(k) for c in cands}
        if all(v is not None for v in vals.values()):
            out[k] = (vals, lower)
    if all(per[c].get("same_class_mass") is not None for c in cands):
        out["same_class_mass"] = ({c: per[c]["same_class_mass"] for c in cands}, False)
    # alignment R^2 to the evaluation spaces, over independent (not hacked) pairs only
    r2 = {}
    for c in cands:
        vals = [v for e, v in (per[c].get("alignment") or {}).items()
                if v is not None and (c, e) not in exclude]
        r2[c] = float(np.mean(vals)) if vals else math.nan
    if any(np.isfinite(v) for v in r2.values()):
        out["alignment_r2"] = (r2, False)
    # every registered criterion the score computed (featsel.diagnostics.criteria)
    from featsel.diagnostics.criteria import CRITERIA

    for name, crit in CRITERIA.items():
        vals = {c: (per[c].get("criteria") or {}).get(name, {}).get("mean") for c in cands}
        if all(v is not None for v in vals.values()):
            out[name] = (vals, crit.lower_is_better)
    return out


def ranking_predictor(score: dict, preds: dict, tau_key: str) -> str:
    """The predictor that ranked the candidates in the score (its criterion, else Delta_OT)."""
    crit = score["ranking"].get("criterion")
    return crit if crit in preds else f"delta_ot@{tau_key}"


def num(v: Any) -> float:
    """A float from a stored value (None and junk -> NaN)."""
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError):
        return math.nan
