"""Stage 3 of `featsel score`: the diagnostics of every scored featurizer, as plain dicts.

Per candidate (and control): the class-grouped Sinkhorn coupling between the plan's two
disjoint draws, every criterion registered in ``featsel.diagnostics.criteria.CRITERIA`` on the
draws' pool (effective rank per block, Delta_OT per tau per block and class with bootstrap
intervals, the generation-space criteria...), the Delta_OT(n) curve at the ranking tau when
asked, and the alignment R^2 to every evaluation featurizer.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from torch import Tensor

from featsel.scoring.config import ScoreConfig
from featsel.scoring.featurize import ScoreFeatures
from featsel.scoring.plan import ScorePlan
from featsel.scoring.progress import Progress, Timer

__all__ = ["diagnose"]


def diagnose(plan: ScorePlan, features: ScoreFeatures, cfg: ScoreConfig,
             timer: Timer) -> dict[str, dict]:
    """spec -> that candidate's diagnostics (JSON-able but for numpy values), in scoring
    order; each stage timed under its name, one progress bar over all of them."""
    from featsel.diagnostics.criteria import CRITERIA

    crits = [c for c in CRITERIA.values() if c.enabled(cfg)]
    n_stages = len(crits) + 2 + int(cfg.curve)  # criteria, coupling, alignment, curve
    # + the draws each criterion reports (Delta_OT's, the transport criteria's, the flow's steps)
    per_cand = n_stages + sum(c.draws(cfg) for c in crits)
    progress = Progress(cfg.progress, len(features.scored), per_cand)
    pool = (plan.u[plan.draw_index],
            plan.labels[plan.draw_index.numpy()] if plan.labels is not None else None)
    diagnostics: dict[str, dict] = {}
    for spec in features.scored:
        progress.candidate(spec)
        diagnostics[spec] = _diagnose_one(spec, plan, features, cfg, timer, progress, pool)
    progress.close()
    return diagnostics


def _diagnose_one(spec: str, plan: ScorePlan, features: ScoreFeatures, cfg: ScoreConfig,
                  timer: Timer, progress: Progress,
                  pool: tuple[Tensor, np.ndarray | None]) -> dict:
    """One scored featurizer's diagnostics; ``pool``: the draws' pool, u ``(n_draw_pool, ...)``
    and labels ``(n_draw_pool,)`` or None."""
    from featsel.diagnostics import alignment_table, class_coupling
    from featsel.diagnostics.criteria import CRITERIA, CandidateData
    from featsel.diagnostics.stability import stability_curve

    u_keep, lab_keep = pool
    idx = plan.draw_index
    blocks = features.blocks[spec]
    d: dict[str, Any] = {"spec": spec, "map_names": list(features.featurizers[spec].map_names),
                         "control": spec in features.controls,
                         "blocks": {k: list(v.shape[1:]) for k, v in blocks.items()}}
    data = CandidateData(spec=spec, blocks={k: v[idx] for k, v in blocks.items()},
                         vector=features.vectors[spec][idx], u=u_keep, labels=lab_keep,
                         n=plan.n, seed=cfg.seed, settings=cfg, draw_hook=progress.draw_hook,
                         featurizer=features.featurizers[spec])
    progress.stage("coupling")
    with timer("coupling"):
        if plan.labels is not None:
            v, ia, ib = features.vectors[spec], plan.coupling_a, plan.coupling_b
            # tol and max_iter: the converged recipe (featsel.ot.CONVERGED)
            cp = class_coupling(v[ia], v[ib], x_labels=plan.labels[ia],
                                y_labels=plan.labels[ib], tau=cfg.tau)
            data.memo["coupling"] = cp
            d["coupling"] = cp.to_dict(include_plan=True)
    values: dict[str, dict] = {}
    for name, crit in CRITERIA.items():
        if not crit.enabled(cfg):
            continue
        progress.stage(name, done=1)
        with timer(name), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # left-out classes were reported once by the plan
            r = crit.compute(data)
        if r is not None:
            values[name] = r.to_dict()
    d["criteria"] = values
    if "rank" in data.memo:
        d["rank"] = data.memo["rank"].to_dict()
    if "stability" in data.memo:
        d["stability"] = data.memo["stability"].to_dict()
    if cfg.curve:
        progress.stage("Delta_OT(n) curve", done=1)
        with timer("delta_ot_curve"):
            # the point at the ranking's n is the table's Delta_OT (same draws)
            known = {plan.n: data.memo["stability"]} if "stability" in data.memo else None
            curve = stability_curve(data.blocks, ns=plan.curve_ns, tau=cfg.tau, labels=lab_keep,
                                    seed=cfg.seed, n_repeats=cfg.curve_repeats,
                                    recipe=cfg.recipe, max_sub_problems=cfg.max_locations,
                                    known=known)
        d["curve"] = curve.to_dict()
    progress.stage("alignment R^2", done=1)
    with timer("alignment"):
        if plan.evaluations:
            tab = alignment_table(features.vectors[spec],
                                  {e: features.vectors[e] for e in plan.evaluations},
                                  n_train=cfg.alignment_n_train, seed=cfg.seed)
            d["alignment"] = {e: r.to_dict() for e, r in tab.items()}
    return d
