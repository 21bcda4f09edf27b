"""Summarise a `featsel validate` sweep: the validation dict (ranks, the correlation of the
prediction with the outcome, the verdict) and whether the outcome can be trusted
(``training_health``: FD-vs-step curves, convergence, collapse)."""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from generation.run import clean_json, read_eval, run_points
from generation.validation.collect import (
    FD_KINDS,
    collect_fd,
    fd_metric,
    num,
    predictors,
    ranking_predictor,
)
from generation.validation.plan import Job, ValidateConfig, collapse_rule, eval_steps

__all__ = ["summarize", "repeatability", "verdict", "training_health", "final_evaluations",
           "collapse_report", "support_report"]


def summarize(cfg: ValidateConfig, cands: list[str], evals: list[str], jobs: list[Job],
              score: dict) -> dict:
    """The validation report from the score results and the jobs' eval.json files."""
    from featsel.confirmation import (
        compare_predictors,
        exclude_metrics,
        hacked_pairs,
        mean_fd_over_seeds,
        mean_fd_rank_excluding,
    )

    fd = collect_fd(jobs, evals, cfg.eval_alpha)
    metric_space = {fd_metric(k, e): e for e in evals for k in FD_KINDS}
    flags = score["ranking"].get("flags", [])
    same = [f for f in flags if "same network" in str(f.get("reason", ""))]
    exclude = hacked_pairs(cands, evals, flags if cfg.exclude_aligned else same)
    aligned = sorted(hacked_pairs(cands, evals, flags) - exclude)
    # a hacked (candidate, space) pair is left out of both FD metrics of that space
    exclude_m = exclude_metrics(exclude, metric_space)
    mean_fd = mean_fd_over_seeds(fd)
    table4 = mean_fd_rank_excluding(mean_fd, exclude_m)
    tau_key = f"{float(cfg.tau):g}"
    preds = predictors(score, cands, exclude)
    comp = compare_predictors(preds, fd, exclude=exclude_m, n_boot=cfg.n_boot, seed=cfg.seed)
    main_name = ranking_predictor(score, preds, tau_key)
    main = comp["per_predictor"][main_name]
    controls = [c for c in cands if c in set(score["ranking"].get("controls", []))]
    real = [c for c in cands if c not in controls]
    comp_real = None
    if controls and len(real) >= 3:  # the same, over the real candidates only
        comp_real = compare_predictors({k: ({c: v[c] for c in real}, lo)
                                        for k, (v, lo) in preds.items()},
                                       {c: fd[c] for c in real}, exclude=exclude_m,
                                       n_boot=cfg.n_boot, seed=cfg.seed)
    order_pred = [c for c in score["ranking"]["order"] if c in cands]
    mr = table4["mean_rank"]
    order_out = sorted([c for c in cands if math.isfinite(mr[c])], key=lambda c: (mr[c], c))
    rows = []
    for c in cands:
        r = {"candidate": c, "control": c in controls,
             "delta_ot_rank": order_pred.index(c) + 1,
             f"delta_ot@{tau_key}": preds[f"delta_ot@{tau_key}"][0][c],
             "mean_fd_rank": mr[c], "n_metrics_ranked": table4["n_metrics"][c],
             "n_seeds": len(next(iter(fd[c].values())))}
        for e in evals:
            for k in FD_KINDS:
                m = fd_metric(k, e)
                r[m] = mean_fd[c][m]
                r[f"{k}_rank[{e}]"] = table4["ranks"].get(m, {}).get(c, math.nan)
            r[f"hacked[{e}]"] = (c, e) in exclude
        rows.append(r)
    rows.sort(key=lambda r: (r["delta_ot_rank"]))
    text = verdict(main, order_pred, order_out, comp, len(cands),
                       label=score["ranking"].get("criterion") or "Delta_OT")
    # curves, convergence and collapse (kept apart from the ranking: collapsed runs still count)
    health = training_health(cfg, cands, evals, jobs, exclude_m)
    for r in rows:
        r["n_collapsed"] = health["collapse"]["per_candidate"][r["candidate"]]["n_collapsed"]
        sup = health["support"]["per_candidate"][r["candidate"]]
        r["n_off_data"] = sup["n_off_data"]
        r[f"precision[{health['support']['space']}]"] = sup["precision"]
    text = (text + " " + health.pop("caution")).strip()
    repeat = repeatability(fd, exclude_m, real, {main_name: preds[main_name]}, cfg.seed)
    if repeat and repeat["warning"]:
        health["warnings"].append(repeat["warning"])
    return clean_json({
        "title": f"featsel validate: {score['settings']['data']} ({len(cands)} candidates x "
                 f"{cfg.seeds} seeds, {cfg.budget} steps)",
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {**asdict(cfg), "candidates": cands, "evaluations": evals},
        "predicted_order": order_pred,
        "predictor": main_name,
        "controls": controls,
        "outcome_order": order_out,
        "table": rows,
        "mean_fd_rank": mr,
        "fd_metrics": [{"metric": fd_metric(k, e), "evaluation": e, "kind": k}
                       for e in evals for k in FD_KINDS],
        "fd_ranks": table4["ranks"],
        "fd": {c: {e: fd[c][fd_metric("fd", e)] for e in evals} for c in cands},
        "cond_fd": {c: {e: fd[c][fd_metric("cond_fd", e)] for e in evals} for c in cands},
        "metric_hacking": [
            {"candidate": c, "evaluation": e,
             "note": "trained in (or aligned with) this evaluation space: its FDs there (fd and "
                     "cond_fd) are not independent evidence and are left out of those metrics' "
                     "ranks"}
            for c, e in sorted(exclude)],
        "aligned_not_excluded": [
            {"candidate": c, "evaluation": e,
             "note": "features predict this evaluation space (alignment R^2 at or above the "
                     "score threshold): read this FD with care; kept in the rank "
                     "(exclude_aligned=False)"}
            for c, e in aligned],
        "correlation": {k: main[k] for k in ("spearman", "kendall", "spearman_ci", "kendall_ci",
                                             "spearman_p", "kendall_p", "n", "n_boot", "level",
                                             "n_seeds")},
        "predictors": comp["per_predictor"],
        "predictors_real": comp_real["per_predictor"] if comp_real else None,
        "correlation_real": ({k: comp_real["per_predictor"][main_name][k] for k in
                              ("spearman", "kendall", "spearman_ci", "kendall_ci", "spearman_p",
                               "kendall_p", "n", "n_seeds")} if comp_real else None),
        "best_predictor": comp["best"],
        "best_predictor_reason": comp["best_reason"],
        "verdict": text,
        "repeatability": repeat,
        "score_dir": "score",
        **health,
    })


def repeatability(fd: dict, exclude: Any, cands: list[str], preds: dict,
                  seed: int = 0) -> dict | None:
    """``seed_split_agreement`` over ``cands`` (summarize passes the real candidates: trained
    controls, trailing every half, would make any outcome look repeatable; fewer than 3 give
    NaN, no Kendall), with ``candidates`` and a ``warning`` (a sentence, or "") when the halves
    agree below ``REPEATABILITY_BAR``. None with fewer than 2 seeds."""
    from featsel.confirmation import REPEATABILITY_BAR, seed_split_agreement

    r = seed_split_agreement({c: fd[c] for c in cands}, exclude=exclude, predictors=preds,
                             seed=seed)
    if r is None:
        return None
    own = r["outcome"]["mean_kendall"]
    k, rest = r["seeds"]
    warning = ""
    if math.isfinite(own) and own < REPEATABILITY_BAR:
        warning = (f"the outcome is not repeatable across seeds: the mean FD ranks of {k} "
                   f"seed(s) and of the other {rest} agree at Kendall {own:+.2f} (mean over "
                   f"{r['n_splits']} splits; bar {REPEATABILITY_BAR:g}), so a ranking's agreement "
                   "with it says little about the ranking: run more --seeds")
    return {**r, "candidates": list(cands), "bar": REPEATABILITY_BAR, "warning": warning}


def verdict(main: dict, order_pred: list[str], order_out: list[str], comp: dict,
            n: int, label: str = "Delta_OT") -> str:
    """The one-paragraph verdict: did the ``label`` ranking predict the outcome (``main``: its
    correlation with the mean FD rank), was its first choice the best, and the best diagnostic."""
    rho, tau = main["spearman"], main["kendall"]
    lo, hi = main["spearman_ci"]
    if not order_out:
        top = "No candidate has an independent FD left after the metric-hacking exclusions."
    elif order_pred[0] not in order_out:
        top = (f"{label}'s first choice {order_pred[0]!r} has no independent FD (metric "
               f"hacking); the best by mean FD rank was {order_out[0]!r}.")
    else:
        top = (f"{label}'s first choice {order_pred[0]!r} "
               + ("was" if order_pred[0] == order_out[0] else "was not")
               + f" the best by mean FD rank ({order_out[0]!r}).")
    if not math.isfinite(rho):
        return (f"Not enough to judge: {n} candidate(s) or constant ranks give no defined rank "
                f"correlation. {top}").strip()
    one_seed = min(main["n_seeds"].values()) < 2
    if rho <= 0:
        word = "did NOT predict the outcome"
    elif one_seed:
        word = ("agreed with the outcome, but with one seed per candidate there is no interval "
                "over seeds (run more --seeds)")
    elif lo > 0 and main["spearman_p"] < 0.05:
        word = "predicted the outcome"
    elif lo > 0:
        word = (f"agreed with the outcome across seeds, but with {main['n']} candidates a random "
                f"order agrees as well with probability {main['spearman_p']:.2f} (permutation "
                "p-value): not distinguishable from chance")
    else:
        word = "leaned the right way, but the bootstrap interval over seeds includes 0 or less"
    return (f"The {label} ranking {word}: Spearman {rho:+.2f} (95% CI {lo:+.2f} to "
            f"{hi:+.2f}), Kendall {tau:+.2f}, over {main['n']} candidates. {top} "
            f"Best diagnostic: {comp['best_reason']}.")



def training_health(cfg: ValidateConfig, cands: list[str], evals: list[str], jobs: list[Job],
                    exclude: Any = ()) -> dict:
    """Can the outcome be trusted? From every job's ``eval_curve.json`` and ``eval.json``.

    Returns ``{"eval_steps": [S], "curves": {cand: {metric: {"steps", "mean", "n_seeds",
    "per_seed": {seed: [S]}}}}, "convergence": {"rule", "per_candidate": {cand: {metric:
    still_improving(...)}}, "best_runs": {metric: {"candidate", "seed", ...}}}, "collapse":
    {"space", "alpha", "rule", "runs": [{"candidate", "seed", "collapsed", "reasons",
    "variance_ratio", "coverage", ...}], "per_candidate": {cand: {"n_collapsed", "n_runs",
    "n_unknown"}}}, "support": ``support_report(...)``, "warnings": [str], "caution": str (a
    sentence for the verdict, or "")}``.

    Rules: a curve is the mean over seeds per evaluation step (``curve_over_seeds``); it is
    still improving when its FD fell by more than ``improving_threshold`` from the last
    evaluation at or before the 75% step of the budget to the final step (``still_improving``), checked
    for every candidate's mean curve and, per metric, for the best run (lowest final FD among
    the pairs not excluded for metric hacking, ``exclude``: (candidate, metric) pairs).
    Collapse is read in the first evaluation space at ``eval_alpha`` and judged by
    ``collapse_verdict`` with the config's thresholds; a collapsed run keeps its FDs. Whether a
    run's samples are off the data is read in the same space (``support_report``); such a run
    keeps its FDs too.
    """
    from featsel.confirmation import curve_over_seeds, still_improving

    key = f"{float(cfg.eval_alpha):g}"
    steps = eval_steps(cfg.eval_fractions, cfg.budget)
    metrics = [(fd_metric(k, e), k, e) for e in evals for k in FD_KINDS]
    excl = {(str(c), str(m)) for c, m in exclude}
    per_run: dict[tuple[str, int], dict[str, dict[int, float]]] = {}
    lacking: dict[str, list[int]] = {}
    for j in sorted(jobs, key=lambda j: (j.candidate, j.seed)):
        pts = run_points(Path(j.run_dir))
        per_run[j.candidate, j.seed] = {
            m: {s: num(((p.get("alphas") or {}).get(key) or {}).get(e, {}).get(k))
                for s, p in pts.items()} for m, k, e in metrics}
        miss = [s for s in steps if s not in pts]
        if miss:
            lacking[j.run_dir] = miss
    seeds = {c: sorted(k for cc, k in per_run if cc == c) for c in cands}
    curves: dict[str, dict] = {}
    conv: dict[str, dict] = {}
    for c in cands:
        curves[c], conv[c] = {}, {}
        for m, _, _ in metrics:
            runs = [per_run[c, k][m] for k in seeds[c]]
            cur = curve_over_seeds(runs, steps)
            cur["per_seed"] = {str(k): [r.get(s, math.nan) for s in steps]
                               for k, r in zip(seeds[c], runs)}
            curves[c][m] = cur
            conv[c][m] = still_improving(steps, cur["mean"], cfg.budget,
                                         threshold=cfg.improving_threshold)
    best_runs = {}
    for m, _, _ in metrics:
        final = [(v, c, k) for (c, k), r in per_run.items() if (c, m) not in excl
                 for v in [r[m].get(cfg.budget, math.nan)] if math.isfinite(v)]
        if final:
            _, c, k = min(final)
            r = per_run[c, k][m]
            best_runs[m] = {"candidate": c, "seed": k,
                            **still_improving(steps, [r.get(s, math.nan) for s in steps],
                                              cfg.budget, threshold=cfg.improving_threshold)}
    warnings: list[str] = []
    n_improving = 0
    for c in cands:
        bad = [(m, v) for m, v in conv[c].items() if v["still_improving"]]
        if bad:
            n_improving += 1
            ref = bad[0][1]["ref_step"]
            warnings.append(
                f"candidate {c!r} was still improving over the last quarter of the budget "
                f"(mean FD over seeds, step {ref} to {cfg.budget}): "
                + ", ".join(f"{m} {-v['rel_improvement']:+.1%}" for m, v in bad)
                + f" (more than {cfg.improving_threshold:.0%}); its outcome at the final step "
                  "may not be converged (try a larger --budget)")
    improving_best = {}
    for m, b in best_runs.items():
        if b["still_improving"]:
            improving_best.setdefault((b["candidate"], b["seed"]), []).append((m, b))
    for (c, k), items in improving_best.items():
        warnings.append(
            f"the best run (lowest final FD) of {', '.join(m for m, _ in items)}, {c!r} seed "
            f"{k}, was still improving over the last quarter of the budget (step "
            f"{items[0][1]['ref_step']} to {cfg.budget}): "
            + ", ".join(f"{m} {-b['rel_improvement']:+.1%}" for m, b in items))
    if lacking:
        miss = sorted({s for v in lacking.values() for s in v})
        warnings.append(
            f"{len(lacking)} run(s) have no evaluation at step(s) {miss} (e.g. "
            f"{next(iter(lacking))!r}): trained past them before this sweep asked for them "
            "(featsel train, a dry run, an older featsel validate, or another --budget / "
            "--eval-fractions); their curves hold fewer points and convergence is checked on "
            "the points there are")
    # every job's final evaluation in the first space, read once for both reports
    finals = final_evaluations(jobs, key, evals[0])
    collapse = collapse_report(cfg, cands, evals[0], finals)
    for c, n in collapse["per_candidate"].items():
        if n["n_collapsed"]:
            runs = [r for r in collapse["runs"] if r["candidate"] == c and r["collapsed"]]
            warnings.append(
                f"candidate {c!r}: {n['n_collapsed']} of {n['n_runs']} run(s) collapsed in "
                f"{collapse['space']!r} ("
                + "; ".join(f"seed {r['seed']}: {' and '.join(r['reasons'])}" for r in runs)
                + "); their FDs are kept in the ranking")
    unknown = sum(n["n_unknown"] for n in collapse["per_candidate"].values())
    if unknown:
        warnings.append(f"{unknown} run(s) have no collapse statistics (an eval.json from before "
                        "them): rerun featsel validate --resume to measure them")
    n_coll = sum(n["n_collapsed"] for n in collapse["per_candidate"].values())
    support = support_report(cfg, cands, evals[0], finals)
    for c, n in support["per_candidate"].items():
        if n["n_off_data"]:
            warnings.append(
                f"candidate {c!r}: {n['n_off_data']} of {n['n_runs']} run(s) off the data in "
                f"{support['space']!r} (mean k-NN precision {n['precision']:.2f} against "
                f"{n['precision_real']:.2f} for held-out real samples; spread, not collapsed, "
                "but away from the data); their FDs are kept in the ranking")
    n_off = sum(n["n_off_data"] for n in support["per_candidate"].values())
    parts = []
    if n_improving:
        parts.append(f"{n_improving} candidate(s) still improving at the end of training")
    if improving_best:
        parts.append(f"the best run of {sum(len(v) for v in improving_best.values())} "
                     "metric(s) still improving")
    if n_coll:
        parts.append(f"{n_coll} collapsed run(s)")
    if n_off:
        parts.append(f"{n_off} run(s) off the data")
    caution = f"Caution: {'; '.join(parts)} (see warnings)." if parts else ""
    return {"eval_steps": steps, "curves": curves,
            "convergence": {"rule": f"still improving when (FD at the last evaluation at or "
                                    f"before the 75% step of the budget - FD at the final step) / the "
                                    f"former > {cfg.improving_threshold:g}",
                            "per_candidate": conv, "best_runs": best_runs},
            "collapse": collapse, "support": support, "warnings": warnings,
            "caution": caution}


def final_evaluations(jobs: list[Job], key: str, space: str) -> list[tuple[Job, dict, dict]]:
    """Per job, in (candidate, seed) order: (job, its ``eval.json`` or {}, the entry of
    evaluation space ``space`` at guidance ``key`` there or {})."""
    out = []
    for j in sorted(jobs, key=lambda j: (j.candidate, j.seed)):
        ev = read_eval(Path(j.run_dir)) or {}
        out.append((j, ev, ((ev.get("alphas") or {}).get(key) or {}).get(space) or {}))
    return out


def collapse_report(cfg: ValidateConfig, cands: list[str], space: str,
                    finals: list[tuple[Job, dict, dict]]) -> dict:
    """Per job the collapse verdict at the final evaluation (``finals``: ``final_evaluations``
    in ``space``, the first evaluation space), re-judged from its stored numbers with the
    config's thresholds."""
    from featsel.confirmation import collapse_verdict

    rule = collapse_rule(cfg)
    runs = []
    for j, ev, entry in finals:
        stats = entry.get("collapse")
        row = {"candidate": j.candidate, "seed": j.seed, "run": j.run_dir, "step": ev.get("step")}
        if stats is None:
            row.update(collapsed=None, reasons=["not measured (eval.json from before the "
                                                 "collapse statistics)"])
        else:
            v = collapse_verdict(num(stats.get("variance_ratio")),
                                 stats.get("nearest_share_per_class") or {}, **rule)
            row.update({k: v[k] for k in ("collapsed", "reasons", "variance_ratio", "coverage",
                                          "n_classes", "uncovered")})
        runs.append(row)
    per = {c: {"n_collapsed": sum(r["collapsed"] is True for r in runs if r["candidate"] == c),
               "n_runs": sum(r["candidate"] == c for r in runs),
               "n_unknown": sum(r["collapsed"] is None for r in runs if r["candidate"] == c)}
           for c in cands}
    return {"space": space, "alpha": float(cfg.eval_alpha),
            "rule": (f"collapsed when the mean over classes of tv(generated class) / tv(real "
                     f"class) < {cfg.collapse_min_variance_ratio:g} (tv: total variance, the "
                     f"trace of the covariance) or fewer than {cfg.collapse_min_coverage:.0%} "
                     f"of the real classes are covered (a class is covered when >= "
                     f"{cfg.collapse_min_share:.0%} of its generated samples lie nearest to its "
                     f"real centroid), in {space!r} at the final step"),
            **rule, "runs": runs, "per_candidate": per}


def support_report(cfg: ValidateConfig, cands: list[str], space: str,
                   finals: list[tuple[Job, dict, dict]]) -> dict:
    """Per job whether its samples are off the data at the final evaluation (``finals``:
    ``final_evaluations`` in ``space``, the first evaluation space; its ``support`` judged by
    ``off_data_verdict``), and per candidate the count and the mean precisions over its
    measured runs. Runs evaluated before featsel measured support count as unknown."""
    from featsel.confirmation import OFF_DATA_MIN_PRECISION_RATIO, off_data_verdict

    runs = []
    for j, ev, entry in finals:
        st = entry.get("support")
        row = {"candidate": j.candidate, "seed": j.seed, "step": ev.get("step")}
        if st is None:
            row.update(off_data=None, precision=math.nan, precision_real=math.nan)
        else:
            v = off_data_verdict(num(st.get("precision")), num(st.get("precision_real")))
            row.update(off_data=v["off_data"], precision=num(st.get("precision")),
                       precision_real=num(st.get("precision_real")),
                       recall=num(st.get("recall")), recall_real=num(st.get("recall_real")),
                       reason=v["reason"])
        runs.append(row)

    def mean(xs: list[float]) -> float:
        xs = [x for x in xs if math.isfinite(x)]
        return sum(xs) / len(xs) if xs else math.nan

    per = {}
    for c in cands:
        mine = [r for r in runs if r["candidate"] == c]
        per[c] = {"n_off_data": sum(r["off_data"] is True for r in mine), "n_runs": len(mine),
                  "n_unknown": sum(r["off_data"] is None for r in mine),
                  "precision": mean([r["precision"] for r in mine]),
                  "precision_real": mean([r["precision_real"] for r in mine])}
    return {"space": space, "alpha": float(cfg.eval_alpha),
            "rule": (f"off the data when the k-NN precision (k = 3) of the generated samples "
                     f"against half of the real split is below "
                     f"{OFF_DATA_MIN_PRECISION_RATIO:.0%} of the other half's, in {space!r} at "
                     "the final step"),
            "min_ratio": OFF_DATA_MIN_PRECISION_RATIO, "runs": runs, "per_candidate": per}
