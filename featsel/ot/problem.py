"""`OTProblem`: a batch of entropic OT problems, checked once, as the solvers take them.

    min_pi <C, pi> + eps KL(pi | a (x) b),   C_ij = ||x_i - y_j||^2,   pi 1 = a, pi^T 1 = b

Shapes, with `...` the batch shape: x: (..., N, D), y: (..., M, D), a: (..., N), b: (..., M),
eps: (...,). A *symmetric* problem is OT(a, a) of x with itself (y is x, b is a), solved with
one potential and the damped update; `mask_diagonal` sets C_ii = +inf (a point may not match
itself: the paper code's self term).

The problem only holds its data (points, weights, eps, mask): the geometry (`featsel.ot.backends`)
decides how the cost is held, the solver (`featsel.ot.solver`, `featsel.ot.fixed`) iterates, and
the output (`featsel.ot.output.SinkhornOutput`) carries the potentials and gives the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from featsel.ot.checks import as_eps, as_points, as_weights, check_pair


@dataclass(frozen=True)
class OTProblem:
    """See the module docstring. Build with `OTProblem.between` or `OTProblem.self_transport`,
    which check the inputs (one clear error naming the argument)."""

    x: Tensor
    y: Tensor
    a: Tensor
    b: Tensor
    eps: Tensor
    mask_diagonal: bool = False
    symmetric: bool = False

    @classmethod
    def between(
        cls, x: Tensor, y: Tensor, *, eps: float | Tensor, a: Tensor | None = None,
        b: Tensor | None = None, check: bool = True,
    ) -> OTProblem:
        """Problems between x: (..., N, D) and y: (..., M, D). check=False skips the checks
        that read values (finite weights and eps > 0: device reads, host syncs on a GPU);
        shapes, dtypes and devices are always checked. Finite points are checked by the solver
        on their squared norms, which it computes anyway."""
        x = as_points("x", x, check_finite=False)
        y = as_points("y", y, check_finite=False)
        x, y = check_pair(x, y)
        a = as_weights("a", a, x, check=check)
        b = as_weights("b", b, y, check=check)
        return cls(x, y, a, b, as_eps(eps, x.shape[:-2], x, check=check))

    @classmethod
    def self_transport(
        cls, x: Tensor, *, eps: float | Tensor, a: Tensor | None = None,
        mask_diagonal: bool = False, check: bool = True,
    ) -> OTProblem:
        """The symmetric problem OT(a, a) of x: (..., N, D) with itself."""
        x = as_points("x", x, check_finite=False)
        if mask_diagonal and x.shape[-2] < 2:
            raise ValueError("mask_diagonal needs at least 2 points (each point must have a partner)")
        a = as_weights("a", a, x, check=check)
        return cls(x, x, a, a, as_eps(eps, x.shape[:-2], x, check=check),
                   mask_diagonal=mask_diagonal, symmetric=True)

    @property
    def batch_shape(self) -> torch.Size:
        return self.x.shape[:-2]

    @property
    def sizes(self) -> tuple[int, int, int]:
        """(N, M, D)."""
        return self.x.shape[-2], self.y.shape[-2], self.x.shape[-1]

    def shared_axes(self) -> int:
        """How many leading batch axes both point clouds are broadcast along (stride 0, as
        `x.expand(T, ...)` makes): problems along them differ only by eps, so they can share
        one cost matrix."""
        k = 0
        for i in range(len(self.batch_shape)):
            if self.x.stride(i) != 0 or self.y.stride(i) != 0:
                break
            k += 1
        return k

    def inner_points(self, k: int) -> tuple[Tensor, Tensor]:
        """The points without their first k (broadcast) batch axes, flattened:
        x (B_in, N, D), y (B_in, M, D), B_in = prod(batch_shape[k:])."""
        n, m, d = self.sizes
        return self.x[(0,) * k].reshape(-1, n, d), self.y[(0,) * k].reshape(-1, m, d)
