"""Sinkhorn couplings between two labelled sets, grouped by class (paper Figure 2).

For source points ``x`` (N, with classes ``c_i``) and targets ``y`` (M, classes ``c'_j``), with
uniform weights and ``eps = tau * std(C)``, the entropic plan ``pi`` (total mass 1) is summarised
by its class-to-class mass

    M_ab = sum_{c_i = a, c'_j = b} pi_ij,     same-class mass = sum_a M_aa,
    chance = sum_a p_a q_a    (p, q: class frequencies of x and y; the mass of the independent plan)

A semantic feature space puts most mass on the diagonal (same class >> chance). ``M`` is computed
from the row-normalised plan, ``M_ab = sum_{c_i = a} a_i T_i(onehot)_b`` with ``T`` the
barycentric map of the one-hot target labels (equal to ``pi`` at convergence), through
``featsel.ot``'s geometry, so large sets never form the N x M plan when the backend is
``blocked`` or ``keops``. The dense plan, rows and columns sorted by class, is kept for plotting
only when ``N * M`` is small. Blocks ``(N, L, D)`` give L couplings (one per location), averaged;
several blocks are averaged with weights L (as for Delta_OT).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from featsel.diagnostics._blocks import as_blocks, as_labels
from featsel.ot import CONVERGED, eps_from_tau, sinkhorn

__all__ = ["CouplingResult", "class_coupling", "MAX_PLAN_ENTRIES"]

MAX_PLAN_ENTRIES = 1_000_000  # keep the dense (grouped) plan for plots up to this size


@dataclass
class CouplingResult:
    """Class-grouped summary of a Sinkhorn coupling.

    classes: K class names; class_mass: (K, K) mass between source class a and target class b;
    same_class_mass: trace of class_mass; chance: sum_a p_a q_a; plan: (N, M) with rows and
    columns sorted by class (``row_labels``, ``col_labels``), or None for large sets.
    """

    classes: list[str]
    class_mass: np.ndarray
    same_class_mass: float
    chance: float
    tau: float
    plan: np.ndarray | None = None
    row_labels: list[str] | None = None
    col_labels: list[str] | None = None
    max_marginal_error: float = 0.0

    @property
    def lift(self) -> float:
        """same_class_mass / chance (1 = no class structure)."""
        return self.same_class_mass / self.chance

    def to_dict(self, include_plan: bool = False) -> dict:
        d = {
            "classes": list(self.classes),
            "class_mass": self.class_mass.tolist(),
            "same_class_mass": self.same_class_mass,
            "chance": self.chance,
            "lift": self.lift,
            "tau": self.tau,
            "max_marginal_error": self.max_marginal_error,
        }
        if include_plan and self.plan is not None:
            d["plan"] = self.plan.tolist()
            d["row_labels"] = list(self.row_labels or [])
            d["col_labels"] = list(self.col_labels or [])
        return d


def class_coupling(x, y, *, x_labels, y_labels, tau: float = 0.05, keep_plan: bool | None = None,
                   max_iter: int = CONVERGED.cross_iters, tol: float = CONVERGED.tol,
                   backend: str = "auto",
                   dtype: torch.dtype = torch.float32) -> CouplingResult:
    """Coupling of ``x`` onto ``y`` grouped by class.

    x: (N, D), (N, L, D) or blocks; y: the same blocks with M samples; x_labels: (N,),
    y_labels: (M,). keep_plan: keep the dense grouped plan (default: when N*M <= 1e6).
    """
    xb = as_blocks(x, "x")
    yb = as_blocks(y, "y")
    if set(xb) != set(yb):
        raise ValueError(f"x, y: expected the same blocks, got {sorted(xb)} and {sorted(yb)}")
    n = next(iter(xb.values())).shape[0]
    m = next(iter(yb.values())).shape[0]
    lx = as_labels(x_labels, n, "x_labels").astype(str)
    ly = as_labels(y_labels, m, "y_labels").astype(str)
    classes = sorted(set(lx) | set(ly))
    if not tau > 0:
        raise ValueError(f"tau: expected > 0, got {tau}")
    kidx = {c: i for i, c in enumerate(classes)}
    cx = torch.as_tensor([kidx[c] for c in lx])
    cy = torch.as_tensor([kidx[c] for c in ly])
    k = len(classes)
    if keep_plan is None:
        keep_plan = n * m <= MAX_PLAN_ENTRIES
    row_order = np.argsort(cx.numpy(), kind="stable")
    col_order = np.argsort(cy.numpy(), kind="stable")

    mass = torch.zeros(k, k, dtype=torch.float64)
    plan = torch.zeros(n, m, dtype=torch.float64) if keep_plan else None
    wsum, err = 0, 0.0
    for name, xt in xb.items():
        yt = yb[name]
        if xt.shape[1:] != yt.shape[1:]:
            raise ValueError(f"y[{name!r}]: expected per-sample shape {tuple(xt.shape[1:])}, "
                             f"got {tuple(yt.shape[1:])}")
        xs = xt.to(dtype).transpose(0, 1).contiguous()  # (L, N, D)
        ys = yt.to(dtype).transpose(0, 1).contiguous()  # (L, M, D)
        L = xs.shape[0]
        out = sinkhorn(xs, ys, eps=eps_from_tau(xs, ys, tau), max_iter=max_iter, tol=tol,
                       backend=backend)
        onehot = torch.nn.functional.one_hot(cy, k).to(dtype).expand(L, m, k)
        t = out.barycentric_map(values=onehot).double()  # (L, N, K), rows sum to 1
        rows = (t * out.a.double().unsqueeze(-1)).mean(0)  # (N, K), averaged over locations
        mass_b = torch.zeros(k, k, dtype=torch.float64).index_add_(0, cx, rows)
        mass += L * mass_b
        if plan is not None:
            plan += L * out.coupling().double().mean(0)
        wsum += L
        err = max(err, float(out.marginal_error.max()))
    mass /= wsum
    p = torch.bincount(cx, minlength=k).double() / n
    q = torch.bincount(cy, minlength=k).double() / m
    res = CouplingResult(classes=classes, class_mass=mass.numpy(),
                         same_class_mass=float(mass.trace()), chance=float((p * q).sum()),
                         tau=float(tau), max_marginal_error=err)
    if plan is not None:
        plan /= wsum
        res.plan = plan.numpy()[np.ix_(row_order, col_order)]
        res.row_labels = [classes[i] for i in cx.numpy()[row_order]]
        res.col_labels = [classes[i] for i in cy.numpy()[col_order]]
    return res
