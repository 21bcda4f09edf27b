"""The OT engine: batched entropic optimal transport on dense torch, blocked GEMM and KeOps.

Public API (shapes: `x: (..., N, D)`, `y: (..., M, D)`, any leading batch shape):

    sinkhorn(x, y, *, eps, a=None, b=None, max_iter, tol, init=None, backend="auto",
             eps_scaling=None) -> SinkhornOutput
    sinkhorn_self(x, *, eps, a=None, mask_diagonal=False, ...) -> SinkhornOutput   # g == f
    sinkhorn_divergence(x, y, *, eps, ...) -> (...,)
    descent_field(x, y, *, eps, mask_self_diagonal=False, ...) -> (..., N, D)      # T_xy - T_xx
    guided_field(x, y, y_uncond, *, eps, w, ...) -> FieldOutput    # (1+w) T_xy - w T_xu - T_xx
    cfg_field(q, p, r, w, FieldConfig) -> (V, info)     # the training field of one feature block
    OTProblem.between(x, y, eps=..) / .self_transport(x, eps=..); solve(problem, ...)
    Recipe, PAPER (4 cross / 2 self iterations, tol 0), CONVERGED, RECIPES
    GEOMETRIES (the backend registry: dense, blocked, keops), BACKENDS = ("auto", *GEOMETRIES)
    eps_from_tau(x, y, tau) -> (...,)       # tau * std(C) per problem
    SinkhornOutput: f, g, value, n_iter, marginal_error, coupling(), barycentric_map(values=None)

Cost C_ij = ||x_i - y_j||^2 (no 1/2); see docs/science.md for the conventions and how POT and
GeomLoss differ.
"""

from featsel.ot.backends import BACKENDS, GEOMETRIES, choose_backend, default_memory_budget
from featsel.ot.divergence import cost_std, eps_from_tau, sinkhorn_divergence
from featsel.ot.field import (
    FieldConfig,
    FieldOutput,
    block_cost_std,
    cfg_field,
    descent_field,
    guided_field,
)
from featsel.ot.keops import keops_available
from featsel.ot.output import SinkhornOutput
from featsel.ot.problem import OTProblem
from featsel.ot.recipe import CONVERGED, PAPER, RECIPES, Recipe
from featsel.ot.solver import SolverConfig, sinkhorn, sinkhorn_self, solve

__all__ = [
    "BACKENDS",
    "CONVERGED",
    "FieldConfig",
    "FieldOutput",
    "GEOMETRIES",
    "OTProblem",
    "PAPER",
    "RECIPES",
    "Recipe",
    "block_cost_std",
    "cfg_field",
    "guided_field",
    "solve",
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
