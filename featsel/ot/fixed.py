"""The sync-free fixed-iteration solve: exactly `iters` log-domain iterations on a dense cost.

The checked solver (`featsel.ot.solver`) reads the device to decide things: finite inputs,
whether to centre, when to absorb the kernel-domain scalings, whether it has converged. Each
read is a host sync on a GPU, and a sync breaks a CUDA graph. At a fixed number of iterations
(tol = 0, the paper's 4 cross / 2 self) none of those decisions is needed, so this route takes
none of them: the same updates as `solver._log_step` / `_log_step_self`,

    f_i = -eps log sum_j exp(log b_j + g_j / eps - C_ij / eps)
    g_j = -eps log sum_i exp(log a_i + f_i / eps - C_ij / eps)
    f   <- (f + T(f)) / 2                                          (symmetric problems)

as a static sequence of kernels with no host sync and no value checks (NaN inputs give NaN
outputs instead of an error; use the checked solver to diagnose them). The points are always
centred (one shift per problem; the cost is translation invariant).

Batched eps axes: leading batch axes along which both point clouds are broadcast (stride 0, as
`x.expand(T, ...)` makes) share one cost matrix: it is built once by GEMM and divided by each
eps (the per-tau solves of a training block: one call, one cost, T scaled copies).

Slower than the checked solver on a CPU (one exp per entry and iteration instead of the
kernel-domain products), which is why it is opt-in (`sync_free=True`) and the training field
uses it on GPUs only.
"""

from __future__ import annotations

import torch
from torch import Tensor

from featsel.ot.geometry import Geometry, _mask_diag_, sq_cost
from featsel.ot.output import SinkhornOutput
from featsel.ot.problem import OTProblem


class ScaledCostGeometry(Geometry):
    """A dense geometry that holds C / eps, (B, N, M), instead of C: the fixed route's
    geometry (its eps are fixed by construction); the `eps` arguments are ignored."""

    name = "dense"

    def __init__(self, x: Tensor, y: Tensor, scaled_cost: Tensor, mask_diagonal: bool = False):
        super().__init__(x, y, mask_diagonal)
        self.scaled_cost = scaled_cost

    def lse(self, h: Tensor, eps: Tensor, axis: int) -> Tensor:
        if axis == 1:
            return torch.logsumexp(h.unsqueeze(-2) - self.scaled_cost, dim=-1)
        return torch.logsumexp(h.unsqueeze(-1) - self.scaled_cost, dim=-2)

    def log_kernel(self, hx: Tensor, hy: Tensor, eps: Tensor) -> Tensor:
        return hx.unsqueeze(-1) + hy.unsqueeze(-2) - self.scaled_cost

    def barycentric(self, hy: Tensor, eps: Tensor, values: Tensor) -> Tensor:
        p = torch.softmax(hy.unsqueeze(-2) - self.scaled_cost, dim=-1)
        return torch.bmm(p, values.to(p.dtype))


def solve_fixed(
    problem: OTProblem, iters: int, init: SinkhornOutput | tuple[Tensor, Tensor] | None = None
) -> SinkhornOutput:
    """`iters` log-domain iterations of `problem` (dense, no host sync). init: potentials
    (f, g) of the problem's batch shape, or an earlier output. Runs under no_grad (the caller,
    `solver.solve`, disables autocast)."""
    bshape = problem.batch_shape
    n, m, d = problem.sizes
    k = problem.shared_axes()
    n_lead = bshape[:k].numel()
    x, y = problem.inner_points(k)  # without the broadcast axes: (B_in, N, D), (B_in, M, D)
    y = x if problem.symmetric else y
    mu = (x.sum(-2, keepdim=True) + (0 if problem.symmetric else y.sum(-2, keepdim=True)))
    mu = mu / (n if problem.symmetric else n + m)
    xc = x - mu
    yc = xc if problem.symmetric else y - mu
    cost = sq_cost(xc, yc)  # (B_in, N, M), built once for every broadcast axis
    if problem.mask_diagonal:
        _mask_diag_(cost)
    b_in = cost.shape[0]
    eps = problem.eps.reshape(n_lead, b_in)
    scaled = (cost.unsqueeze(0) / eps[..., None, None]).reshape(n_lead * b_in, n, m)
    e = eps.reshape(-1, 1)
    loga = problem.a.reshape(-1, n).log()
    logb = loga if problem.symmetric else problem.b.reshape(-1, m).log()
    if init is None:
        f = loga.new_zeros(loga.shape)
        g = f if problem.symmetric else logb.new_zeros(logb.shape)
    else:
        f0, g0 = init.potentials() if isinstance(init, SinkhornOutput) else init
        if f0.shape != bshape + (n,) or g0.shape != bshape + (m,):
            raise ValueError(f"init must be potentials (f, g) of shapes {tuple(bshape + (n,))} and "
                             f"{tuple(bshape + (m,))}, got {tuple(f0.shape)} and {tuple(g0.shape)}")
        f = f0.detach().to(loga.dtype).reshape(-1, n)
        g = f if problem.symmetric else g0.detach().to(loga.dtype).reshape(-1, m)
    for _ in range(iters):
        if problem.symmetric:
            f = 0.5 * (f - e * torch.logsumexp((loga + f / e).unsqueeze(-2) - scaled, dim=-1))
            g = f
        else:
            f = -e * torch.logsumexp((logb + g / e).unsqueeze(-2) - scaled, dim=-1)
            g = -e * torch.logsumexp((loga + f / e).unsqueeze(-1) - scaled, dim=-2)
    geom = ScaledCostGeometry(xc, yc, scaled, problem.mask_diagonal)
    return SinkhornOutput(
        f=f.reshape(bshape + (n,)), g=g.reshape(bshape + (m,)), a=problem.a, b=problem.b,
        eps=problem.eps, n_iter=iters, backend="dense", geometry=geom, y=problem.y,
        symmetric=problem.symmetric,
    )
