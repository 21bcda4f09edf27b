"""Inversion share: how much of the way to a target the features alone lead, in the generation space.

A generator trained through a featurizer phi receives gradients in its generation space u only
through phi's Jacobian, and is satisfied wherever phi(x) matches the data's features. For a
linear phi that set is the target plus phi's null space, which ``null_share`` (a regression of u
on the features) reads. A learned nonlinear encoder can also be matched *off* the data: points
that are not data but encode like data (the VAE couplings' failure in the studies, where
generators matched the VAE's own space and missed the data in every other). A regression on
data samples cannot see this. This criterion follows phi's gradient from one data point
towards another's features and measures, in u, how much of the way is left. It was built to
see that failure and, on the seen data sets, does not: the VAEs' shares are close to PCA-8's
(`docs/science.md` 5.5b). Matching one point's features leads near that point; the generators'
drift is a property of matching whole distributions, whose pairing leaves them free.

Per class c with at least 2n samples (others left out, listed; without labels one group "all"),
n disjoint pairs (y'_i, y_i) of its samples are drawn. Starting from x = y'_i, the feature loss

    loss(x) = sum_b L_b mean_{i, l} |phi_b(x_i)_l - phi_b(y_i)_l|^2 / d_b  /  sum_b L_b,
    d_b = mean_{i, l} |phi_b(y'_i)_l - phi_b(y_i)_l|^2   (each block starts at 1)

(blocks b of phi with L_b locations, the candidate's own blocks without the input-RMS block,
which every candidate shares) is minimised over x by L-BFGS (``steps`` iterations, at most
2 ``steps`` evaluations, strong Wolfe line search; all classes in one problem, each point's
term independent of the others). The value per class is

    inv_c = sum_i |x_i - y_i|^2 / sum_i |y'_i - y_i|^2

and the criterion is the mean over classes, to 3 decimals (lower is better; percentile
bootstrap interval over classes). 3 decimals: an injective nonlinear map is inverted to about
2e-4 in float32 with the default iterations (tested), so smaller differences are the
optimiser's residual, and two injective featurizers tie at 0 instead of being ordered by it.
0: the features lead all the way to the target (an injective phi, e.g. the ambient space);
for a linear phi = A u the iterates stay in y' + row(A), so at convergence x = y +
P_null(A) (y' - y) and inv_c is the share of the pairs' differences in phi's null space
(tested in closed form); 1: the features do not move x at all (the noise and constant controls,
which pass no gradient, by construction); > 1: following the features leads away from the
target (an encoder matched off the data).

Scale-free: multiplying a block by a constant changes neither the d_b-normalised loss nor the
path. Hand-written: no library measures a featurizer's inversion path in another space.
Defaults (``featsel.defaults.INVERSION_*``) were set before it ran on any study data; running
L-BFGS in one call with zero tolerances fixed a stall seen on the segment VAE (the first
definition stopped after one step). Chosen on the seen data sets by `studies/PROTOCOL.md`
addendum 10's rule, it failed its held-out test (vehicle silhouettes: Kendall +0.55, bar 0.6);
chosen again over all eleven seen data sets and spaces (addendum 13), it passed both bars on
held-out MAGIC (+0.60; its three held-out tests together +0.67, p = 0.0004) and is the
criterion `featsel score` ranks by (``featsel.defaults.RANK_CRITERION``). Its replication
(addendum 14) did not hold: +0.07 on phoneme, where it ranked a VAE first that trained worst,
+0.73 on ringnorm, together p = 0.07; `docs/science.md` 5.5b.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from featsel import defaults as D
from featsel.diagnostics._blocks import as_labels, class_groups
from featsel.diagnostics.stability import bootstrap_interval

__all__ = ["PRECISION", "InversionConfig", "InversionResult", "inversion_share"]

PRECISION = 3  # decimals of the criterion's value (module docstring)


@dataclass
class InversionConfig:
    """Settings of the inversion share (module docstring); one place for each default."""

    steps: int = D.INVERSION_STEPS      # L-BFGS iterations (at most 2 steps evaluations)
    history: int = D.INVERSION_HISTORY  # L-BFGS history size
    n_boot: int = 1000        # bootstrap resamples of the classes
    ci: float = 0.95

    def check(self) -> None:
        if self.steps < 1:
            raise ValueError(f"inversion steps: expected >= 1, got {self.steps}")
        if self.history < 1:
            raise ValueError(f"inversion history: expected >= 1, got {self.history}")


@dataclass
class InversionResult:
    """The inversion share of one candidate (module docstring)."""

    mean: float                        # mean over classes of inv_c
    ci_low: float
    ci_high: float
    per_class: dict[str, float]
    n: int
    steps: int
    moved: bool                        # False: the featurizer passes no gradient
    final_loss: float                  # the feature loss at the end (1 at the start)
    skipped_classes: dict[str, int] = field(default_factory=dict)  # class -> its size

    def to_dict(self) -> dict:
        return asdict(self)


def _feature_loss(featurizer: Any, x: Tensor, targets: dict[str, Tensor],
                  scale: dict[str, Tensor]) -> Tensor:
    """The d_b-normalised, L_b-weighted feature loss of x: (P, *S) (module docstring)."""
    blocks = featurizer.blocks(x, input_rms=False)
    total, weight = x.new_zeros(()), 0
    for k, b in blocks.items():
        q = b.x.float()  # (P, L, C)
        total = total + ((q - targets[k]) ** 2).sum(-1).mean() / scale[k] * q.shape[1]
        weight += q.shape[1]
    return total / weight


def inversion_share(
    featurizer: Any,
    u: Tensor,
    *,
    n: int,
    labels: np.ndarray | None = None,
    seed: int = 0,
    config: InversionConfig | None = None,
    on_draw: Callable[[int, int], None] | None = None,
    **overrides,
) -> InversionResult:
    """The inversion share of ``featurizer`` on the samples u (module docstring).

    featurizer: a `featsel.features.Featurizer` (its `blocks(u)` and `differentiable`), set up
    for the generation space of u; u: (N_pool, *S) generation-space samples; labels: (N_pool,)
    or None; n: pairs per class; overrides: `InversionConfig` fields. on_draw(done, total) is
    called exactly 2 ``steps`` times: after each evaluation of the loss, the rest at the end.
    """
    cfg = InversionConfig(**{**asdict(config or InversionConfig()), **overrides})
    cfg.check()
    if n < 1:
        raise ValueError(f"n: expected >= 1 pair per class, got {n}")
    lab = None if labels is None else as_labels(labels, len(u), "labels")
    names, groups, skipped = class_groups(lab, len(u), 2 * n, unconditional=False)
    if skipped:
        warnings.warn(f"inversion share: classes with fewer than {2 * n} samples left out: "
                      f"{skipped} (n={n})", stacklevel=2)
    rng = np.random.default_rng(seed)
    src, tgt = [], []
    for g in groups:
        perm = rng.permutation(g)[: 2 * n]
        src.append(perm[:n])
        tgt.append(perm[n:])
    u = u.detach().float()
    y0, y = u[np.concatenate(src)], u[np.concatenate(tgt)]  # (K n, *S), class-major
    moved = bool(getattr(featurizer, "differentiable", True)) and _has_gradient(featurizer, y0)
    x = y0.clone()
    final = 1.0
    if moved:
        x, final = _invert(featurizer, y0, y, cfg, on_draw)
    elif on_draw is not None:  # nothing to follow: the progress ticks all at once
        for i in range(2 * cfg.steps):
            on_draw(i + 1, 2 * cfg.steps)
    d_end = ((x - y) ** 2).reshape(len(y), -1).sum(1).double()
    d_start = ((y0 - y) ** 2).reshape(len(y), -1).sum(1).double()
    share = {}
    for k, name in enumerate(names):
        s0 = float(d_start[k * n:(k + 1) * n].sum())
        share[name] = float(d_end[k * n:(k + 1) * n].sum()) / s0 if s0 > 0 else 1.0
    vals = np.asarray([share[nm] for nm in names])
    lo, hi = bootstrap_interval(vals, n_boot=cfg.n_boot, ci=cfg.ci, seed=seed + 1)
    # to PRECISION: below it the value is L-BFGS's float32 residual, not the featurizer's (two
    # injective featurizers are tied at 0, not ordered by rounding noise); rounding is monotone,
    # so the interval still holds the value
    mean, lo, hi = (round(float(v), PRECISION) for v in (vals.mean(), lo, hi))
    return InversionResult(mean=mean, ci_low=lo, ci_high=hi, per_class=share, n=n,
                           steps=cfg.steps, moved=moved, final_loss=final,
                           skipped_classes=skipped)


def _has_gradient(featurizer: Any, x: Tensor) -> bool:
    """Whether any of the featurizer's blocks depends differentiably on x: (P, *S) (a control
    that does not set ``differentiable = False`` still passes no gradient)."""
    x = x[:2].clone().requires_grad_(True)
    with torch.enable_grad():
        return any(b.x.requires_grad for b in featurizer.blocks(x, input_rms=False).values())


def _invert(featurizer: Any, y0: Tensor, y: Tensor, cfg: InversionConfig,
            on_draw) -> tuple[Tensor, float]:
    """L-BFGS on x from y0 towards phi(y); returns (x, the final feature loss)."""
    with torch.no_grad():
        targets = {k: b.x.float() for k, b in featurizer.blocks(y, input_rms=False).items()}
        start = {k: b.x.float() for k, b in featurizer.blocks(y0, input_rms=False).items()}
        # d_b; a block that is equal on every pair carries nothing: weight 1 keeps it harmless
        scale = {k: ((start[k] - targets[k]) ** 2).sum(-1).mean().clamp_min(1e-30)
                 for k in targets}
    x = y0.clone().contiguous().requires_grad_(True)
    # L-BFGS views the gradient flat; a network may hand it back in another memory layout
    x.register_hook(lambda g: g.contiguous())
    # one call runs all the iterations (torch's loop keeps its history and line-search state;
    # one iteration per call stalled after the first step on the segment VAE); tolerances 0:
    # the loss starts at 1 and its gradient per coordinate is small (a mean over points), so
    # torch's defaults (1e-7, 1e-9) stopped some featurizers before their first move
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=cfg.steps, max_eval=2 * cfg.steps,
                            history_size=cfg.history, tolerance_grad=0.0,
                            tolerance_change=0.0, line_search_fn="strong_wolfe")
    evals = [0]

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=True)
        loss = _feature_loss(featurizer, x, targets, scale)
        loss.backward()
        evals[0] += 1
        if on_draw is not None and evals[0] <= 2 * cfg.steps:
            on_draw(evals[0], 2 * cfg.steps)
        return loss

    opt.step(closure)
    # exactly 2 steps ticks: L-BFGS stops early when converged (a line search may also end
    # a few evaluations past max_eval; those are not reported)
    for i in range(evals[0], 2 * cfg.steps) if on_draw is not None else ():
        on_draw(i + 1, 2 * cfg.steps)
    with torch.no_grad():
        final = float(_feature_loss(featurizer, x, targets, scale))
    return x.detach(), final
