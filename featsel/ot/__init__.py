"""The OT engine: batched entropic optimal transport on dense torch, blocked GEMM and KeOps.

Public API (shapes: `x: (..., N, D)`, `y: (..., M, D)`, any leading batch shape):

    sinkhorn(x, y, *, eps, a=None, b=None, max_iter, tol, init=None, backend="auto",
             eps_scaling=None) -> SinkhornOutput
    sinkhorn_self(x, *, eps, a=None, mask_diagonal=False, ...) -> SinkhornOutput   # g == f
    sinkhorn_divergence(x, y, *, eps, ...) -> (...,)
    descent_field(x, y, *, eps, mask_self_diagonal=False, ...) -> (..., N, D)      # T_xy - T_xx
    eps_from_tau(x, y, tau) -> (...,)       # tau * std(C) per problem
    SinkhornOutput: f, g, value, n_iter, marginal_error, coupling(), barycentric_map(values=None)

Cost C_ij = ||x_i - y_j||^2 (no 1/2); see docs/science.md for the conventions and how POT and
GeomLoss differ.
"""

from featsel.ot.divergence import cost_std, descent_field, eps_from_tau, sinkhorn_divergence
from featsel.ot.geometry import keops_available
from featsel.ot.output import SinkhornOutput
from featsel.ot.solver import (
    BACKENDS,
    SolverConfig,
    choose_backend,
    default_memory_budget,
    sinkhorn,
    sinkhorn_self,
)

__all__ = [
    "BACKENDS",
    "SinkhornOutput",
    "SolverConfig",
    "choose_backend",
    "cost_std",
    "default_memory_budget",
    "descent_field",
    "eps_from_tau",
    "keops_available",
    "sinkhorn",
    "sinkhorn_divergence",
    "sinkhorn_self",
]
