"""The blocked backend: the cost rebuilt by GEMM in row blocks at every reduction.

Memory O(B * block * M) instead of O(B * N * M): for problems whose cost matrix does not fit.
"""

from __future__ import annotations

import torch
from torch import Tensor

from featsel.ot.geometry import Geometry, _mask_diag_, sq_norms


class BlockedGeometry(Geometry):
    """Cost rebuilt by GEMM in blocks of rows at every reduction: O(B * block * M) memory.

    Hand-written because neither POT nor GeomLoss offers a batched, blocked GEMM route: GeomLoss's
    "online" mode recomputes the cost symbolically (slow at high D on CPU), "tensorized" holds it.
    """

    name = "blocked"

    def __init__(
        self, x: Tensor, y: Tensor, mask_diagonal: bool = False, block_rows: int = 1024,
        x2: Tensor | None = None, y2: Tensor | None = None,
    ):
        super().__init__(x, y, mask_diagonal)
        self.block_rows = max(1, int(block_rows))
        self.x2 = sq_norms(x) if x2 is None else x2
        self.y2 = (sq_norms(y) if y2 is None else y2).unsqueeze(-2)

    @classmethod
    def build(cls, x, y, mask_diagonal, *, x2, y2, memory_budget):
        # rows per block: four (B, rows, M) temporaries within the budget, at most 4096
        rows = max(1, min(4096, memory_budget // max(1, 4 * x.shape[0] * y.shape[1] * x.element_size())))
        return cls(x, y, mask_diagonal, block_rows=rows, x2=x2, y2=y2)

    def _blocks(self):
        n = self.x.shape[1]
        for s in range(0, n, self.block_rows):
            xb = self.x[:, s : s + self.block_rows]
            x2 = self.x2[:, s : s + self.block_rows].unsqueeze(-1)
            c = torch.baddbmm(x2 + self.y2, xb, self.y.transpose(-1, -2), alpha=-2.0).clamp_min_(0)
            if self.mask_diagonal:
                _mask_diag_(c, row_offset=s)
            yield s, c

    def lse(self, h: Tensor, eps: Tensor, axis: int) -> Tensor:
        e = eps.view(-1, 1, 1)
        if axis == 1:
            parts = [torch.logsumexp(h.unsqueeze(-2) - c / e, dim=-1) for _, c in self._blocks()]
            return torch.cat(parts, dim=-1)
        out = None
        for s, c in self._blocks():
            hb = h[:, s : s + c.shape[1]]
            part = torch.logsumexp(hb.unsqueeze(-1) - c / e, dim=-2)
            out = part if out is None else torch.logaddexp(out, part)
        return out

    def barycentric(self, hy: Tensor, eps: Tensor, values: Tensor) -> Tensor:
        e = eps.view(-1, 1, 1)
        parts = [
            torch.bmm(torch.softmax(hy.unsqueeze(-2) - c / e, dim=-1), values.to(c.dtype))
            for _, c in self._blocks()
        ]
        return torch.cat(parts, dim=-2)

