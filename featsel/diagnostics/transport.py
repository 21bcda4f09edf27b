"""What the generator receives: feature-space plans judged in the generation space u.

The generator never sees features. Each step it receives barycentric targets computed from
couplings in feature space, as gradients in its generation space u (pixels, a VAE latent, PCA
coordinates of genes). Two diagnostics measure those plans where the generator lives
(docs/science.md, "Transport fidelity" and "Target stability").

Draws (per class c when labels exist, and unconditionally over the whole pool, "all"): a
source set X of n points and target sets Y (Y1, Y2 for the stability) of n points, X disjoint
from the targets. For every feature block b (``(n_pool, L_b, D_b)``) and sub-problem l (a
location; at most ``max_sub_problems`` of them, a seeded subset), the entropic plan
``pi^{b,l}`` (uniform weights a = b = 1/n, Sinkhorn to an L1 marginal error of 1e-3: the row-normalised
plan is what is used, ``featsel.ot.sinkhorn``) is
computed on the feature cost ``C^feat_ij = ||phi_{b,l}(x_i) - phi_{b,l}(y_j)||^2`` with eps
from the *eps rule*:

- ``"perplexity"`` (default): eps per sub-problem such that the geometric mean over rows of the
  row perplexity ``exp(H(pi_i. / sum_j pi_ij))`` equals ``perplexity`` (default 4 "effective
  partners per source"), found by bisection on log eps (:func:`perplexity_eps`). At a fixed relative eps a
  low-dimensional space gets a blurrier plan (more partners per source) than a
  high-dimensional one, and blur alone moves both statistics; matching the perplexity compares
  candidates at the same blur.
- ``"tau"``: eps = tau * std(C^feat), the training loss's rule.
When C^feat is constant (a constant featurizer) every eps gives the independent coupling.

With ``P_ij = pi_ij / sum_j pi_ij`` (row-normalised, as the loss's barycentric map) and
sub-problem weights ``w_{b,l} = 1 / sum_b' L_b'`` (each sub-problem counts once, as the loss's
default ``block_weight="problems"`` weighs them), the generator effectively receives the
mixture plan ``P = sum_{b,l} w_{b,l} P^{b,l}``.

**Transport fidelity** (:func:`transport_fidelity`), with ``C^u_ij = ||u(x_i) - u(y_j)||^2``:

    pc_u = <P, C^u> / n  /  mean_ij C^u_ij   = sum_{b,l} w_{b,l} rho_{b,l}      (linear in P)

1 = the features carry no information about how to transport samples in u (independent noise,
constant features: the plan is a b^T in expectation); lower is better; when the features are u
itself it is the ratio of the plan's transport cost to the independent coupling's. A per-pixel
block of a grey image pairs samples by one pixel's value: its rho is near 1, so such blocks
cannot make a candidate look good by being easy to match.

**Target stability** (:func:`target_stability`), the generation-space analogue of Delta_OT:

    T_k(x_i) = sum_{b,l} w_{b,l} sum_j P^{b,l,k}_ij u(y^k_j),   k = 1, 2
    stab_u = mean_i ||T_1(x_i) - T_2(x_i)||^2 / (2 sigma_u^2),   sigma_u^2 = mean ||u - mean(u)||^2

over the class pool. Lower is better; unlike Delta_OT, a plan that averages everything is
stable here too, so read it beside the fidelity, not alone.

Both report the mean over classes and repeats (the per-class value and the unconditional
"all" value beside it), a percentile bootstrap interval over repeats, the achieved perplexity
and eps, and the classes left out because they had fewer than 2n samples. Hand-written: no
library defines these statistics.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import Tensor

from featsel.diagnostics._blocks import as_blocks, as_labels, class_groups
from featsel.ot import cost_std, sinkhorn

__all__ = [
    "EPS_RULES",
    "TransportConfig",
    "TransportResult",
    "plan_perplexity",
    "perplexity_eps",
    "transport_fidelity",
    "target_stability",
]

EPS_RULES = ("perplexity", "tau")


@dataclass
class TransportConfig:
    """Settings of the generation-space diagnostics (one place for each default)."""

    eps_rule: str = "perplexity"       # "perplexity" | "tau"
    perplexity: float = 4.0            # effective partners per source ("perplexity" rule)
    tau: float = 0.05                  # eps = tau * std(C_feat) ("tau" rule)
    n_repeats: int = 8
    max_sub_problems: int | None = 16  # per block: a seeded subset of the L locations
    unconditional: bool = True         # also the whole-pool draw ("all")
    max_iter: int = 1000
    bisect_steps: int = 6              # Sinkhorn bisection steps after the softmax bracket
    bisect_iter: int = 100             # iterations per bisection solve (approximate plans)
    # eps / std(C_feat) searched; the floor 0.01 (half the loss's smallest tau): below it the
    # float32 solve stalls, and where ties in the features (blank image borders) make a
    # perplexity of 4 unreachable, a smaller eps changes the plan no more
    bisect_range: tuple[float, float] = (1e-2, 1e3)
    final_tol: float = 1e-3            # L1 marginal error of the final (warm-started) solves
    dtype: str = "float32"
    n_boot: int = 1000
    ci: float = 0.95

    def check(self) -> None:
        if self.eps_rule not in EPS_RULES:
            raise ValueError(f"eps_rule: expected one of {EPS_RULES}, got {self.eps_rule!r}")
        if not self.perplexity >= 1:
            raise ValueError(f"perplexity: expected >= 1, got {self.perplexity}")
        if not self.tau > 0:
            raise ValueError(f"tau: expected > 0, got {self.tau}")
        if self.n_repeats < 1:
            raise ValueError(f"n_repeats: expected >= 1, got {self.n_repeats}")
        if self.max_sub_problems is not None and self.max_sub_problems < 1:
            raise ValueError(f"max_sub_problems: expected >= 1, got {self.max_sub_problems}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype: expected 'float32' or 'float64', got {self.dtype!r}")


@dataclass
class TransportResult:
    """One generation-space diagnostic of one candidate."""

    name: str
    mean: float                       # mean over classes (conditional draws) and repeats
    ci_low: float
    ci_high: float
    repeats: list[float]
    per_class: dict[str, float]
    unconditional: float | None       # the whole-pool draw ("all"), None when not computed
    per_block: dict[str, float]
    perplexity: float                 # mean achieved row perplexity of the plans
    eps_rule: str
    n: int
    skipped_classes: dict[str, int] = field(default_factory=dict)  # class -> its size
    max_marginal_error: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _row_normalise(pi: Tensor) -> Tensor:
    """pi: (..., N, M) -> P_ij = pi_ij / sum_j pi_ij."""
    return pi / pi.sum(-1, keepdim=True).clamp_min(torch.finfo(pi.dtype).tiny)


def plan_perplexity(pi: Tensor) -> Tensor:
    """pi: (..., N, M) plan -> (...,) geometric mean over rows of exp(H(row-normalised row))."""
    p = _row_normalise(pi)
    h = -(p * torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))).sum(-1)
    return torch.exp(h.mean(-1))


def _constant_cost(s: Tensor) -> Tensor:
    return s <= 1e-12 * s.amax().clamp_min(1e-30)


def _softmax_perplexity(c: Tensor, log_eps: Tensor) -> Tensor:
    """c: (..., N, M) costs, log_eps: (...,) -> (...,) geometric-mean row perplexity of the
    one-sided kernel softmax_j(-C_ij / eps)."""
    logits = -c / torch.exp(log_eps)[..., None, None]
    logp = torch.log_softmax(logits, dim=-1)
    return torch.exp(-(logp.exp() * logp).sum(-1).mean(-1))


def perplexity_eps(x: Tensor, y: Tensor, perplexity: float, *, steps: int = 6,
                   max_iter: int = 100, rel_range: tuple[float, float] = (1e-2, 1e3)
                   ) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
    """eps (...,) for which the entropic plan between x: (..., N, D) and y: (..., M, D) has the
    given geometric-mean row perplexity.

    Two bisections on log eps: first on the one-sided kernel softmax_j(-C_ij / eps) (closed
    form, 40 steps over ``rel_range`` x std(C)), which lands within a small factor of the
    answer; then ``steps`` steps on Sinkhorn plans (``max_iter`` iterations each, warm-started)
    in [eps_0 / 4, 4 eps_0], which fixes eps to a factor 16^(1 / 2^(steps+1)) (1.04 at 6).
    Problems whose cost is constant get eps = 1 (every eps gives the independent coupling); a
    perplexity outside what the data allow (ties) gives the nearest end of the range.
    """
    s = cost_std(x, y).to(x.dtype)
    const = _constant_cost(s)
    s = torch.where(const, torch.ones_like(s), s)
    target = math.log(float(perplexity))
    c = torch.cdist(x, y).square()
    floor, ceil = torch.log(s * rel_range[0]), torch.log(s * rel_range[1])
    lo, hi = floor, ceil
    for _ in range(40):
        mid = (lo + hi) / 2
        too_blurred = torch.log(_softmax_perplexity(c, mid)) > target
        hi = torch.where(too_blurred, mid, hi)
        lo = torch.where(too_blurred, lo, mid)
    mid = (lo + hi) / 2
    lo = torch.maximum(mid - math.log(4.0), floor)
    hi = torch.minimum(mid + math.log(4.0), ceil)
    init = None
    for _ in range(int(steps)):
        mid = (lo + hi) / 2
        out = sinkhorn(x, y, eps=torch.exp(mid), max_iter=max_iter, tol=1e-3, init=init)
        init = out.potentials()
        too_blurred = torch.log(plan_perplexity(out.coupling())) > target
        hi = torch.where(too_blurred, mid, hi)
        lo = torch.where(too_blurred, lo, mid)
    eps = torch.exp((lo + hi) / 2)
    return torch.where(const, torch.ones_like(eps), eps), init


def _subsets(blocks: dict[str, Tensor], max_sub: int | None, seed: int
             ) -> tuple[dict[str, Tensor], dict[str, int]]:
    rng = np.random.default_rng(seed + 7919)
    out, weights = {}, {}
    for k, v in blocks.items():
        weights[k] = int(v.shape[1])
        if max_sub is not None and v.shape[1] > max_sub:
            keep = np.sort(rng.choice(v.shape[1], max_sub, replace=False))
            v = v[:, torch.as_tensor(keep)]
        out[k] = v
    return out, weights


def _row_plans(xs: Tensor, ys: Tensor, cfg: TransportConfig) -> tuple[Tensor, Tensor, Tensor]:
    """xs: (G, L, n, D), ys: (G, L, m, D) -> row-normalised plans (G, L, n, m), perplexity
    (G, L) and marginal error (G, L)."""
    init = None
    if cfg.eps_rule == "tau":
        s = cost_std(xs, ys).to(xs.dtype)
        eps = torch.where(_constant_cost(s), torch.ones_like(s), cfg.tau * s)
    else:
        eps, init = perplexity_eps(xs, ys, cfg.perplexity, steps=cfg.bisect_steps,
                                   max_iter=cfg.bisect_iter, rel_range=cfg.bisect_range)
    out = sinkhorn(xs, ys, eps=eps, max_iter=cfg.max_iter, tol=cfg.final_tol, init=init)
    p = _row_normalise(out.coupling())
    return p, plan_perplexity(p), out.marginal_error  # P is its own row normalisation


def _prepare(pool, u, labels, n: int, seed: int, cfg: TransportConfig, need_factor: int):
    cfg.check()
    dtype = getattr(torch, cfg.dtype)
    blocks = {k: v.to(dtype) for k, v in as_blocks(pool, "pool").items()}
    n_pool = next(iter(blocks.values())).shape[0]
    if isinstance(u, np.ndarray):
        u = torch.from_numpy(u)
    if not isinstance(u, Tensor) or u.ndim < 2 or u.shape[0] != n_pool:
        raise ValueError(f"u: expected generation-space samples of shape ({n_pool}, ...), got "
                         f"{tuple(getattr(u, 'shape', ()))}")
    u = u.detach().reshape(n_pool, -1).double()
    if not bool(torch.isfinite(u).all()):
        raise ValueError("u: contains NaN or infinite values")
    n = int(n)
    if n < 2:
        raise ValueError(f"n: expected at least 2, got {n}")
    lab = None if labels is None else as_labels(labels, n_pool, "labels")
    names, groups, skipped = class_groups(lab, n_pool, need_factor * n, cfg.unconditional)
    if skipped:
        warnings.warn(f"classes with fewer than {need_factor * n} samples left out: "
                      f"{skipped} (n={n})", stacklevel=3)
    sub, weights = _subsets(blocks, cfg.max_sub_problems, seed)
    return sub, weights, u, names, groups, skipped


def _gather(block: Tensor, idx: np.ndarray) -> Tensor:
    """block (n_pool, L, D), idx (G, k) -> (G, L, k, D)."""
    return block[torch.as_tensor(idx)].permute(0, 2, 1, 3).contiguous()


def _summarise(name: str, per_rep: list[Tensor], names: list[str], per_block: dict[str, list],
               perps: list[float], errs: list[float], cfg: TransportConfig, n: int,
               skipped: dict[str, int], seed: int) -> TransportResult:
    from featsel.diagnostics.stability import bootstrap_interval

    vals = torch.stack(per_rep).double()  # (R, G)
    cond = [i for i, c in enumerate(names) if c != "all"]
    uncond = names.index("all") if "all" in names else None
    use = cond if cond else [uncond]
    reps = vals[:, use].mean(1).tolist()
    lo, hi = bootstrap_interval(reps, n_boot=cfg.n_boot, ci=cfg.ci, seed=seed)
    return TransportResult(
        name=name, mean=float(np.mean(reps)), ci_low=lo, ci_high=hi, repeats=reps,
        per_class={c: float(vals[:, i].mean()) for i, c in enumerate(names) if c != "all"},
        unconditional=float(vals[:, uncond].mean()) if uncond is not None else None,
        per_block={k: float(np.mean(v)) for k, v in per_block.items()},
        perplexity=float(np.mean(perps)), eps_rule=cfg.eps_rule, n=n, skipped_classes=skipped,
        max_marginal_error=float(max(errs)) if errs else 0.0)


def transport_fidelity(pool, u, *, n: int, labels=None, seed: int = 0,
                       config: TransportConfig | None = None,
                       on_draw: Callable[[int, int], None] | None = None,
                       **overrides) -> TransportResult:
    """pc_u = <P, C^u> / <a b^T, C^u> of the feature plans (module docstring).

    pool: features ``(n_pool, D)``, ``(n_pool, L, D)`` or ``{block: (n_pool, L, D)}``;
    u: ``(n_pool, ...)`` the same samples in the generation space; labels: ``(n_pool,)``.
    Keyword overrides replace :class:`TransportConfig` fields. on_draw: called as
    ``on_draw(done, total)`` after each draw (progress of long scores).
    """
    cfg = _config(config, overrides)
    blocks, weights, u, names, groups, skipped = _prepare(pool, u, labels, n, seed, cfg, 2)
    wsum = float(sum(weights.values()))
    rng = np.random.default_rng(seed)
    per_rep, perps, errs = [], [], []
    per_block: dict[str, list] = {k: [] for k in blocks}
    for rep in range(cfg.n_repeats):
        if on_draw is not None and rep:
            on_draw(rep, cfg.n_repeats)
        idx = np.stack([rng.permutation(g)[: 2 * n] for g in groups])  # (G, 2n)
        ix, iy = idx[:, :n], idx[:, n:]
        ux, uy = u[torch.as_tensor(ix)], u[torch.as_tensor(iy)]  # (G, n, Du)
        cu = torch.cdist(ux, uy).square()  # (G, n, n), float64
        den = cu.mean((-1, -2)).clamp_min(1e-300)
        total = torch.zeros(len(groups), dtype=torch.float64)
        for k, blk in blocks.items():
            p, perp, err = _row_plans(_gather(blk, ix), _gather(blk, iy), cfg)
            rho = (p.double() * cu[:, None]).sum((-1, -2)) / n / den[:, None]  # (G, L')
            total += weights[k] / wsum * rho.mean(1)
            per_block[k].append(float(rho.mean()))
            perps.append(float(perp.mean()))
            errs.append(float(err.max()))
        per_rep.append(total)
    if on_draw is not None:
        on_draw(cfg.n_repeats, cfg.n_repeats)
    return _summarise("transport_fidelity", per_rep, names, per_block, perps, errs, cfg, n,
                      skipped, seed)


def target_stability(pool, u, *, n: int, labels=None, seed: int = 0,
                     config: TransportConfig | None = None, on_draw: Callable[[int, int], None] | None = None,
                     **overrides) -> TransportResult:
    """stab_u: disagreement in u of the mixture targets of two target draws (module docstring).

    Arguments as :func:`transport_fidelity`.
    """
    cfg = _config(config, overrides)
    blocks, weights, u, names, groups, skipped = _prepare(pool, u, labels, n, seed, cfg, 2)
    wsum = float(sum(weights.values()))
    sigma2 = torch.stack([(u[torch.as_tensor(g)] - u[torch.as_tensor(g)].mean(0)).square()
                          .sum(-1).mean() for g in groups]).clamp_min(1e-300)  # (G,)
    rng = np.random.default_rng(seed)
    per_rep, perps, errs = [], [], []
    for rep in range(cfg.n_repeats):
        if on_draw is not None and rep:
            on_draw(rep, cfg.n_repeats)
        ix, iy1, iy2 = [], [], []
        for g in groups:
            perm = rng.permutation(g)
            ix.append(perm[:n])
            rest = perm[n:]
            iy1.append(rng.choice(rest, n, replace=False))
            iy2.append(rng.choice(rest, n, replace=False))
        ix, iy1, iy2 = np.stack(ix), np.stack(iy1), np.stack(iy2)
        targets = []
        for iy in (iy1, iy2):
            uy = u[torch.as_tensor(iy)]  # (G, n, Du)
            t = torch.zeros(len(groups), n, u.shape[1], dtype=torch.float64)
            for k, blk in blocks.items():
                p, perp, err = _row_plans(_gather(blk, ix), _gather(blk, iy), cfg)
                t += weights[k] / wsum * (p.double() @ uy[:, None]).mean(1)  # (G, n, Du)
                perps.append(float(perp.mean()))
                errs.append(float(err.max()))
            targets.append(t)
        d = (targets[0] - targets[1]).square().sum(-1).mean(-1) / (2 * sigma2)  # (G,)
        per_rep.append(d)
    if on_draw is not None:
        on_draw(cfg.n_repeats, cfg.n_repeats)
    # a mixture target has no per-block breakdown
    return _summarise("target_stability", per_rep, names, {}, perps, errs, cfg, n,
                      skipped, seed)


def _config(config: TransportConfig | None, overrides: dict) -> TransportConfig:
    cfg = config or TransportConfig()
    if overrides:
        unknown = set(overrides) - set(TransportConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(f"transport: unknown option(s) {sorted(unknown)}")
        cfg = TransportConfig(**{**asdict(cfg), **overrides})
    return cfg
