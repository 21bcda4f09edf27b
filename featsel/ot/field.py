"""The training field: the Sinkhorn-CFG field of a batch of problems (paper Section 3.2,
Appendix C.1), the one `generation.loss` descends and `descent_field` is the w = 0 case of.

For generated points x: (..., N, D), class-real targets y: (..., M, D), unconditional real
targets y_u: (..., U, D) and guidance w = alpha - 1 (broadcast over the batch shape):

    V(x_i) = (1 + w) T_{x y}(x_i) - w T_{x y_u}(x_i) - T_{x x}(x_i)                  (guided_field)

with T the row-normalised barycentric maps of three solves (`SinkhornOutput.barycentric_map`).
At w = 0 it is T_xy - T_xx, the descent direction of the Sinkhorn divergence S_eps(x, y)
(envelope theorem: grad_{x_i} S_eps = 2 a_i (T_xx(x_i) - T_xy(x_i))).

The training recipe (`cfg_field`, per feature block; q: (K, L, N, C) generated, p: (K, L, M, C)
class-real, r: (K, L, U, C) unconditional, w: (K,), taus (T,)):

    eps_tau = tau * std(C_{q p} entries)     one value per block ("block", the paper code) or
                                             per problem ("problem")
    V_tau   = guided_field(q, p, r, w, eps_tau)              (T, K, L, N, C): one batched call
    lam     = sqrt(mean_{i, d} V_tau^2 + 1e-8)               per (tau, class, location)
    V       = sum_tau V_tau / lam      ("normalized")  |  sum_tau V_tau  ("raw")

The self term masks its diagonal (C_ii = +inf, a point may not match itself) by default, like
the official code. OT runs in float32 with autocast off, under no_grad. On a GPU at a fixed
number of iterations (the "paper" recipe) the solves take the sync-free route
(`featsel.ot.fixed`): no host sync, one cost per block shared by the taus, so the whole field
of a step can be captured in a CUDA graph. docs/science.md has the derivation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from featsel.defaults import PAPER_TAUS
from featsel.ot.checks import as_points
from featsel.ot.geometry import sq_cost
from featsel.ot.output import SinkhornOutput
from featsel.ot.recipe import CONVERGED, PAPER, RECIPES
from featsel.ot.solver import SolverConfig, sinkhorn, sinkhorn_self


@dataclass
class FieldOutput:
    """field: (..., N, D); the solves it came from (uncond is None without unconditional
    targets); their potentials warm-start the next call."""

    field: Tensor
    cross: SinkhornOutput
    self_: SinkhornOutput
    uncond: SinkhornOutput | None = None


def guided_field(
    x: Tensor,
    y: Tensor,
    y_uncond: Tensor | None = None,
    *,
    eps: float | Tensor,
    w: float | Tensor = 0.0,
    a: Tensor | None = None,
    b: Tensor | None = None,
    mask_self_diagonal: bool = False,
    max_iter: int = SolverConfig.max_iter,
    self_max_iter: int | None = None,
    tol: float = SolverConfig.tol,
    init: dict[str, tuple[Tensor, Tensor] | Tensor] | None = None,
    backend: str = "auto",
    sync_free: bool = False,
    **options,
) -> FieldOutput:
    """V = (1 + w) T_xy - w T_{x y_uncond} - T_xx (module docstring).

    x: (..., N, D), y: (..., M, D), y_uncond: (..., U, D) or None (then w must be 0),
    eps: float or (...,), w: float or a tensor broadcastable to the batch shape (...,);
    a: (..., N), b: (..., M) weights (uniform by default; y_uncond's are uniform).
    init: {"cross": (f, g), "uncond": (f, g), "self": f} warm starts. self_max_iter: the self
    solve's iterations (default max_iter). options: further `SolverConfig` fields.
    """
    init = init or {}
    kw = dict(tol=tol, backend=backend, sync_free=sync_free, **options)
    cross = sinkhorn(x, y, eps=eps, a=a, b=b, max_iter=max_iter, init=init.get("cross"), **kw)
    self_ = sinkhorn_self(x, eps=eps, a=a, mask_diagonal=mask_self_diagonal, init=init.get("self"),
                          max_iter=max_iter if self_max_iter is None else self_max_iter, **kw)
    wt = torch.as_tensor(w, dtype=cross.f.dtype, device=x.device)
    wt = wt.reshape(wt.shape + (1, 1))  # (..., 1, 1) against (..., N, D)
    field = (1 + wt) * cross.barycentric_map() - self_.barycentric_map()
    uncond = None
    if y_uncond is not None:
        uncond = sinkhorn(x, y_uncond, eps=eps, a=a, max_iter=max_iter, init=init.get("uncond"), **kw)
        field = field - wt * uncond.barycentric_map()
    elif not isinstance(w, Tensor) and w != 0:
        raise ValueError(f"w must be 0 without y_uncond (the unconditional targets), got {w!r}")
    return FieldOutput(field, cross, self_, uncond)


def descent_field(
    x: Tensor, y: Tensor, *, eps: float | Tensor, a: Tensor | None = None,
    b: Tensor | None = None, mask_self_diagonal: bool = False, max_iter: int = SolverConfig.max_iter,
    self_max_iter: int | None = None, **options,
) -> Tensor:
    """T_xy(x_i) - T_xx(x_i): (..., N, D), the direction in which x_i decreases S_eps(x, y)
    (`guided_field` at w = 0, with weights a, b).

    mask_self_diagonal=True is the paper code's self term (C_ii = +inf); self_max_iter sets the
    self solve's iterations separately (the paper's code: 4 cross, 2 self, with tol=0).
    options: further options of `sinkhorn` (tol, backend, eps_scaling, ...).
    """
    return guided_field(x, y, eps=eps, a=a, b=b, mask_self_diagonal=mask_self_diagonal,
                        max_iter=max_iter, self_max_iter=self_max_iter, **options).field


@dataclass
class FieldConfig:
    """The options of the training field (module docstring); defaults are the official code's.

    iterations: a recipe name of `featsel.ot.recipe` ("paper": cross_iters / self_iters from
    zero potentials, tol 0; "converged": until the marginal error is below tol, at most
    max_iter). self_term: "masked" (C_ii = +inf) | "unmasked". field: "normalized" (unit RMS per
    tau, class and location) | "raw". eps_scope: "block" | "problem". sync_free: "auto" (on
    GPUs with the paper recipe) | "always" | "never" (`featsel.ot.fixed`).
    """

    taus: tuple[float, ...] = PAPER_TAUS
    iterations: str = PAPER.name
    cross_iters: int = PAPER.cross_iters
    self_iters: int = PAPER.self_iters
    tol: float = CONVERGED.tol
    max_iter: int = CONVERGED.cross_iters
    self_term: str = "masked"
    field: str = "normalized"
    eps_scope: str = "block"
    backend: str = "auto"
    sync_free: str = "auto"

    def validate(self) -> FieldConfig:
        if not self.taus or not all(t > 0 for t in self.taus):
            raise ValueError(f"loss.taus must be positive numbers, got {self.taus}")
        choices = {"iterations": tuple(RECIPES), "self_term": ("masked", "unmasked"),
                   "field": ("normalized", "raw"), "eps_scope": ("block", "problem"),
                   "sync_free": ("auto", "always", "never")}
        for name, ok in choices.items():
            if getattr(self, name) not in ok:
                raise ValueError(f"loss.{name} must be one of {ok}, got {getattr(self, name)!r}")
        for name in ("cross_iters", "self_iters", "max_iter"):
            if getattr(self, name) < 1:
                raise ValueError(f"loss.{name} must be >= 1, got {getattr(self, name)}")
        if not self.tol > 0:
            raise ValueError(f"loss.tol must be > 0, got {self.tol}")
        if self.sync_free == "always" and self.iterations != PAPER.name:
            raise ValueError("loss.sync_free=always needs loss.iterations=paper (fixed iterations)")
        return self

    def solver_kwargs(self, kind: str) -> dict:
        """max_iter / tol for a "cross" or "self" solve."""
        if self.iterations == CONVERGED.name:
            return dict(max_iter=self.max_iter, tol=self.tol)
        return dict(max_iter=self.cross_iters if kind == "cross" else self.self_iters, tol=0.0)

    def use_sync_free(self, device: torch.device) -> bool:
        if self.sync_free == "auto":
            return device.type == "cuda" and self.iterations == PAPER.name
        return self.sync_free == "always"


def block_cost_std(q: Tensor, p: Tensor, scope: str, reduce_mean=None, check: bool = True) -> Tensor:
    """std of C_ij = ||q_i - p_j||^2 entries: q (..., N, C), p (..., M, C) -> (...,) float32, per
    problem ("problem") or one value over all problems broadcast to (...,) ("block"; the first
    two moments are averaged over DDP ranks by `reduce_mean`, so it is the std over all ranks).

    From the cost matrices themselves, built by one float32 GEMM on centred points (the
    solver's own cost), with the moments accumulated in float64: relative error ~1e-6, at a
    tenth of the time of the exact float64 moments of `cost_std` when C is large (D = 1280:
    the float64 route was half of a training step's OT time). check=False skips the
    finiteness check of the points (a device read).
    """
    if check:
        as_points("q", q)
        as_points("p", p)
    x, y = q.float(), p.float()
    mu = (x.sum(-2, keepdim=True) + y.sum(-2, keepdim=True)) / (x.shape[-2] + y.shape[-2])
    lead = x.shape[:-2]
    cost = sq_cost((x - mu).reshape(-1, *x.shape[-2:]), (y - mu).reshape(-1, *y.shape[-2:]))
    m1 = cost.mean((-1, -2), dtype=torch.float64).reshape(lead)  # E[C] per problem
    m2 = cost.square_().mean((-1, -2), dtype=torch.float64).reshape(lead)  # E[C^2]
    if scope == "problem":
        return (m2 - m1 * m1).clamp_min(0).sqrt().float()
    moments = torch.stack([m1.mean(), m2.mean()])  # over all problems of the block
    if reduce_mean is not None:
        moments = reduce_mean(moments)
    var = moments[1] - moments[0] ** 2
    return var.clamp_min(0).sqrt().float().expand(lead)


def cfg_field(
    q: Tensor,
    p: Tensor,
    r: Tensor | None,
    w: Tensor,
    cfg: FieldConfig,
    init: dict[str, Tensor] | None = None,
    reduce_mean=None,
    errors: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The summed CFG field of one block (module docstring).

    q: (K, L, N, C) generated, p: (K, L, M, C) class-real, r: (K, L, U, C) unconditional or
    None (then w must be 0), w: (K,) guidance. Returns V: (K, L, N, C) float32 and a dict with
    `lam` (T, K, L), marginal errors `err_c`, `err_u`, `err_s` (T, K, L) and the final
    potentials `f_c, g_c, f_u, g_u, f_s` (T, K, L, .) for warm starts. Runs under no_grad,
    float32, autocast off. `reduce_mean` averages the block-wide cost moments over DDP ranks.
    errors=False skips the marginal errors (one extra pass over each cost matrix).
    """
    taus = torch.tensor(cfg.taus, dtype=torch.float32, device=q.device)
    T = len(cfg.taus)
    sync_free = cfg.use_sync_free(q.device)
    with torch.no_grad(), torch.autocast(q.device.type, enabled=False):
        # contiguous (K, L, N, C): the solver's batched GEMMs are much slower on strided views
        q, p = q.detach().float().contiguous(), p.detach().float().contiguous()
        r = r.detach().float().contiguous() if r is not None else None
        std = block_cost_std(q, p, cfg.eps_scope, reduce_mean, check=not sync_free)  # (K, L)
        eps = taus[:, None, None] * std[None]  # (T, K, L)
        init = init or {}
        starts = {"cross": _pair(init, "c"), "uncond": _pair(init, "u"), "self": init.get("f_s")}
        # the tau axis is a broadcast (stride-0) view: both solver routes build each cost once
        def expand(t: Tensor) -> Tensor:
            return t.expand(T, *t.shape)

        cross_kw = cfg.solver_kwargs("cross")
        out_f = guided_field(
            expand(q), expand(p), expand(r) if r is not None else None, eps=eps,
            w=w.float().to(q.device)[None, :, None], mask_self_diagonal=cfg.self_term == "masked",
            max_iter=cross_kw["max_iter"], self_max_iter=cfg.solver_kwargs("self")["max_iter"],
            tol=cross_kw["tol"], init=starts, backend=cfg.backend, sync_free=sync_free,
        )
        V = out_f.field
        out: dict[str, Tensor] = {"f_c": out_f.cross.f, "g_c": out_f.cross.g, "f_s": out_f.self_.f}
        if errors:
            out.update(err_c=out_f.cross.marginal_error, err_s=out_f.self_.marginal_error)
        if out_f.uncond is not None:
            out.update(f_u=out_f.uncond.f, g_u=out_f.uncond.g)
            if errors:
                out["err_u"] = out_f.uncond.marginal_error
        lam = (V.pow(2).mean(dim=(-1, -2)) + 1e-8).sqrt()  # (T, K, L)
        out["lam"] = lam
        if cfg.field == "normalized":
            V = V / lam[..., None, None]
        return V.sum(0), out


def _pair(init: dict[str, Tensor], key: str) -> tuple[Tensor, Tensor] | None:
    f, g = init.get(f"f_{key}"), init.get(f"g_{key}")
    return (f, g) if f is not None and g is not None else None
