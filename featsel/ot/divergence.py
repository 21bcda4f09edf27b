"""Sinkhorn divergence and the relative eps used throughout the project (its descent field is
`featsel.ot.field.descent_field`).

    S_eps(x, y) = OT_eps(x, y) - OT_eps(x, x) / 2 - OT_eps(y, y) / 2        (>= 0, 0 iff equal)

Gradient (envelope theorem, uniform weights a_i = 1/N): grad_{x_i} S_eps = 2 a_i (T_xx(x_i) -
T_xy(x_i)), so the descent direction is the field T_xy(x_i) - T_xx(x_i): cross-transport target
minus self-transport correction. No backpropagation through the solver is ever needed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from featsel.ot.checks import as_points, check_pair
from featsel.ot.solver import sinkhorn, sinkhorn_self


def sinkhorn_divergence(
    x: Tensor, y: Tensor, *, eps: float | Tensor, a: Tensor | None = None,
    b: Tensor | None = None, **options,
) -> Tensor:
    """S_eps per problem, (...,), for x: (..., N, D), y: (..., M, D), debiased with unmasked
    self terms (so S_eps(x, x) = 0). options: those of `sinkhorn` (max_iter, tol, backend,
    eps_scaling, ...), used by all three solves."""
    xy = sinkhorn(x, y, eps=eps, a=a, b=b, **options)
    xx = sinkhorn_self(x, eps=eps, a=a, **options)
    yy = sinkhorn_self(y, eps=eps, a=b, **options)
    return xy.value - 0.5 * (xx.value + yy.value)


def cost_std(x: Tensor, y: Tensor) -> Tensor:
    """Standard deviation of the entries of C_ij = ||x_i - y_j||^2 per problem, (...,).

    Exact, from moments in float64 without forming C: O((N + M) D^2) memory-light work when
    D^2 <= N M, else one Gram matrix X Y^T (the cost of forming C, without the exps):
    with centred points, C = |x|^2 + |y|^2 - 2 x.y, and over independent uniform i, j,
    Var C = Var|x|^2 + Var|y|^2 + 4 E[(x.y)^2] - 4 E[|x|^2 x].E[y] ... expanded below.
    Population std (divide by N M).
    """
    x = as_points("x", x)
    y = as_points("y", y)
    x, y = check_pair(x, y)
    x, y = x.double(), y.double()
    mu = torch.cat([x, y], dim=-2).mean(-2, keepdim=True)
    x, y = x - mu, y - mu
    nx, ny = (x * x).sum(-1), (y * y).sum(-1)  # (..., N), (..., M)
    mx, my = x.mean(-2), y.mean(-2)  # (..., D)
    n, m, d = x.shape[-2], y.shape[-2], x.shape[-1]
    e_c = nx.mean(-1) + ny.mean(-1) - 2 * (mx * my).sum(-1)
    # E[C^2] = E[(A + B - 2P)^2], A = |x|^2, B = |y|^2, P = x.y, x and y independent
    e_a2, e_b2 = (nx * nx).mean(-1), (ny * ny).mean(-1)
    e_ab = nx.mean(-1) * ny.mean(-1)
    if d * d <= n * m:  # E[P^2] = tr(Sx Sy) with Sx = E[x x^T]: (..., D, D) second moments
        sx = x.transpose(-1, -2) @ x / n
        sy = y.transpose(-1, -2) @ y / m
        e_p2 = (sx * sy).sum((-1, -2))
    else:  # high dimension: E[P^2] = |X Y^T|_F^2 / (N M), (..., N, M) instead of (..., D, D)
        e_p2 = (x @ y.transpose(-1, -2)).pow(2).mean((-1, -2))
    e_ap = ((nx.unsqueeze(-1) * x).mean(-2) * my).sum(-1)  # E[|x|^2 x] . E[y]
    e_bp = ((ny.unsqueeze(-1) * y).mean(-2) * mx).sum(-1)
    e_c2 = e_a2 + e_b2 + 4 * e_p2 + 2 * e_ab - 4 * e_ap - 4 * e_bp
    return (e_c2 - e_c * e_c).clamp_min(0).sqrt()


def eps_from_tau(x: Tensor, y: Tensor, tau: float) -> Tensor:
    """eps = tau * std(C_ij) per problem, (...,), in the dtype of x (the paper's relative eps)."""
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau!r}")
    s = cost_std(x, y)
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    return (tau * s).to(dtype).clamp_min(torch.finfo(dtype).tiny)
