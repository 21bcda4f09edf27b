"""Geometries: how the cost C_ij = ||x_i - y_j||^2 is held and reduced, one class per backend.

Every geometry works on flattened batches, `x: (B, N, D)`, `y: (B, M, D)`, `eps: (B,)`, and
offers the two log-sum-exp reductions the Sinkhorn updates need,

    lse(h, axis=1)_i = log sum_j exp(h_j - C_ij / eps)        h: (B, M) -> (B, N)
    lse(h, axis=0)_j = log sum_i exp(h_i - C_ij / eps)        h: (B, N) -> (B, M)

and the row-normalised barycentric projection (docs/science.md)

    T(x_i) = sum_j pi_ij v_j / sum_j pi_ij,  pi_ij ~ exp(h_j - C_ij / eps)  (f_i cancels).

Backends, one file each, listed in `featsel/ot/backends.py` (the registry): `dense.py`,
`blocked.py`, `keops.py`. A new backend is a `Geometry` subclass in a new file (the two
reductions, `barycentric` and, if the cost is not held, `log_kernel`) plus one line in
`backends.GEOMETRIES`; the solver runs the log-domain iterations on any geometry.

The points are centred when needed (`prepare_points`) before any cost is formed: the cost is
translation invariant and centring limits the cancellation in |x|^2 + |y|^2 - 2 x.y.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def sq_norms(x: Tensor) -> Tensor:
    """|x_i|^2 as one fused reduction (no temporary of the size of x). x: (B, N, D) -> (B, N)."""
    return torch.linalg.vector_norm(x, dim=-1).square_()


def prepare_points(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Check x: (B, N, D), y: (B, M, D) for NaN/Inf and centre them if needed.

    Returns (x, y, |x_i|^2, |y_j|^2). The squared norms serve three purposes at the price of one
    fused pass: the finiteness check (a NaN or Inf entry makes its norm non-finite), the
    decision to centre, and the cost. Centring (a common shift per problem, under which the
    cost is invariant) limits the cancellation in |x|^2 + |y|^2 - 2 x.y; it is skipped unless the
    mean dominates the spread, since copying large feature batches is not free.
    """
    x2 = sq_norms(x)
    y2 = x2 if y is x else sq_norms(y)
    for name, t in (("x", x2), ("y", y2)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or Inf values (or values too large for {t.dtype})")
    n, m = x.shape[-2], y.shape[-2]
    mu = (x.sum(-2) + y.sum(-2)) / (n + m)  # (B, D)
    scale = (x2.sum(-1) + y2.sum(-1)) / (n + m)  # mean squared norm, (B,)
    # float32 loses about log10(1 + |mu|^2 / Var) digits to the cancellation: centre only when
    # the mean dominates the spread (|mu|^2 > Var), a copy is not worth less
    if bool(((mu * mu).sum(-1) <= 0.5 * scale).all()):
        return x, y, x2, y2
    mu = mu.unsqueeze(-2)
    xc = x - mu
    yc = xc if y is x else y - mu
    x2 = sq_norms(xc)
    return xc, yc, x2, x2 if y is x else sq_norms(yc)


def sq_cost(x: Tensor, y: Tensor, x2: Tensor | None = None, y2: Tensor | None = None) -> Tensor:
    """C_ij = ||x_i - y_j||^2 by one batched GEMM. x: (B, N, D), y: (B, M, D) -> (B, N, M).

    x2: (B, N), y2: (B, M) squared norms, when already computed."""
    x2 = sq_norms(x) if x2 is None else x2
    y2 = sq_norms(y) if y2 is None else y2
    return torch.baddbmm(
        x2.unsqueeze(-1) + y2.unsqueeze(-2), x, y.transpose(-1, -2), alpha=-2.0
    ).clamp_min_(0.0)


def _mask_diag_(c: Tensor, row_offset: int = 0) -> Tensor:
    """Set C_ii = +inf in place on a row block c: (B, rows, M) starting at row `row_offset`."""
    rows = c.shape[-2]
    idx = torch.arange(rows, device=c.device)
    cols = idx + row_offset
    keep = cols < c.shape[-1]
    c[:, idx[keep], cols[keep]] = math.inf
    return c


class Geometry:
    """Common interface; `x: (B, N, D)`, `y: (B, M, D)` already centred, `eps: (B,)`."""

    name = "base"

    def __init__(self, x: Tensor, y: Tensor, mask_diagonal: bool = False):
        self.x, self.y = x, y
        self.mask_diagonal = mask_diagonal

    @classmethod
    def build(
        cls, x: Tensor, y: Tensor, mask_diagonal: bool, *, x2: Tensor, y2: Tensor,
        memory_budget: int,
    ) -> Geometry:
        """The solver's constructor: x2 (B, N), y2 (B, M) squared norms (already computed),
        memory_budget in bytes. Backends that need neither take the plain constructor."""
        return cls(x, y, mask_diagonal)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.x.shape[0], self.x.shape[1], self.y.shape[1]

    def lse(self, h: Tensor, eps: Tensor, axis: int) -> Tensor:
        raise NotImplementedError

    def log_kernel(self, hx: Tensor, hy: Tensor, eps: Tensor) -> Tensor:
        """(hx_i + hy_j - C_ij / eps): (B, N, M), dense. For `coupling()` only."""
        c = sq_cost(self.x, self.y)
        if self.mask_diagonal:
            _mask_diag_(c)
        return hx.unsqueeze(-1) + hy.unsqueeze(-2) - c / eps.view(-1, 1, 1)

    def barycentric(self, hy: Tensor, eps: Tensor, values: Tensor) -> Tensor:
        """sum_j softmax_j(hy_j - C_ij / eps) values_j. hy: (B, M), values: (B, M, K) -> (B, N, K)."""
        raise NotImplementedError


