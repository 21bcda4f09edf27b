"""Successive halving over candidate featurizers (`featsel select`): pure functions on plain data.

A selection has rungs 0..R. Rung 0 is the training-free score: its order (by the score's ranking
criterion) is the *prior*; controls and candidates without an independent FD are dropped there,
and optionally all but the best fraction of the prior (:func:`rung0`). Rungs 1..R train every
surviving (candidate, seed) to the rung's step ``s_r``, continuing from ``s_{r-1}`` (``s_0 = 0``),
evaluate it, rank by mean FD rank (:func:`run_ranks`, :func:`order_candidates`) and keep the best
``ceil(n_r / eta)``; the last rung trains its survivors to the full budget ``s_R = B`` and the
best of them is the choice.

- :func:`rung_sizes`: ``n_1 = n``, ``n_{r+1} = ceil(n_r / eta)``, until one is left
  (``n_R = 1``), e.g. n = 10, eta = 3: 10, 4, 2, 1 (R = 4);
- :func:`rung_steps`: ``s_r = round(B / eta^(R - r))`` (half up), at least ``r`` and strictly
  increasing, ``s_R = B``; e.g. R = 3, eta = 3, B = 90: 10, 30, 90. Needs ``B >= R``;
- :func:`schedule`: both, with each rung's cost in candidate-steps
  ``n_r * seeds * (s_r - s_{r-1})`` (training steps of every job, seeds included);
- :func:`run_ranks`: per (metric, seed) the candidates ranked by FD (1 = lowest, ties share the
  average rank), collapsed runs after every healthy one (among themselves by FD) and runs
  without a finite FD after those (tied); excluded (candidate, metric) pairs (metric hacking)
  are left out; a candidate's mean FD rank is the mean over the cells it was ranked in;
- :func:`order_candidates`: by mean FD rank, ties broken by the prior, then by name;
- :func:`keep_shares`: how sure a rung's cut is: the share of seed resamples (each candidate's
  seeds drawn with replacement) in which each candidate would have been among the kept;
- :func:`compute_summary`: candidate-steps spent against the full sweep
  ``n_candidates * seeds * B`` (every real candidate trained to the budget).

Numbers only (numpy, scipy), so the rules can be checked by hand; ``generation.select`` runs
them on the evaluations of trained runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

__all__ = ["check_eta", "rung_sizes", "rung_steps", "schedule", "run_ranks", "order_candidates",
           "keep_shares", "keep_count", "rung0", "compute_summary"]


def check_eta(eta: int) -> int:
    """``eta`` as an int >= 2 (ValueError naming ``--eta`` otherwise)."""
    if isinstance(eta, bool) or not isinstance(eta, int | np.integer) or eta < 2:
        raise ValueError(f"--eta: expected an integer >= 2 (keep the best 1/eta at each rung), "
                         f"got {eta!r}")
    return int(eta)


def keep_count(n: int, eta: int) -> int:
    """How many of ``n`` candidates a rung keeps: ``ceil(n / eta)`` (at least 1 when n >= 1)."""
    return -(-int(n) // check_eta(eta))


def rung_sizes(n: int, eta: int) -> list[int]:
    """Candidates per training rung: ``[n, ceil(n/eta), ceil(n/eta^2)..., 1]`` (``[1]`` for
    n = 1). E.g. n = 3, eta = 3: [3, 1]; n = 4, eta = 2: [4, 2, 1]; n = 10, eta = 3:
    [10, 4, 2, 1]."""
    eta = check_eta(eta)
    if n < 1:
        raise ValueError(f"candidates: expected at least one candidate to train, got {n}")
    sizes = [int(n)]
    while sizes[-1] > 1:
        sizes.append(keep_count(sizes[-1], eta))
    return sizes


def rung_steps(n_rungs: int, eta: int, budget: int) -> list[int]:
    """Cumulative training steps at the end of each rung: ``s_r = max(r, s_{r-1} + 1,
    round(B / eta^(R - r)))`` for r < R (round half up), ``s_R = B``; strictly increasing, so
    every rung trains. E.g. R = 2, eta = 3, B = 9: [3, 9]; R = 4, eta = 3, B = 100:
    [4, 11, 33, 100]; R = 3, eta = 3, B = 3: [1, 2, 3]."""
    eta = check_eta(eta)
    if n_rungs < 1:
        raise ValueError(f"rungs: expected >= 1, got {n_rungs}")
    if isinstance(budget, bool) or not isinstance(budget, int | np.integer) or budget < n_rungs:
        raise ValueError(f"--budget: expected at least {n_rungs} training steps (one per rung: "
                         f"{n_rungs} rung(s) with --eta {eta}), got {budget!r}")
    budget = int(budget)
    steps: list[int] = []
    for r in range(1, n_rungs):
        d = eta ** (n_rungs - r)
        s = max(r, (2 * budget + d) // (2 * d), steps[-1] + 1 if steps else 1)
        steps.append(s)
    steps.append(budget)
    # s_{R-1} < B: round(B/eta) < B for B >= 2, and the lower bounds r, s_{r-1}+1 stay below B
    # because B >= R; checked here rather than trusted
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"--budget: {budget} steps cannot be split into {n_rungs} increasing "
                         f"rungs with --eta {eta}")
    return steps


def schedule(n: int, eta: int, budget: int, seeds: int = 1) -> list[dict]:
    """The training rungs for ``n`` candidates: ``[{"rung": r (1..R), "n": n_r, "steps": s_r,
    "from_step": s_{r-1}, "candidate_steps": n_r * seeds * (s_r - s_{r-1})}]``.

    E.g. n = 3, eta = 3, B = 9, 2 seeds: rung 1 trains 3 x 2 jobs to step 3 (18 candidate-steps),
    rung 2 one candidate's 2 jobs from 3 to 9 (12): 30 of the full sweep's 3 * 2 * 9 = 54."""
    if seeds < 1:
        raise ValueError(f"--seeds: expected >= 1, got {seeds}")
    sizes = rung_sizes(n, eta)
    steps = rung_steps(len(sizes), eta, budget)
    out, prev = [], 0
    for r, (k, s) in enumerate(zip(sizes, steps), start=1):
        out.append({"rung": r, "n": k, "steps": s, "from_step": prev,
                    "candidate_steps": k * int(seeds) * (s - prev)})
        prev = s
    return out


def run_ranks(fd: Mapping[str, Mapping[str, Sequence[float]]],
              collapsed: Mapping[str, Sequence[bool]] | None = None,
              exclude: Iterable[tuple[str, str]] = ()) -> dict:
    """Mean FD rank over (metric, seed) cells.

    fd: ``{candidate: {metric: [FD per seed]}}``, every candidate with every metric and the same
    number of seeds S. collapsed: ``{candidate: [bool per seed]}`` (missing: none collapsed).
    exclude: (candidate, metric) pairs left out of that metric (metric hacking).

    In each cell (metric m, seed k) the candidates not excluded from m are ranked by their seed-k
    FD in m (``scipy.stats.rankdata``: 1 = lowest, ties share the average rank) in three tiers:
    healthy runs with a finite FD first, then collapsed runs with a finite FD (so a collapsed
    run is ranked below every healthy one, and collapsed runs among themselves by FD: when every
    run of a short rung is still collapsed the FDs still order them), then runs without a finite
    FD (tied last). Returns ``{"mean_rank": {candidate: float (NaN when never ranked)},
    "ranks": {metric: [{candidate: rank} per seed]}, "n_cells": {candidate: int}}``.

    Example: FDs a = (m1: [1, 4], m2: [2, 2]), b = ([2, 3], [1, 5]), c = ([3, 1], [3, 1]) rank
    m1: (a 1, b 2, c 3), (a 3, b 2, c 1); m2: (b 1, a 2, c 3), (c 1, a 2, b 3): every mean rank is
    2 (a three-way tie). With c's seed 1 collapsed: a (1+2+2+1)/4 = 1.5, b 1.5, c 3.
    """
    from scipy.stats import rankdata

    names = list(fd)
    if not names:
        raise ValueError("fd: expected at least one candidate")
    metrics = sorted({m for row in fd.values() for m in row})
    n_seeds = None
    for c in names:
        missing = [m for m in metrics if m not in fd[c]]
        if missing:
            raise ValueError(f"fd[{c!r}]: no FD for metric(s) {missing}")
        for m in metrics:
            k = len(fd[c][m])
            if n_seeds is None:
                n_seeds = k
            if k != n_seeds or k == 0:
                raise ValueError(f"fd[{c!r}][{m!r}]: expected {n_seeds} seed(s), got {k}")
    coll = {c: [bool(v) for v in (collapsed or {}).get(c, [False] * n_seeds)] for c in names}
    for c, v in coll.items():
        if len(v) != n_seeds:
            raise ValueError(f"collapsed[{c!r}]: expected {n_seeds} seed(s), got {len(v)}")
    excl = {(str(c), str(m)) for c, m in exclude}
    ranks: dict[str, list[dict[str, float]]] = {}
    cells: dict[str, list[float]] = {c: [] for c in names}
    for m in metrics:
        keep = [c for c in names if (c, m) not in excl]
        if not keep:
            continue
        ranks[m] = []
        for k in range(n_seeds):
            tiers: list[list[tuple[str, float]]] = [[], [], []]
            for c in keep:
                v = float(fd[c][m][k]) if fd[c][m][k] is not None else math.nan
                tiers[2 if not math.isfinite(v) else 1 if coll[c][k] else 0].append((c, v))
            cell, above = {}, 0
            for tier in tiers:
                if tier:
                    r = rankdata([v if math.isfinite(v) else 0.0 for _, v in tier])
                    cell.update({c: above + float(x) for (c, _), x in zip(tier, r)})
                    above += len(tier)
            ranks[m].append({c: cell[c] for c in keep})
            for c in keep:
                cells[c].append(cell[c])
    return {"mean_rank": {c: float(np.mean(v)) if v else math.nan for c, v in cells.items()},
            "ranks": ranks, "n_cells": {c: len(v) for c, v in cells.items()}}


def order_candidates(mean_rank: Mapping[str, float], prior: Sequence[str] = ()) -> list[str]:
    """Candidates best first: by mean FD rank (NaN last), ties broken by the position in
    ``prior`` (the score's order; candidates outside it after those in it), then by name."""
    pos = {c: i for i, c in enumerate(prior)}

    def key(c: str):
        v = float(mean_rank[c])
        return (not math.isfinite(v), v if math.isfinite(v) else 0.0, pos.get(c, len(pos)), c)

    return sorted(mean_rank, key=key)


def keep_shares(fd: Mapping[str, Mapping[str, Sequence[float]]], keep: int, *,
                collapsed: Mapping[str, Sequence[bool]] | None = None,
                exclude: Iterable[tuple[str, str]] = (), prior: Sequence[str] = (),
                n_boot: int = 1000, seed: int = 0) -> dict[str, float] | None:
    """How sure a rung's cut is: per candidate, the share of seed resamples in which it is among
    the ``keep`` best.

    Each resample draws, for every candidate independently, S of its S seeds with replacement
    (one index set shared by its metrics and collapse flags: seed k of a candidate is one
    generator), ranks them by :func:`run_ranks` and orders them by :func:`order_candidates`
    (ties by ``prior``), as the rung itself does. fd, collapsed, exclude: as :func:`run_ranks`.
    A share near 1 or 0 is a cut the seeds agree on; a stopped candidate with a large share
    was a close call. None with one seed (nothing to resample).

    Example: a = [1, 3] and b = [2, 2] in one metric, keep 1, prior (b, a): a is kept only when
    both its draws are seed 0 (probability 1/4; a tie at 1.5 goes to b by the prior).
    """
    if keep < 1:
        raise ValueError(f"keep: expected >= 1 candidate kept, got {keep}")
    if n_boot < 1:
        raise ValueError(f"n_boot: expected >= 1, got {n_boot}")
    names = list(fd)
    run_ranks(fd, collapsed, exclude)  # the shapes checked, with run_ranks' errors
    n_seeds = len(next(iter(fd[names[0]].values())))
    if n_seeds < 2:
        return None
    if keep >= len(names):  # no cut (the last rung's lone finalist): every resample keeps all
        return dict.fromkeys(names, 1.0)
    coll = {c: list((collapsed or {}).get(c, [False] * n_seeds)) for c in names}
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(names, 0)
    for _ in range(n_boot):
        sub, sub_coll = {}, {}
        for c in names:
            idx = rng.integers(0, n_seeds, n_seeds)
            sub[c] = {m: [v[k] for k in idx] for m, v in fd[c].items()}
            sub_coll[c] = [coll[c][k] for k in idx]
        order = order_candidates(run_ranks(sub, sub_coll, exclude)["mean_rank"], prior)
        for c in order[:keep]:
            counts[c] += 1
    return {c: counts[c] / n_boot for c in names}


def rung0(prior: Sequence[str], *, controls: Iterable[str] = (),
          unrankable: Mapping[str, str] | None = None, prior_keep: float = 1.0,
          prior_valid: bool = True) -> dict:
    """Rung 0: which scored candidates go on to training.

    prior: every scored candidate in the score's order (best first). Dropped: the controls
    (noise features, never trained), the ``unrankable`` ones (``{candidate: reason}``, e.g. no
    evaluation metric independent of them), then, when ``prior_keep`` < 1 and the prior is valid
    (the score ranked every control below every real candidate), all but the best
    ``ceil(prior_keep * n)`` of the n remaining. Returns ``{"survivors": [...] (prior order),
    "dropped": [{"candidate", "reason"}], "prior_keep_applied": bool}``.
    """
    if not (isinstance(prior_keep, int | float) and 0 < prior_keep <= 1):
        raise ValueError(f"--prior-keep: expected a fraction in (0, 1], got {prior_keep!r}")
    ctrl, bad = set(controls), dict(unrankable or {})
    dropped, valid = [], []
    for c in prior:
        if c in ctrl:
            dropped.append({"candidate": c, "reason": "control (noise features): scored, never "
                                                      "trained"})
        elif c in bad:
            dropped.append({"candidate": c, "reason": bad[c]})
        else:
            valid.append(c)
    applied = prior_keep < 1 and prior_valid and len(valid) > 1
    survivors = valid
    if applied:
        keep = max(1, math.ceil(prior_keep * len(valid) - 1e-9))
        survivors = valid[:keep]
        dropped += [{"candidate": c, "reason": f"below the best {keep} of {len(valid)} by the "
                                               f"score (--prior-keep {prior_keep:g})"}
                    for c in valid[keep:]]
    return {"survivors": survivors, "dropped": dropped, "prior_keep_applied": applied}


def compute_summary(rungs: Sequence[Mapping], *, n_candidates: int, seeds: int,
                    budget: int) -> dict:
    """Training compute of a selection against the full sweep (every one of ``n_candidates``
    real candidates x ``seeds`` trained to ``budget``): ``{"candidate_steps": sum of the rungs'
    candidate_steps, "full_sweep_candidate_steps": n * seeds * B, "fraction"}``."""
    spent = int(sum(int(r["candidate_steps"]) for r in rungs))
    full = int(n_candidates) * int(seeds) * int(budget)
    return {"candidate_steps": spent, "full_sweep_candidate_steps": full,
            "fraction": spent / full if full else math.nan, "n_candidates": int(n_candidates),
            "seeds": int(seeds), "budget": int(budget)}
