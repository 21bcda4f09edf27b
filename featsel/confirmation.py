"""Did the training-free ranking predict the trained outcome? Pure analysis of `featsel validate`.

Inputs are plain dicts (candidates x evaluation metrics x seeds of Fréchet distances, and the
diagnostics of `featsel score`); outputs are plain dicts, so `reports` can render them.

- :func:`hacked_pairs`: the (candidate, metric) pairs whose FD is not independent evidence
  (the candidate's training featurizer is the evaluation featurizer, or the score flags say so);
- :func:`exclude_metrics`: those pairs carried from evaluation spaces to the metrics measured in
  them (each space gives two: the unconditional and the conditional FD, paper Table 3);
- :func:`mean_fd_rank_excluding`: paper Table 4 with those pairs excluded. Within each metric,
  rank the candidates that are not excluded by mean FD over seeds (1 = lowest, ties share the
  average rank, ``scipy.stats.rankdata``), then average each candidate's ranks over the metrics
  where it was ranked;
- :func:`rank_agreement`: Spearman rho and Kendall tau (``scipy.stats``) between a predictor
  (e.g. Delta_OT, lower = better) and the outcome (mean FD rank, lower = better), oriented so that
  +1 means "the predictor ordered the candidates exactly as the outcome did", with a
  permutation p-value (how often a random order agrees as well);
- :func:`bootstrap_agreement`: a percentile interval for those correlations, resampling each
  candidate's seeds with replacement (the only randomness the confirmation controls);
- :func:`compare_predictors`: the same for every diagnostic, and which one predicted best.

Hand-written because no library aggregates ranks across metrics with exclusions, or
bootstraps a rank correlation over per-candidate seeds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "hacked_pairs",
    "exclude_metrics",
    "mean_fd_over_seeds",
    "mean_fd_rank_excluding",
    "rank_agreement",
    "spearman_permutation_p",
    "bootstrap_agreement",
    "compare_predictors",
]

FD = Mapping[str, Mapping[str, Sequence[float]]]  # {candidate: {metric: [FD per seed]}}


def hacked_pairs(candidates: Iterable[str], metrics: Iterable[str],
                 flags: Iterable[Mapping] = ()) -> set[tuple[str, str]]:
    """(candidate, metric) pairs that are not independent evidence.

    A pair is hacked when the candidate spec equals the metric's featurizer spec (the generator
    was trained in that evaluation space) or when a flag ``{"candidate", "evaluation"}`` (from
    ``featsel.diagnostics.metric_hacking_flags``: same network or alignment R^2 >= threshold)
    names it. Flags about names outside ``candidates`` x ``metrics`` are ignored.
    """
    cands, mets = list(candidates), list(metrics)
    out = {(c, m) for c in cands for m in mets if c == m}
    for f in flags:
        c, m = f.get("candidate"), f.get("evaluation")
        if c in cands and m in mets:
            out.add((c, m))
    return out


def exclude_metrics(pairs: Iterable[tuple[str, str]],
                    metric_space: Mapping[str, str]) -> set[tuple[str, str]]:
    """(candidate, metric) pairs from (candidate, evaluation space) pairs.

    metric_space: ``{metric: evaluation space it is measured in}``. A pair (c, e) excludes every
    metric of space e (e.g. both ``fd[e]`` and ``cond_fd[e]``): the generator was trained in (or
    aligned with) that space, so none of its FDs there is independent evidence.
    """
    by_space: dict[str, list[str]] = {}
    for m, e in metric_space.items():
        by_space.setdefault(e, []).append(m)
    return {(c, m) for c, e in pairs for m in by_space.get(e, [])}


def mean_fd_over_seeds(fd: FD) -> dict[str, dict[str, float]]:
    """``{cand: {metric: [FD per seed]}}`` -> ``{cand: {metric: mean FD}}`` (NaNs ignored)."""
    out: dict[str, dict[str, float]] = {}
    for c, row in fd.items():
        out[c] = {}
        for m, vals in row.items():
            v = np.asarray(list(vals), dtype=float)
            v = v[np.isfinite(v)]
            if v.size == 0:
                raise ValueError(f"fd[{c!r}][{m!r}]: no finite FD value")
            out[c][m] = float(v.mean())
    return out


def mean_fd_rank_excluding(fd: Mapping[str, Mapping[str, float]],
                           exclude: Iterable[tuple[str, str]] = ()) -> dict[str, dict]:
    """Paper Table 4 with metric-hacking exclusions.

    fd: ``{candidate: {metric: FD}}`` (one number per pair, e.g. the mean over seeds); every
    candidate must report every metric. exclude: (candidate, metric) pairs left out of that
    metric's ranking. Returns ``{"mean_rank": {cand: float (NaN if excluded everywhere)},
    "ranks": {metric: {cand: rank}}, "n_metrics": {cand: int}}``.

    Example: FDs a = (1, 5), b = (2, 3), c = (3, 4) in metrics (m1, m2) give ranks
    m1: a 1, b 2, c 3; m2: b 1, c 2, a 3; mean ranks a 2, b 1.5, c 2.5.
    """
    from scipy.stats import rankdata

    names = list(fd)
    if not names:
        raise ValueError("fd: expected at least one candidate")
    metrics = sorted({m for row in fd.values() for m in row})
    for c in names:
        missing = [m for m in metrics if m not in fd[c]]
        if missing:
            raise ValueError(f"fd[{c!r}]: no FD for metric(s) {missing}")
    excl = {(str(c), str(m)) for c, m in exclude}
    ranks: dict[str, dict[str, float]] = {}
    for m in metrics:
        keep = [c for c in names if (c, m) not in excl]
        if not keep:
            continue
        r = rankdata([float(fd[c][m]) for c in keep])
        ranks[m] = {c: float(v) for c, v in zip(keep, r)}
    mean_rank, n_metrics = {}, {}
    for c in names:
        mine = [ranks[m][c] for m in ranks if c in ranks[m]]
        n_metrics[c] = len(mine)
        mean_rank[c] = float(np.mean(mine)) if mine else math.nan
    return {"mean_rank": mean_rank, "ranks": ranks, "n_metrics": n_metrics}


def rank_agreement(predictor: Mapping[str, float], outcome: Mapping[str, float], *,
                   lower_is_better: bool = True, with_p: bool = True) -> dict[str, float]:
    """Spearman and Kendall correlation between a predictor and an outcome (lower = better).

    predictor: ``{cand: value}``; outcome: ``{cand: value}``, lower = better (mean FD rank).
    Candidates missing or NaN in either are dropped. The predictor's sign is flipped when
    ``lower_is_better`` is False, so +1 always means "predicted the outcome's order exactly",
    -1 "exactly reversed". Fewer than 3 usable candidates, or a constant side, gives NaN
    (a correlation of 2 points is always +-1 and says nothing). ``spearman_p``: the one-sided
    permutation p-value (:func:`spearman_permutation_p`; NaN when ``with_p`` is False).
    """
    from scipy.stats import kendalltau, spearmanr

    names = [c for c in predictor if c in outcome and np.isfinite(predictor[c])
             and np.isfinite(outcome[c])]
    out = {"spearman": math.nan, "kendall": math.nan, "spearman_p": math.nan, "n": len(names)}
    if len(names) < 3:
        return out
    p = np.array([float(predictor[c]) for c in names])
    o = np.array([float(outcome[c]) for c in names])
    if not lower_is_better:
        p = -p
    if np.ptp(p) == 0 or np.ptp(o) == 0:
        return out
    out["spearman"] = float(spearmanr(p, o).statistic)
    out["kendall"] = float(kendalltau(p, o).statistic)
    if with_p:
        out["spearman_p"] = spearman_permutation_p(p, o)
    return out


def spearman_permutation_p(p: np.ndarray, o: np.ndarray, *, n_mc: int = 20000,
                           seed: int = 0) -> float:
    """One-sided permutation p-value of Spearman's rho: P(rho(perm(p), o) >= rho(p, o)).

    p, o: (n,). Exact (all n! orders) for n <= 8, else ``n_mc`` seeded random orders. It answers
    "could a random order of the candidates agree this well?": with 3 candidates even a perfect
    order has p = 1/6, with 4 candidates 1/24.
    """
    import itertools

    from scipy.stats import rankdata

    rp, ro = rankdata(p), rankdata(o)
    n = len(rp)
    if n <= 8:
        perms = np.array(list(itertools.permutations(range(n))))
    else:
        rng = np.random.default_rng(seed)
        perms = np.argsort(rng.random((n_mc, n)), axis=1)
    a = rp[perms] - rp.mean()                    # (P, n) permuted predictor ranks, centred
    b = ro - ro.mean()
    rho = (a @ b) / (np.sqrt((a**2).sum(1)) * np.sqrt((b**2).sum()))
    obs = float(((rp - rp.mean()) @ b) / (np.sqrt(((rp - rp.mean()) ** 2).sum())
                                          * np.sqrt((b**2).sum())))
    return float(np.mean(rho >= obs - 1e-12))


def bootstrap_agreement(predictor: Mapping[str, float], fd: FD, *,
                        exclude: Iterable[tuple[str, str]] = (), lower_is_better: bool = True,
                        n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Correlations of ``predictor`` with the mean FD rank, with a bootstrap interval over seeds.

    fd: ``{cand: {metric: [FD per seed]}}`` (seed k of every metric comes from the same
    generator, so one resample of a candidate's seed indices is shared by its metrics; different
    candidates are resampled independently). Returns ``{"spearman", "kendall", "n",
    "spearman_ci": [lo, hi], "kendall_ci": [lo, hi], "n_boot", "n_seeds": {cand: int}}``; the
    point estimate uses all seeds. With one seed per candidate the interval is the point itself.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot: expected >= 1, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level: expected a value in (0, 1), got {level}")
    excl = list(exclude)
    point = rank_agreement(predictor,
                           mean_fd_rank_excluding(mean_fd_over_seeds(fd), excl)["mean_rank"],
                           lower_is_better=lower_is_better)
    arrays = {c: {m: np.asarray(list(v), dtype=float) for m, v in row.items()}
              for c, row in fd.items()}
    n_seeds = {}
    for c, row in arrays.items():
        lens = {len(v) for v in row.values()}
        if len(lens) != 1 or 0 in lens:
            raise ValueError(f"fd[{c!r}]: every metric needs the same non-zero number of seeds, "
                             f"got {sorted(lens)}")
        n_seeds[c] = lens.pop()
    rng = np.random.default_rng(seed)
    rho, tau = [], []
    for _ in range(n_boot):
        sample = {}
        for c, row in arrays.items():
            idx = rng.integers(0, n_seeds[c], n_seeds[c])
            sample[c] = {m: v[idx] for m, v in row.items()}
        outcome = mean_fd_rank_excluding(mean_fd_over_seeds(sample), excl)["mean_rank"]
        r = rank_agreement(predictor, outcome, lower_is_better=lower_is_better, with_p=False)
        rho.append(r["spearman"])
        tau.append(r["kendall"])
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]

    def ci(vals: list[float]) -> list[float]:
        v = np.asarray(vals)
        v = v[np.isfinite(v)]
        return [float(x) for x in np.percentile(v, q)] if v.size else [math.nan, math.nan]

    return {**point, "spearman_ci": ci(rho), "kendall_ci": ci(tau), "n_boot": n_boot,
            "level": level, "n_seeds": n_seeds}


def compare_predictors(predictors: Mapping[str, tuple[Mapping[str, float], bool]], fd: FD, *,
                       exclude: Iterable[tuple[str, str]] = (), n_boot: int = 1000,
                       seed: int = 0) -> dict:
    """Every diagnostic against the mean FD rank; the best is the highest oriented Spearman rho.

    predictors: ``{name: ({cand: value}, lower_is_better)}``. Returns ``{"per_predictor":
    {name: bootstrap_agreement(...) + {"lower_is_better"}}, "best": name or None, "best_reason"}``.
    Ties in rho are broken by Kendall tau, then by name; NaN correlations never win.
    """
    excl = list(exclude)
    per = {}
    for name, (values, lower) in predictors.items():
        per[name] = {**bootstrap_agreement(values, fd, exclude=excl, lower_is_better=lower,
                                           n_boot=n_boot, seed=seed), "lower_is_better": lower}
    usable = [n for n, r in per.items() if np.isfinite(r["spearman"])]
    if not usable:
        return {"per_predictor": per, "best": None,
                "best_reason": "no diagnostic gives a defined correlation (fewer than 3 "
                               "candidates, or constant values)"}
    best = sorted(usable, key=lambda n: (-per[n]["spearman"],
                                         -(per[n]["kendall"] if np.isfinite(per[n]["kendall"])
                                           else -2.0), n))[0]
    r = per[best]
    reason = (f"{best}: Spearman {r['spearman']:+.2f} (95% CI {r['spearman_ci'][0]:+.2f} to "
              f"{r['spearman_ci'][1]:+.2f}), Kendall {r['kendall']:+.2f} over {r['n']} "
              "candidates")
    if r["spearman"] <= 0:
        reason += "; no diagnostic ordered the candidates better than chance"
    return {"per_predictor": per, "best": best, "best_reason": reason}
