"""Iteration recipes: how many Sinkhorn iterations a solve runs, named, shared by the
diagnostics (`featsel.diagnostics.stability`, `--recipe`) and training (`generation.loss`,
`loss.iterations`).

- "paper": the official code's fixed iterations from zero potentials, tol 0: 4 for the cross
  problems (source -> target), 2 for the symmetric self problem. Unconverged by design: the
  training field is read after these iterations (docs/science.md, "The training field").
- "converged": iterate until the L1 marginal error of every problem is <= tol (at most
  max_iter). tol 1e-4 is about the float32 floor on near-degenerate sub-problems.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """cross_iters / self_iters: iterations of the cross and the self solves (at most, when
    tol > 0); tol: stop at this marginal error (0: run exactly the iterations)."""

    name: str
    cross_iters: int
    self_iters: int
    tol: float


PAPER = Recipe("paper", cross_iters=4, self_iters=2, tol=0.0)
CONVERGED = Recipe("converged", cross_iters=1000, self_iters=1000, tol=1e-4)
RECIPES: dict[str, Recipe] = {r.name: r for r in (PAPER, CONVERGED)}
