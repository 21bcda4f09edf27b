"""OT matching stability Delta_OT (paper eq. 16) and its curve over the minibatch size n.

From a held-out target pool P (per class when labels exist), draw a source set X (``n_source``
points; default: ``n`` points of P, set aside first so X is disjoint from the targets; or
user-given samples, e.g. an untrained generator's), then two independent target sets Y1, Y2 of
size n from the rest of P (each without replacement; they may overlap each other, as two
training minibatches can). With T_k the entropic barycentric map of X onto Y_k
(``T_k(x_i) = sum_j pi_ij y_j / sum_j pi_ij``, eps = tau * std(C_{X Y_k}) per problem):

    Delta_OT = mean_i ||T_1(x_i) - T_2(x_i)||^2 / (2 sigma^2),   sigma^2 = mean_{y in P} ||y - mean(P)||^2

with P the pool the targets are drawn from (the class pool when labels are given, so that 1
means "as erratic as two random targets of that class"). 0: the transport target does not
depend on the draw (e.g. n covers the pool, so Y1 = Y2); lower is better.

Blocks: every block ``(n, L, D)`` gives L independent sub-problems (locations), solved batched
with classes; a block's value is the mean over its sub-problems and classes, and a featurizer's
value is the mean over blocks, each block weighing the same (``block_weighting="block"``, as
for the effective rank: a per-location block's L sub-problems are L estimates of one view, and
weighting them L times let very stable 1-d per-pixel problems decide the value; ``"problems"``
keeps the earlier weight L). Sub-problems whose class
targets are constant (always-black pixels) are left out of the block mean. Each repeat is a fresh
draw; the reported interval is a percentile bootstrap of the mean over repeats. Solves are
converged (``recipe="converged"``: ``max_iter``/``tol``) or the paper code's fixed 4 iterations
from zero potentials (``recipe="paper"``). Everything runs in float32 (or float64) via
``featsel.ot.sinkhorn``; hand-written here because no library defines this statistic.

The curve ``Delta_OT(n)`` over a range of n (:func:`stability_curve`) estimates how fast
minibatch matching converges: for an intrinsic dimension d the barycentric-map error decays
roughly like ``n^{-2/d}``, so the log-log slope is about ``-2/d`` (a rough guide, not a
dimension estimator with guarantees).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import Tensor

from featsel.defaults import PAPER_TAUS
from featsel.diagnostics._blocks import as_blocks, as_labels
from featsel.ot import CONVERGED, PAPER, eps_from_tau, sinkhorn
from featsel.ot import RECIPES as OT_RECIPES

__all__ = [
    "DEFAULT_TAUS",
    "RECIPES",
    "StabilityConfig",
    "TauStability",
    "StabilityResult",
    "StabilityCurve",
    "barycentric_disagreement",
    "ot_stability",
    "ot_stability_report",
    "stability_curve",
    "bootstrap_interval",
]

DEFAULT_TAUS = PAPER_TAUS
RECIPES = tuple(OT_RECIPES)  # "converged", "paper": featsel.ot.recipe, shared with training


@dataclass
class StabilityConfig:
    """Defaults for Delta_OT (one place for each).

    taus: relative entropic regularisations (eps = tau * std(C)).
    n_repeats: independent draws (the bootstrap interval is over these).
    n_source: size of the source set per class (default: n).
    recipe: "converged" (max_iter / tol) or "paper" (exactly paper_iters iterations, tol 0).
    dtype: "float32" or "float64" for the solves.
    """

    taus: tuple[float, ...] = DEFAULT_TAUS
    n_repeats: int = 8
    n_source: int | None = None
    recipe: str = CONVERGED.name
    max_iter: int = CONVERGED.cross_iters
    tol: float = CONVERGED.tol  # L1 marginal error; ~float32 floor on near-degenerate sub-problems
    paper_iters: int = PAPER.cross_iters
    backend: str = "auto"
    dtype: str = "float32"
    n_boot: int = 1000
    ci: float = 0.95
    progress: bool = False
    max_sub_problems: int | None = None  # per block: a seeded subset of the L locations
    block_weighting: str = "block"  # "block": w_b = 1 | "problems": w_b = L_b (see rank.py)

    def solver_kwargs(self) -> dict:
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe: expected one of {RECIPES}, got {self.recipe!r}")
        if self.recipe == "paper":
            return {"max_iter": int(self.paper_iters), "tol": 0.0, "backend": self.backend}
        return {"max_iter": int(self.max_iter), "tol": float(self.tol), "backend": self.backend}


@dataclass
class TauStability:
    """Delta_OT at one tau: mean over repeats, bootstrap interval, and the breakdowns."""

    tau: float
    mean: float
    ci_low: float
    ci_high: float
    std: float
    repeats: list[float] = field(default_factory=list)
    per_block: dict[str, float] = field(default_factory=dict)
    per_class: dict[str, float] = field(default_factory=dict)
    max_iterations: int = 0
    max_marginal_error: float = 0.0


@dataclass
class StabilityResult:
    """Delta_OT per tau (keys are the taus), with the draw settings."""

    n: int
    n_source: int
    recipe: str
    classes: list[str]
    weights: dict[str, int]
    per_tau: dict[float, TauStability]

    def value(self, tau: float = 0.05) -> float:
        if tau not in self.per_tau:
            raise ValueError(f"tau: expected one of {sorted(self.per_tau)}, got {tau}")
        return self.per_tau[tau].mean

    def to_dict(self) -> dict:
        d = asdict(self)
        d["per_tau"] = {f"{t:g}": asdict(v) for t, v in self.per_tau.items()}
        return d


@dataclass
class StabilityCurve:
    """Delta_OT(n) at one tau and the least-squares slope of log Delta against log n."""

    tau: float
    ns: list[int]
    mean: list[float]
    ci_low: list[float]
    ci_high: list[float]
    slope: float
    intercept: float
    draws: list[int] = field(default_factory=list)  # repeats behind each point

    @property
    def dim_hint(self) -> float:
        """-2 / slope: the intrinsic dimension a ``n^{-2/d}`` rate would imply (nan if slope >= 0)."""
        return -2.0 / self.slope if self.slope < 0 else float("nan")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dim_hint"] = self.dim_hint
        return d


def bootstrap_interval(values: Sequence[float], *, n_boot: int = 1000, ci: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (a single value: that value)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("values: expected at least one value")
    if v.size == 1:
        return float(v[0]), float(v[0])
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - ci) / 2, (1 + ci) / 2])
    return float(lo), float(hi)


def barycentric_disagreement(x: Tensor, y1: Tensor, y2: Tensor, *, sigma2: Tensor | float,
                             tau: float | None = None, eps: Tensor | float | None = None,
                             **solver_kwargs) -> tuple[Tensor, dict]:
    """Delta for a batch of problems: ``mean_i ||T_1(x_i) - T_2(x_i)||^2 / (2 sigma2)``.

    x: (..., N, D), y1: (..., M, D), y2: (..., M', D), sigma2: (...,) or float.
    Give ``tau`` (eps = tau * std(C) per problem and per target set) or ``eps``.
    Returns ``(delta (...,), info)`` with ``info = {"n_iter", "marginal_error"}`` (tensors).
    """
    if (tau is None) == (eps is None):
        raise ValueError("barycentric_disagreement: give exactly one of tau and eps")
    maps, iters, errs = [], [], []
    for y in (y1, y2):
        e = eps_from_tau(x, y, tau) if tau is not None else eps
        out = sinkhorn(x, y, eps=e, **solver_kwargs)
        maps.append(out.barycentric_map())
        iters.append(out.n_iter)
        errs.append(out.marginal_error.max())
    sq = (maps[0] - maps[1]).square().sum(-1).mean(-1)
    sigma2 = torch.as_tensor(sigma2, dtype=sq.dtype, device=sq.device)
    return sq / (2.0 * sigma2), {"n_iter": max(iters), "marginal_error": torch.stack(errs).max()}


def _groups(labels: np.ndarray | None, n_pool: int) -> tuple[list[str], list[np.ndarray]]:
    if labels is None:
        return ["all"], [np.arange(n_pool)]
    classes = np.unique(labels)
    return [str(c) for c in classes], [np.flatnonzero(labels == c) for c in classes]


def _check_sizes(classes, pool_groups, src_groups, n, n_src, own_source: bool) -> None:
    if n < 2:
        raise ValueError(f"n: expected at least 2 target samples, got {n}")
    if n_src < 1:
        raise ValueError(f"n_source: expected at least 1, got {n_src}")
    for c, g in zip(classes, pool_groups):
        need = n + (n_src if own_source else 0)
        if g.size < need:
            where = "" if c == "all" else f" of class {c!r}"
            what = (f"n={n} targets + n_source={n_src} source points" if own_source
                    else f"n={n} targets")
            raise ValueError(f"n: too few samples{where} in the pool: {g.size}, need {need} "
                             f"({what}); lower n or add data")
    if src_groups is not None:
        for c, g in zip(classes, src_groups):
            if g.size < n_src:
                raise ValueError(f"source: class {c!r} has {g.size} samples, need n_source="
                                 f"{n_src}")


def _draw(rng, pool_groups, src_groups, n, n_src):
    """One repeat: index arrays (C, n_src), (C, n), (C, n) (source indices into the source)."""
    src, y1, y2 = [], [], []
    for ci, g in enumerate(pool_groups):
        if src_groups is None:
            perm = rng.permutation(g)
            src.append(perm[:n_src])
            rest = perm[n_src:]
        else:
            src.append(rng.choice(src_groups[ci], n_src, replace=False))
            rest = g
        y1.append(rng.choice(rest, n, replace=False))
        y2.append(rng.choice(rest, n, replace=False))
    return np.stack(src), np.stack(y1), np.stack(y2)


def _class_sigma2(block: Tensor, groups: list[np.ndarray]) -> Tensor:
    """block (n_pool, L, D) -> (C, L): mean ||y - mean||^2 over each class pool, per location."""
    out = []
    for g in groups:
        yb = block[torch.as_tensor(g)].double()
        out.append((yb - yb.mean(0, keepdim=True)).square().sum(-1).mean(0))
    s2 = torch.stack(out)
    if not bool((s2 > 0).any()):
        raise ValueError("pool: the targets are constant in every sub-problem of a block; "
                         "Delta_OT is undefined")
    return s2


def _gather(block: Tensor, idx: np.ndarray) -> Tensor:
    """block (n_pool, L, D), idx (C, k) -> (C, L, k, D)."""
    return block[torch.as_tensor(idx)].permute(0, 2, 1, 3).contiguous()


def ot_stability_report(pool, *, n: int, labels=None, source=None, source_labels=None,
                        seed: int = 0, config: StabilityConfig | None = None,
                        on_draw: Callable[[int, int], None] | None = None,
                        **overrides) -> StabilityResult:
    """Delta_OT for every tau in ``config.taus``, per block and per class, with intervals.

    pool: ``(n_pool, D)``, ``(n_pool, L, D)`` or ``{block: (n_pool, L, D) | Block}``;
    labels: ``(n_pool,)`` class of each pool sample (optional); source: like ``pool`` with the
    same blocks (optional, e.g. generated samples); source_labels: ``(n_source_pool,)``.
    Keyword overrides replace :class:`StabilityConfig` fields (``taus``, ``recipe``, ...).
    on_draw: called as ``on_draw(done, total)`` after each draw (progress of long scores).
    """
    cfg = config or StabilityConfig()
    if overrides:
        unknown = set(overrides) - set(StabilityConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(f"ot_stability: unknown option(s) {sorted(unknown)}")
        cfg = StabilityConfig(**{**asdict(cfg), **overrides})
    solver_kw = cfg.solver_kwargs()
    if cfg.dtype not in ("float32", "float64"):
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {cfg.dtype!r}")
    dtype = getattr(torch, cfg.dtype)
    taus = tuple(float(t) for t in cfg.taus)
    if not taus or any(not t > 0 for t in taus):
        raise ValueError(f"taus: expected positive values, got {cfg.taus}")
    if cfg.n_repeats < 1:
        raise ValueError(f"n_repeats: expected >= 1, got {cfg.n_repeats}")
    n = int(n)
    blocks = {k: v.to(dtype) for k, v in as_blocks(pool, "pool").items()}
    n_pool = next(iter(blocks.values())).shape[0]
    lab = None if labels is None else as_labels(labels, n_pool, "labels")
    classes, pool_groups = _groups(lab, n_pool)
    src_blocks, src_groups = None, None
    if source is not None:
        src_blocks = {k: v.to(dtype) for k, v in as_blocks(source, "source").items()}
        if set(src_blocks) != set(blocks):
            raise ValueError(f"source: expected the pool's blocks {sorted(blocks)}, got "
                             f"{sorted(src_blocks)}")
        for k in blocks:
            if src_blocks[k].shape[1:] != blocks[k].shape[1:]:
                raise ValueError(f"source[{k!r}]: expected per-sample shape "
                                 f"{tuple(blocks[k].shape[1:])}, got "
                                 f"{tuple(src_blocks[k].shape[1:])}")
        n_src_pool = next(iter(src_blocks.values())).shape[0]
        if lab is not None:
            if source_labels is None:
                raise ValueError("source_labels: required when both labels and source are given")
            slab = as_labels(source_labels, n_src_pool, "source_labels")
            src_groups = [np.flatnonzero(slab.astype(str) == c) for c in classes]
        else:
            src_groups = [np.arange(n_src_pool)]
    n_src = int(cfg.n_source) if cfg.n_source is not None else n
    _check_sizes(classes, pool_groups, src_groups, n, n_src, own_source=source is None)

    if cfg.block_weighting not in ("block", "problems"):
        raise ValueError(f"block_weighting: expected 'block' or 'problems', got "
                         f"{cfg.block_weighting!r}")
    weights = {k: int(v.shape[1]) if cfg.block_weighting == "problems" else 1
               for k, v in blocks.items()}
    if cfg.max_sub_problems is not None:
        # estimate each block's mean over L sub-problems from a seeded subset (weights keep L)
        if cfg.max_sub_problems < 1:
            raise ValueError(f"max_sub_problems: expected >= 1, got {cfg.max_sub_problems}")
        sub_rng = np.random.default_rng(seed + 7919)
        for k, v in list(blocks.items()):
            if v.shape[1] > cfg.max_sub_problems:
                keep = np.sort(sub_rng.choice(v.shape[1], cfg.max_sub_problems, replace=False))
                blocks[k] = v[:, torch.as_tensor(keep)]
                if src_blocks is not None:
                    src_blocks[k] = src_blocks[k][:, torch.as_tensor(keep)]
    wsum = float(sum(weights.values()))
    sigma2 = {k: _class_sigma2(v, pool_groups) for k, v in blocks.items()}
    # sub-problems whose class targets are constant (e.g. always-black pixels) carry no
    # information: T_1 = T_2 there. They are left out of the block mean (mask), and their
    # sigma^2 is set to 1 only to avoid 0/0.
    valid = {k: (v > v.amax() * 1e-12).to(dtype) for k, v in sigma2.items()}  # (C, L)
    sigma2 = {k: torch.where(valid[k] > 0, v, torch.ones_like(v)).to(dtype)
              for k, v in sigma2.items()}
    rng = np.random.default_rng(seed)
    # acc[tau][block]: list over repeats of (C,) per-class means over locations
    acc: dict[float, dict[str, list[Tensor]]] = {t: {k: [] for k in blocks} for t in taus}
    iters = {t: 0 for t in taus}
    errs: dict[float, list[Tensor]] = {t: [] for t in taus}
    rep_iter = range(cfg.n_repeats)
    if cfg.progress:
        from tqdm.auto import tqdm

        rep_iter = tqdm(rep_iter, desc="Delta_OT draws", leave=False)
    for rep in rep_iter:
        if on_draw is not None and rep:
            on_draw(rep, cfg.n_repeats)
        i_src, i_y1, i_y2 = _draw(rng, pool_groups, src_groups, n, n_src)
        for k, blk in blocks.items():
            xs = _gather(src_blocks[k] if src_blocks is not None else blk, i_src)
            y1, y2 = _gather(blk, i_y1), _gather(blk, i_y2)
            if not bool(valid[k].all()):
                # constant-target sub-problems: solve a trivial (all-zero) problem instead,
                # which converges at once; their value is masked out below
                keep = valid[k][:, :, None, None]
                xs, y1, y2 = xs * keep, y1 * keep, y2 * keep
            for t in taus:
                d, info = barycentric_disagreement(xs, y1, y2, sigma2=sigma2[k], tau=t,
                                                   **solver_kw)
                acc[t][k].append((d * valid[k]).sum(-1) / valid[k].sum(-1).clamp_min(1))
                iters[t] = max(iters[t], int(info["n_iter"]))
                errs[t].append(info["marginal_error"])
    if on_draw is not None:
        on_draw(cfg.n_repeats, cfg.n_repeats)
    per_tau: dict[float, TauStability] = {}
    for t in taus:
        per_block = {k: torch.stack(v).double() for k, v in acc[t].items()}  # (R, C)
        agg = sum(weights[k] * per_block[k] for k in blocks) / wsum  # (R, C)
        reps = agg.mean(1).tolist()
        lo, hi = bootstrap_interval(reps, n_boot=cfg.n_boot, ci=cfg.ci, seed=seed)
        per_tau[t] = TauStability(
            tau=t, mean=float(np.mean(reps)), ci_low=lo, ci_high=hi,
            std=float(np.std(reps, ddof=1)) if len(reps) > 1 else 0.0, repeats=reps,
            per_block={k: float(v.mean()) for k, v in per_block.items()},
            per_class=dict(zip(classes, agg.mean(0).tolist())),
            max_iterations=iters[t],
            max_marginal_error=float(torch.stack(errs[t]).max()),
        )
    return StabilityResult(n=n, n_source=n_src, recipe=cfg.recipe, classes=classes,
                           weights=weights, per_tau=per_tau)


def ot_stability(pool, *, n: int, tau: float = 0.05, source=None, labels=None, seed: int = 0,
                 source_labels=None, **options) -> float:
    """Delta_OT of ``pool: (num_samples, dim)`` (or blocks) at one tau, mean over repeats.

    See :func:`ot_stability_report` for the options (``n_repeats``, ``recipe``, ``n_source``,
    ``dtype``, ``backend``, ...).
    """
    res = ot_stability_report(pool, n=n, labels=labels, source=source,
                              source_labels=source_labels, seed=seed,
                              **{**options, "taus": (float(tau),)})
    return res.value(float(tau))


def _default_ns(pool_groups, n_src_fixed: int | None, own_source: bool, n_min: int = 8,
                points: int = 5) -> list[int]:
    # Largest n keeps Y1, Y2 drawn from at least 4n candidates: near full coverage the two
    # draws overlap and Delta falls to 0 for a reason unrelated to matching estimation.
    smallest = min(g.size for g in pool_groups)
    if own_source:
        n_max = (smallest - n_src_fixed) // 4 if n_src_fixed is not None else smallest // 5
    else:
        n_max = smallest // 4
    if n_max < n_min:
        raise ValueError(f"pool: too few samples per class ({smallest}) for a stability curve "
                         f"starting at n={n_min}")
    ns = np.unique(np.round(np.geomspace(n_min, n_max, points)).astype(int))
    return [int(v) for v in ns]


def stability_curve(pool, *, ns: Sequence[int] | None = None, tau: float = 0.05, labels=None,
                    source=None, source_labels=None, seed: int = 0,
                    config: StabilityConfig | None = None,
                    known: Mapping[int, StabilityResult] | None = None,
                    **overrides) -> StabilityCurve:
    """Delta_OT at each n in ``ns`` (default: 5 sizes from 8 to a fifth of the smallest class
    pool, so the target draws stay far from covering it) and the slope of ``log Delta`` against
    ``log n`` (points with Delta = 0 are left out).

    Every n uses the same ``seed``, so the same subset of locations (``max_sub_problems``) as a
    Delta_OT computed with that seed. known: ``{n: StabilityResult}`` already computed with the
    same pool, seed and settings (e.g. the ranking's): used as they are. Together they make the
    curve show the ranking table's value at the table's n: with a seed per n and fewer draws,
    that point came from other draws and locations, and the two bootstrap intervals over a few
    repeats (about +-1 standard error wide on digits, not +-2) did not cover the difference, so
    the curve and the table disagreed (issue 16, MNIST: 0.055 against 0.081).
    """
    cfg = config or StabilityConfig()
    cfg = StabilityConfig(**{**asdict(cfg), **overrides, "taus": (float(tau),)})
    if ns is None:
        blocks = as_blocks(pool, "pool")
        n_pool = next(iter(blocks.values())).shape[0]
        lab = None if labels is None else as_labels(labels, n_pool, "labels")
        ns = _default_ns(_groups(lab, n_pool)[1], cfg.n_source, source is None)
    ns = sorted(int(v) for v in ns)
    if not ns:
        raise ValueError("ns: expected at least one minibatch size (or None for the default)")
    means, los, his, draws = [], [], [], []
    for nv in ns:
        r = (known or {}).get(nv)
        if r is not None and float(tau) not in r.per_tau:
            raise ValueError(f"known[{nv}]: no Delta_OT at tau={float(tau):g} "
                             f"(has {sorted(r.per_tau)})")
        if r is None:
            r = ot_stability_report(pool, n=nv, labels=labels, source=source,
                                    source_labels=source_labels, seed=seed, config=cfg)
        ts = r.per_tau[float(tau)]
        means.append(ts.mean)
        los.append(ts.ci_low)
        his.append(ts.ci_high)
        draws.append(len(ts.repeats))
    pts = [(math.log(nv), math.log(m)) for nv, m in zip(ns, means) if m > 0]
    if len(pts) >= 2:
        lx, ly = np.array(pts).T
        slope, intercept = np.polyfit(lx, ly, 1)
    else:
        slope, intercept = float("nan"), float("nan")
    return StabilityCurve(float(tau), ns, means, los, his, float(slope), float(intercept), draws)
