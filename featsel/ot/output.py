"""`SinkhornOutput`: the potentials of a solve, and what can be computed from them."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from featsel.ot.geometry import Geometry


@dataclass
class SinkhornOutput:
    """Result of `sinkhorn` / `sinkhorn_self` for a batch of problems.

    Shapes, with `...` the batch shape of the inputs:
    f: (..., N), g: (..., M) dual potentials (docs/science.md); a: (..., N), b: (..., M) weights;
    eps: (...,); value: (...,) = <a, f> + <b, g>; marginal_error: (...,) L1 error of the row
    marginal (the column marginal is exact after the last g-update; for the symmetric solve
    both are the row error).
    """

    f: Tensor
    g: Tensor
    a: Tensor
    b: Tensor
    eps: Tensor
    n_iter: int
    backend: str
    geometry: Geometry = field(repr=False)
    y: Tensor = field(repr=False)  # the target points as given (uncentred), (..., M, D)
    symmetric: bool = False
    _marginal_error: Tensor | None = field(default=None, repr=False)

    @property
    def batch_shape(self) -> torch.Size:
        return self.f.shape[:-1]

    @property
    def value(self) -> Tensor:
        """OT_eps = <a, f> + <b, g> per problem, (...,)."""
        return (self.a * self.f).sum(-1) + (self.b * self.g).sum(-1)

    def _flat(self, t: Tensor) -> Tensor:
        return t.reshape(-1, *t.shape[len(self.batch_shape) :])

    @property
    def marginal_error(self) -> Tensor:
        """sum_i |sum_j pi_ij - a_i| per problem, (...,). Computed on first access if needed."""
        if self._marginal_error is None:
            with torch.no_grad():
                eps = self._flat(self.eps)
                hy = self._flat(self.g) / eps.unsqueeze(-1) + self._flat(self.b).log()
                t = -eps.unsqueeze(-1) * self.geometry.lse(hy, eps, axis=1)
                a, f = self._flat(self.a), self._flat(self.f)
                err = (a * (torch.exp((f - t) / eps.unsqueeze(-1)) - 1)).abs().sum(-1)
            self._marginal_error = err.reshape(self.batch_shape)
        return self._marginal_error

    def coupling(self) -> Tensor:
        """The dense plan pi_ij = a_i b_j exp((f_i + g_j - C_ij) / eps), (..., N, M)."""
        with torch.no_grad():
            eps = self._flat(self.eps).unsqueeze(-1)
            hx = self._flat(self.f) / eps + self._flat(self.a).log()
            hy = self._flat(self.g) / eps + self._flat(self.b).log()
            pi = torch.exp(self.geometry.log_kernel(hx, hy, self._flat(self.eps)))
        return pi.reshape(*self.batch_shape, *pi.shape[-2:])

    def barycentric_map(self, values: Tensor | None = None) -> Tensor:
        """T(x_i) = sum_j pi_ij v_j / sum_j pi_ij with v = y by default, (..., N, K).

        `values: (..., M, K)` transports any per-target quantity (other features, one-hot labels).
        The row-normalised form stays a convex combination of the v_j after a fixed number of
        iterations (docs/science.md), and equals sum_j pi_ij v_j / a_i at convergence.
        """
        v = self.y if values is None else values
        if v.shape[:-1] != self.g.shape:
            raise ValueError(
                f"values must have shape {tuple(self.g.shape)} + (K,), got {tuple(v.shape)}"
            )
        with torch.no_grad():
            eps = self._flat(self.eps)
            hy = self._flat(self.g) / eps.unsqueeze(-1) + self._flat(self.b).log()
            t = self.geometry.barycentric(hy, eps, self._flat(v.detach()))
        return t.reshape(*self.batch_shape, *t.shape[-2:])

    def potentials(self) -> tuple[Tensor, Tensor]:
        """(f, g), the form `init=` takes for a warm start."""
        return self.f, self.g
