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
- :func:`compare_predictors`: the same for every diagnostic, and which one predicted best;
- :func:`seed_split_agreement`: how well the outcome agrees with itself on disjoint seeds (the
  mean FD rank of one half of the seeds against the other's), beside each predictor's agreement
  with the same held halves: the yardstick for a predictor on this many seeds.

Whether the trained outcome can be trusted (numpy only, no torch):

- :func:`total_variance_ratio`, :func:`nearest_centroid_shares`, :func:`class_coverage` and
  :func:`collapse_verdict` (:func:`collapse_stats` runs them all): is a generator collapsed
  (per-class spread far below the real class's, or most real classes' clusters not reached)?
- :func:`off_data_verdict`: are its samples off the data (k-NN precision far below what real
  held-out samples score, ``featsel.diagnostics.frechet.support_metrics``)?
- :func:`curve_over_seeds` and :func:`still_improving`: the FD-vs-step curve of a candidate
  (mean over seeds per step) and whether it was still falling over the last quarter of the
  budget (then the outcome read at the final step is not converged).

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
    "kendall_permutation_p",
    "pooled_kendall_p",
    "bootstrap_agreement",
    "compare_predictors",
    "REPEATABILITY_BAR",
    "seed_split_agreement",
    "COLLAPSE_MIN_VARIANCE_RATIO",
    "COLLAPSE_MIN_COVERAGE",
    "COLLAPSE_MIN_SHARE",
    "STILL_IMPROVING_THRESHOLD",
    "total_variance_ratio",
    "nearest_centroid_shares",
    "class_coverage",
    "collapse_verdict",
    "collapse_stats",
    "OFF_DATA_MIN_PRECISION_RATIO",
    "off_data_verdict",
    "curve_over_seeds",
    "still_improving",
]

# Defaults of the rules below (ValidateConfig and evaluate_run take them from here).
COLLAPSE_MIN_VARIANCE_RATIO = 0.1   # collapsed: mean per-class variance ratio below this
COLLAPSE_MIN_COVERAGE = 0.5         # collapsed: fewer than this fraction of classes covered
COLLAPSE_MIN_SHARE = 0.05           # a class is covered by >= this share of its samples
STILL_IMPROVING_THRESHOLD = 0.05    # warn: FD fell by more than 5% over the last quarter
# warn: seed halves' mean FD ranks agree below this Kendall tau (issue 11's bar for a criterion:
# an outcome that agrees less with itself cannot show whether a criterion reaches it)
REPEATABILITY_BAR = 0.6
OFF_DATA_MIN_PRECISION_RATIO = 0.5  # off the data: precision below half of held-out real data's

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
    (a correlation of 2 points is always +-1 and says nothing). ``spearman_p`` / ``kendall_p``:
    the one-sided permutation p-values (:func:`spearman_permutation_p`,
    :func:`kendall_permutation_p`; NaN when ``with_p`` is False).
    """
    from scipy.stats import kendalltau, spearmanr

    names = [c for c in predictor if c in outcome and np.isfinite(predictor[c])
             and np.isfinite(outcome[c])]
    out = {"spearman": math.nan, "kendall": math.nan, "spearman_p": math.nan,
           "kendall_p": math.nan, "n": len(names)}
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
        out["kendall_p"] = kendall_permutation_p(p, o)
    return out


def spearman_permutation_p(p: np.ndarray, o: np.ndarray, *, n_mc: int = 20000,
                           seed: int = 0) -> float:
    """One-sided permutation p-value of Spearman's rho: P(rho(perm(p), o) >= rho(p, o)).

    p, o: (n,). Exact (all n! orders) for n <= 8, else ``n_mc`` seeded random orders. It answers
    "could a random order of the candidates agree this well?": with 3 candidates even a perfect
    order has p = 1/6, with 4 candidates 1/24.
    """
    from scipy.stats import rankdata

    rp, ro = rankdata(p), rankdata(o)
    perms = _orders(len(rp), n_mc, seed)
    a = rp[perms] - rp.mean()                    # (P, n) permuted predictor ranks, centred
    b = ro - ro.mean()
    rho = (a @ b) / (np.sqrt((a**2).sum(1)) * np.sqrt((b**2).sum()))
    obs = float(((rp - rp.mean()) @ b) / (np.sqrt(((rp - rp.mean()) ** 2).sum())
                                          * np.sqrt((b**2).sum())))
    return float(np.mean(rho >= obs - 1e-12))


def _orders(n: int, n_mc: int, seed: int) -> np.ndarray:
    """(P, n) index orders: all n! for n <= 8, else ``n_mc`` seeded random ones."""
    import itertools

    if n <= 8:
        return np.array(list(itertools.permutations(range(n))))
    rng = np.random.default_rng(seed)
    return np.argsort(rng.random((n_mc, n)), axis=1)


def _kendall_null(p: np.ndarray, o: np.ndarray, n_mc: int, seed: int) -> tuple[np.ndarray, float]:
    """Kendall's tau-b of every order of ``p`` against ``o`` (all n! for n <= 8, else ``n_mc``
    seeded random orders) and of ``p`` itself: ``((P,), float)``.

    tau-b = S / sqrt((n0 - n1)(n0 - n2)), S = sum_{i<j} sign(p_i - p_j) sign(o_i - o_j),
    n0 = n(n-1)/2, n1 and n2 the tied pairs of p and of o; the denominator is the same for every
    order of p (its ties move with it), so only S is recomputed.
    """
    p, o = np.asarray(p, dtype=float), np.asarray(o, dtype=float)
    n = len(p)
    i, j = np.triu_indices(n, 1)
    so = np.sign(o[i] - o[j])                                     # (pairs,)
    perms = _orders(n, n_mc, seed)
    pp = p[perms]                                                 # (P, n) permuted predictor
    s_perm = (np.sign(pp[:, i] - pp[:, j]) * so).sum(1)           # (P,)
    s_obs = float((np.sign(p[i] - p[j]) * so).sum())
    n0 = len(i)
    den = math.sqrt((n0 - float((np.sign(p[i] - p[j]) == 0).sum())) * (n0 - float((so == 0).sum())))
    if den == 0:
        raise ValueError("kendall: a constant predictor or outcome has no Kendall tau")
    return s_perm / den, s_obs / den


def kendall_permutation_p(p: np.ndarray, o: np.ndarray, *, n_mc: int = 20000,
                          seed: int = 0) -> float:
    """One-sided permutation p-value of Kendall's tau: P(tau(perm(p), o) >= tau(p, o)).

    p, o: (n,). Exact for n <= 8, else ``n_mc`` seeded random orders (as
    :func:`spearman_permutation_p`). tau-b's denominator is the same for every order of p (its
    ties move with it), so orders are compared by the numerator S = sum_{i<j} sign(p_i - p_j)
    sign(o_i - o_j). Without ties this is the exact null of `scipy.stats.kendalltau(method=
    "exact", alternative="greater")` (tested): with 5 candidates tau = +0.2 has p = 0.41,
    tau = +0.6 p = 0.12, a perfect order p = 1/120.
    """
    null, obs = _kendall_null(p, o, n_mc, seed)
    return float(np.mean(null >= obs - 1e-9))


def pooled_kendall_p(pairs: Sequence[tuple[np.ndarray, np.ndarray]], *, n_mc: int = 20000,
                     seed: int = 0) -> dict:
    """Several independent rank-agreement tests read together: the mean Kendall tau and its
    one-sided p under the null that every data set's predictor order is a uniformly random
    permutation, independently across data sets.

    pairs: ``[(p_k: (n_k,), o_k: (n_k,))]``, one per data set, oriented as
    :func:`kendall_permutation_p` (+1 = the predictor ordered the outcome exactly), n_k >= 3.
    The null distribution of ``T = sum_k tau_k`` is the convolution of each data set's
    permutation distribution of tau-b (exact for n_k <= 8: all n_k! orders; else ``n_mc``
    seeded random orders), so ``p = P(T_null >= T_obs)`` is exact for small studies. Written
    here because SciPy combines p-values (``scipy.stats.combine_pvalues``), which for discrete
    tests with 5-6 candidates is conservative; the sum's exact null is a few lines.

    Returns ``{"mean_kendall": T_obs / K, "kendall": [tau_k], "n": [n_k], "p": p, "exact":
    bool}``. E.g. two data sets of 3 candidates, taus 1 and 1/3: p = 5/36.
    """
    pairs = list(pairs)
    if not pairs:
        raise ValueError("pairs: expected at least one (predictor, outcome) pair")
    values, probs = np.zeros(1), np.ones(1)                       # distribution of the sum so far
    taus, ns = [], []
    for k, (p, o) in enumerate(pairs):
        p, o = np.asarray(p, dtype=float), np.asarray(o, dtype=float)
        if p.ndim != 1 or p.shape != o.shape or len(p) < 3:
            raise ValueError(f"pairs[{k}]: expected two 1-d arrays of the same length >= 3, got "
                             f"shapes {p.shape} and {o.shape}")
        null, obs = _kendall_null(p, o, n_mc, seed + k)
        v, c = np.unique(np.round(null, 9), return_counts=True)
        sums = np.round((values[:, None] + v[None, :]).ravel(), 9)
        w = (probs[:, None] * (c / c.sum())[None, :]).ravel()
        values, inv = np.unique(sums, return_inverse=True)
        probs = np.bincount(inv.ravel(), weights=w)
        taus.append(obs)
        ns.append(len(p))
    total = float(sum(taus))
    return {"mean_kendall": total / len(taus), "kendall": taus, "n": ns,
            "p": float(min(1.0, probs[values >= total - 1e-9].sum())),
            "exact": all(n <= 8 for n in ns)}


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


def seed_split_agreement(fd: FD, *, exclude: Iterable[tuple[str, str]] = (),
                         predictors: Mapping[str, tuple[Mapping[str, float], bool]] | None = None,
                         max_splits: int = 252, seed: int = 0) -> dict | None:
    """How repeatable the outcome is: its mean FD rank on k seeds against the rest's.

    fd: ``{cand: {metric: [FD per seed]}}`` (seed s of every candidate is one split unit, as
    in :func:`bootstrap_agreement`); with n seeds (the fewest any candidate has), every set A
    of k = n // 2 seeds is one split (``max_splits`` of them, drawn with ``seed``, when there
    are more) and B is the other n - k. Per split,

        outcome:   tau(R_A, R_B)     R_S = mean_fd_rank_excluding(mean over seeds S)
        predictor: tau(p, R_B)       (oriented: +1 = ordered as R_B)

    and each is averaged over the splits (NaN splits, e.g. constant ranks, left out). The
    outcome's value is what training every candidate in full on k seeds predicts about k' =
    n - k other seeds: a yardstick for a predictor read against the same held halves, and a
    lower bound on how well the n-seed outcome agrees with its expectation (it averages more
    seeds). ``predictors``: ``{name: ({cand: value}, lower_is_better)}`` as in
    :func:`compare_predictors` (a value for every candidate of ``fd``; others are ignored).
    Returns ``{"seeds": [k, n - k], "n_splits", "outcome": {"mean_kendall", "min_kendall",
    "max_kendall", "kendall": [per split]}, "predictors": {name: {"mean_kendall", "kendall":
    [...]}}}``, or None with fewer than 2 seeds.

    Example: 3 seeds give the splits ({0}, {1, 2}), ({1}, {0, 2}), ({2}, {0, 1}).
    """
    import itertools

    from scipy.stats import kendalltau

    if max_splits < 1:
        raise ValueError(f"max_splits: expected >= 1, got {max_splits}")
    excl = list(exclude)
    fd = {c: {m: list(v) for m, v in row.items()} for c, row in fd.items()}
    n = min(len(v) for row in fd.values() for v in row.values())
    if n < 2:
        return None
    k = n // 2
    splits = list(itertools.combinations(range(n), k))
    if len(splits) > max_splits:
        pick = np.random.default_rng(seed).choice(len(splits), max_splits, replace=False)
        splits = [splits[i] for i in sorted(pick)]
    names = list(fd)

    def ranks(seeds: Sequence[int]) -> np.ndarray:
        sub = {c: {m: [v[s] for s in seeds] for m, v in fd[c].items()} for c in names}
        mr = mean_fd_rank_excluding(mean_fd_over_seeds(sub), excl)["mean_rank"]
        return np.array([mr[c] for c in names])

    def tau(a: np.ndarray, b: np.ndarray) -> float:
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
            return math.nan
        return float(kendalltau(a[ok], b[ok]).statistic)

    preds = {name: (np.array([float(v[c]) for c in names]) * (1.0 if lower else -1.0))
             for name, (v, lower) in (predictors or {}).items()}
    own: list[float] = []
    per: dict[str, list[float]] = {name: [] for name in preds}
    for a in splits:
        held = ranks([s for s in range(n) if s not in a])
        own.append(tau(ranks(a), held))
        for name, p in preds.items():
            per[name].append(tau(p, held))

    def mean(v: list[float]) -> float:
        f = [x for x in v if math.isfinite(x)]
        return float(np.mean(f)) if f else math.nan

    fin = [x for x in own if math.isfinite(x)]
    return {"seeds": [k, n - k], "n_splits": len(splits),
            "outcome": {"mean_kendall": mean(own),
                        "min_kendall": float(min(fin)) if fin else math.nan,
                        "max_kendall": float(max(fin)) if fin else math.nan, "kendall": own},
            "predictors": {name: {"mean_kendall": mean(v), "kendall": v}
                           for name, v in per.items()}}


# --- is the trained outcome trustworthy? collapse and convergence ---------------------------


def _points(x, labels, name: str) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(x, dtype=np.float64)
    lab = np.asarray(labels).reshape(-1)
    if a.ndim != 2 or lab.shape != (len(a),):
        raise ValueError(f"{name}: expected points (n, D) and labels (n,), got {a.shape} and "
                         f"{lab.shape}")
    return a, lab.astype(np.int64)


def total_variance_ratio(gen, gen_labels, real, real_labels) -> dict:
    """Per-class spread of generated samples relative to the real class's.

    gen: (n_g, D), gen_labels: (n_g,); real: (n_r, D), real_labels: (n_r,) (same D). The total
    variance of a set is the trace of its covariance, ``tv = sum_d var_d`` (sample variance,
    ddof 1). For every class c with >= 2 generated and >= 2 real samples and ``tv(real_c) > 0``,
    ``r_c = tv(gen_c) / tv(real_c)``. Returns ``{"variance_ratio": mean_c r_c (NaN when no class
    qualifies), "per_class": {str(c): r_c}}``. A collapsed generator (all samples of a class
    near one point) has r_c near 0; a healthy one near 1.
    """
    g, gl = _points(gen, gen_labels, "gen")
    r, rl = _points(real, real_labels, "real")
    if g.shape[1] != r.shape[1]:
        raise ValueError(f"gen and real: expected the same dimension D, got {g.shape[1]} and "
                         f"{r.shape[1]}")
    per = {}
    for c in sorted(set(rl.tolist())):
        gc, rc = g[gl == c], r[rl == c]
        if len(gc) < 2 or len(rc) < 2:
            continue
        tv_real = float(rc.var(axis=0, ddof=1).sum())
        if tv_real > 0:
            per[str(c)] = float(gc.var(axis=0, ddof=1).sum()) / tv_real
    return {"variance_ratio": float(np.mean(list(per.values()))) if per else math.nan,
            "per_class": per}


def nearest_centroid_shares(gen, gen_labels, real, real_labels) -> dict[str, float]:
    """For every real class c: the share of the generated class-c samples whose nearest real
    class centroid (Euclidean; ties to the lower class) is real class c's own centroid.

    gen: (n_g, D), gen_labels: (n_g,); real: (n_r, D), real_labels: (n_r,). Returns
    ``{str(c): share in [0, 1]}`` over the classes present in ``real_labels`` (0 for a class
    with no generated sample). Generated labels without a real class are ignored.
    """
    g, gl = _points(gen, gen_labels, "gen")
    r, rl = _points(real, real_labels, "real")
    if g.shape[1] != r.shape[1]:
        raise ValueError(f"gen and real: expected the same dimension D, got {g.shape[1]} and "
                         f"{r.shape[1]}")
    classes = sorted(set(rl.tolist()))
    if not classes:
        return {}
    centroids = np.stack([r[rl == c].mean(axis=0) for c in classes])     # (K, D)
    out = {}
    for i, c in enumerate(classes):
        gc = g[gl == c]
        if len(gc) == 0:
            out[str(c)] = 0.0
            continue
        d2 = ((gc[:, None, :] - centroids[None]) ** 2).sum(-1)          # (n_c, K)
        out[str(c)] = float(np.mean(d2.argmin(axis=1) == i))
    return out


def class_coverage(shares: Mapping[str, float], min_share: float = COLLAPSE_MIN_SHARE) -> float:
    """The fraction of real classes covered: class c is covered when at least ``min_share`` of
    its generated samples lie nearest to its own real centroid (``nearest_centroid_shares``).
    NaN when there is no class."""
    if not 0 <= min_share <= 1:
        raise ValueError(f"min_share: expected a value in [0, 1], got {min_share}")
    v = [float(s) for s in shares.values()]
    return float(np.mean([s >= min_share for s in v])) if v else math.nan


def collapse_verdict(variance_ratio: float, shares: Mapping[str, float], *,
                     min_variance_ratio: float = COLLAPSE_MIN_VARIANCE_RATIO,
                     min_coverage: float = COLLAPSE_MIN_COVERAGE,
                     min_share: float = COLLAPSE_MIN_SHARE) -> dict:
    """Is a run collapsed? Rule: collapsed when the mean per-class variance ratio
    (``total_variance_ratio``) is below ``min_variance_ratio`` (default 10%) or the class
    coverage (``class_coverage`` with ``min_share``) is below ``min_coverage`` (default half of
    the real classes).

    Returns ``{"collapsed": True / False / None (neither number defined), "reasons": [str],
    "variance_ratio", "coverage", "n_classes", "uncovered": [class], "min_variance_ratio",
    "min_coverage", "min_share"}``.
    """
    vr = float(variance_ratio) if variance_ratio is not None else math.nan
    cov = class_coverage(shares, min_share)
    reasons = []
    if math.isfinite(vr) and vr < min_variance_ratio:
        reasons.append(f"per-class variance {vr:.3g} of the real class's (mean over classes), "
                       f"below {min_variance_ratio:g}")
    if math.isfinite(cov) and cov < min_coverage:
        reasons.append(f"covers {cov:.0%} of the real classes (a class is covered when >= "
                       f"{min_share:.0%} of its samples lie nearest its real centroid), below "
                       f"{min_coverage:.0%}")
    known = math.isfinite(vr) or math.isfinite(cov)
    return {"collapsed": bool(reasons) if known else None, "reasons": reasons,
            "variance_ratio": vr, "coverage": cov, "n_classes": len(shares),
            "uncovered": sorted((c for c, s in shares.items() if float(s) < min_share),
                                key=lambda c: (len(c), c)),
            "min_variance_ratio": min_variance_ratio, "min_coverage": min_coverage,
            "min_share": min_share}


def collapse_stats(gen, gen_labels, real, real_labels, **rule) -> dict:
    """``total_variance_ratio`` + ``nearest_centroid_shares`` + ``collapse_verdict`` (``rule``:
    its thresholds) of one generated set against the real one, as one plain dict:
    ``{"variance_ratio", "variance_ratio_per_class", "nearest_share_per_class", "coverage",
    "collapsed", "reasons", ...}``."""
    tv = total_variance_ratio(gen, gen_labels, real, real_labels)
    shares = nearest_centroid_shares(gen, gen_labels, real, real_labels)
    return {**collapse_verdict(tv["variance_ratio"], shares, **rule),
            "variance_ratio_per_class": tv["per_class"], "nearest_share_per_class": shares}


def off_data_verdict(precision: float | None, precision_real: float | None, *,
                     min_ratio: float = OFF_DATA_MIN_PRECISION_RATIO) -> dict:
    """Are a run's samples off the data? Rule: off when its k-NN precision is below
    ``min_ratio`` (default half) of the precision of held-out real samples against the same
    reference (``support_metrics``): fewer than half as many of its samples fall on the real
    data's manifold as real samples do. The collapse rule cannot see this: such a set can be as
    spread as the data (the studies' VAE couplings), only misplaced. Half is a convention, like
    the collapse rule's 10%, not fitted to an outcome.

    Returns ``{"off_data": True / False / None (either number missing, or precision_real 0),
    "ratio", "min_ratio", "reason"}``.
    """
    if not 0 < min_ratio <= 1:
        raise ValueError(f"min_ratio: expected a fraction in (0, 1], got {min_ratio}")
    p = math.nan if precision is None else float(precision)
    ref = math.nan if precision_real is None else float(precision_real)
    if not (math.isfinite(p) and math.isfinite(ref)) or ref <= 0:
        return {"off_data": None, "ratio": math.nan, "min_ratio": min_ratio, "reason": ""}
    ratio = p / ref
    off = ratio < min_ratio
    reason = (f"k-NN precision {p:.2f}, {ratio:.0%} of held-out real samples' {ref:.2f} "
              f"(below {min_ratio:.0%})") if off else ""
    return {"off_data": bool(off), "ratio": ratio, "min_ratio": min_ratio, "reason": reason}


def curve_over_seeds(per_seed: Sequence[Mapping[int, float]],
                     steps: Sequence[int]) -> dict[str, list]:
    """The FD-vs-step curve of a candidate: per step the mean over the seeds that have a finite
    value there. per_seed: one ``{step: FD}`` per seed (None / NaN = missing). Returns
    ``{"steps": [S], "mean": [S] (NaN where no seed has a value), "n_seeds": [S]}``."""
    mean, n = [], []
    for s in steps:
        v = np.asarray([math.nan if (x := p.get(int(s))) is None else float(x)
                        for p in per_seed], dtype=float)
        v = v[np.isfinite(v)]
        mean.append(float(v.mean()) if v.size else math.nan)
        n.append(int(v.size))
    return {"steps": [int(s) for s in steps], "mean": mean, "n_seeds": n}


def still_improving(steps: Sequence[int], fd: Sequence[float], budget: int, *,
                    last: float = 0.25, threshold: float = STILL_IMPROVING_THRESHOLD) -> dict:
    """Was an FD curve still falling at the end of training? Rule: with ``fd_final`` the FD at
    step ``budget`` and ``fd_ref`` the FD at the last evaluated step before ``budget`` and at or
    before ``floor((1 - last) * budget + 1/2)`` (the start of the last quarter by default,
    rounded like ``generation.validate.eval_steps``: the 75% evaluation), the relative
    improvement is
    ``rel = (fd_ref - fd_final) / fd_ref``; the curve is still improving when
    ``rel > threshold`` (5%).

    steps, fd: (P,) the evaluated steps and FDs (None / NaN = missing). Returns ``{"ref_step",
    "final_step", "fd_ref", "fd_final", "rel_improvement", "still_improving": True / False /
    None (not checkable: no final FD, no earlier point, or fd_ref <= 0), "note"}``.
    """
    if budget < 1:
        raise ValueError(f"budget: expected >= 1 training steps, got {budget}")
    if not 0 < last < 1:
        raise ValueError(f"last: expected a fraction in (0, 1), got {last}")
    if len(steps) != len(fd):
        raise ValueError(f"steps and fd: expected the same length, got {len(steps)} and "
                         f"{len(fd)}")
    pts = {int(s): float(v) for s, v in zip(steps, fd)
           if v is not None and math.isfinite(float(v))}
    out = {"ref_step": None, "final_step": int(budget), "fd_ref": math.nan,
           "fd_final": pts.get(int(budget), math.nan), "rel_improvement": math.nan,
           "still_improving": None, "note": ""}
    if budget not in pts:
        out["note"] = "no FD at the final step"
        return out
    cut = math.floor((1 - last) * budget + 0.5)
    before = [s for s in pts if s < budget and s <= cut]
    if not before:
        out["note"] = f"no evaluation at or before {1 - last:.0%} of the budget"
        return out
    ref = max(before)
    out.update(ref_step=ref, fd_ref=pts[ref])
    if pts[ref] <= 0:
        out["note"] = "FD at the reference step is 0"
        return out
    rel = (pts[ref] - pts[budget]) / pts[ref]
    out.update(rel_improvement=rel, still_improving=bool(rel > threshold))
    return out
