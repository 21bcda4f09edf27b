"""The dense backend: the cost held in memory, (B, N, M), built once by GEMM.

The solver also uses it for its kernel-domain iterations (`featsel.ot.solver`): matrix-vector
products with the stabilised kernel, no exp per iteration.
"""

from __future__ import annotations

import torch
from torch import Tensor

from featsel.ot.geometry import Geometry, _mask_diag_, sq_cost


class DenseGeometry(Geometry):
    """Cost held in memory, built once by GEMM: the fastest route whenever (B, N, M) fits."""

    name = "dense"

    def __init__(
        self, x: Tensor | None, y: Tensor | None, mask_diagonal: bool = False,
        cost: Tensor | None = None, x2: Tensor | None = None, y2: Tensor | None = None,
        chunk: int | None = None, kernels: list[Tensor | None] | None = None,
    ):
        """x: (B, N, D), y: (B, M, D); both may be None when `cost` (B, N, M) is given (with
        its diagonal already masked): every reduction reads the cost only. chunk: problems
        per pass (cache-sized on a CPU); kernels: per chunk, the solver's final kernel k with
        pi_ij ~ u_i k_ij, or None, so that the barycentric map is one product (no exp)."""
        super().__init__(x, y, mask_diagonal)
        self.chunk = chunk
        self.kernels = kernels
        self.cost = sq_cost(x, y, x2, y2) if cost is None else cost
        if mask_diagonal and cost is None:
            _mask_diag_(self.cost)

    @classmethod
    def build(cls, x, y, mask_diagonal, *, x2, y2, memory_budget):
        return cls(x, y, mask_diagonal, x2=x2, y2=y2)

    def lse(self, h: Tensor, eps: Tensor, axis: int) -> Tensor:
        ce = self.cost / eps.view(-1, 1, 1)
        if axis == 1:
            return torch.logsumexp(h.unsqueeze(-2) - ce, dim=-1)
        return torch.logsumexp(h.unsqueeze(-1) - ce, dim=-2)

    def log_kernel(self, hx: Tensor, hy: Tensor, eps: Tensor) -> Tensor:
        return hx.unsqueeze(-1) + hy.unsqueeze(-2) - self.cost / eps.view(-1, 1, 1)

    def barycentric(self, hy: Tensor, eps: Tensor, values: Tensor) -> Tensor:
        batch, n, _ = self.cost.shape
        step = self.chunk or batch
        values = values.to(self.cost.dtype)
        out = values.new_empty((batch, n, values.shape[-1]))
        for i, s in enumerate(range(0, batch, step)):
            sl = slice(s, s + step)
            k = self.kernels[i] if self.kernels else None
            if k is not None:  # rows of the kept kernel are the plan's rows up to a factor
                torch.bmm(k, values[sl], out=out[sl]).div_(k.sum(-1, keepdim=True))
                continue
            p = torch.div(self.cost[sl], -eps[sl].view(-1, 1, 1)).add_(hy[sl].unsqueeze(-2))
            torch.bmm(torch.softmax(p, dim=-1), values[sl], out=out[sl])
        return out


