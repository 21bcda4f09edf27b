"""Particle flow: the training field followed by free particles in the generation space.

A generator trained with the Sinkhorn-CFG loss moves its outputs x = G(z) in the generation
space u along the field of the loss pulled back through the featurizer phi: each step the
features phi(x) are pushed towards their barycentric targets V (``featsel.ot.cfg_field``) and
the gradient reaches x as ``J_phi(x)^T V``. In the limit of a generator that can place each of
its outputs freely, training *is* that flow on a set of particles. This diagnostic runs it,
without a network, and measures in u how close the particles get to held-out real data:

- what the features do not see (their null space in u) never moves: those coordinates keep
  their starting noise (a PCA-3 of 36 bands moves 3 directions);
- a featurizer that passes no gradient (the noise and constant controls) moves nothing;
- a featurizer that steers x where the data are not (an encoder followed off the data) drives
  the particles away, and the value passes 1;
- many weak sub-problems (one-pixel blocks) act together, as they do in training.

Per class c with at least 2n samples in the pool (other classes are left out, listed; without
labels one group "all"), the class's samples are split at random into a target half Y_c and
a held-out half Y'_c. Particles start as

    x_0 = mean(u) + s z,   z ~ N(0, I),   s^2 = mean over coordinates of Var(u)   (n per class)

(an untrained generator knows nothing of the data, only its scale). For k = 1..K, all classes
at once: draw n targets per class from Y_c (fresh each step, as training draws real batches),
take the training step's scaled feature blocks (``featsel.features.scaled.featurize_blocks``, with
the input-RMS block), the training field ``V_b = cfg_field(q_b, p_b, w = 0)`` (the loss's
defaults: the paper's taus and recipe, normalised per tau, class and location; guidance off,
the class-conditional term only), the loss

    loss = sum_b L_b mean((q_b - stopgrad(q_b + V_b))^2) / sum_b L_b

(``generation.loss``'s default block weighting; restated here because `featsel` does not
import `generation`) and one Adam step on x with lr = ``lr`` * s, decayed linearly to 0 (Adam
moves each coordinate by about lr per step whatever the featurizer's gradient scale, as it
does for a generator's weights). The value per class is

    flow_c = E(x_K, Y'_c) / E(x_0, Y'_c),
    E(X, Y) = 2 mean_ij |x_i - y_j| - mean_ij |x_i - x_j| - mean_ij |y_i - y_j|

the energy distance (Szekely & Rizzo; V-statistics, >= 0, 0 iff the two empirical
distributions are equal; parameter-free, so no eps or kernel width enters the comparison)
between the particles and held-out data, relative to where they started. The criterion is the
mean over classes, lower is better: 1 = the flow got no closer (the controls exactly, by
construction), < 1 = closer, > 1 = driven away. The interval is a percentile bootstrap over
classes. Hand-written: no library simulates this loss's particle flow.

Defaults (chosen before the flow was computed on any study data, `studies/PROTOCOL.md`
addendum 2): K = 100 steps at lr = 0.1 s with linear decay move each coordinate at most
K lr s / 2 = 5 s, enough to cross the data's range from its mean.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from featsel.diagnostics._blocks import as_labels, class_groups
from featsel.diagnostics.stability import bootstrap_interval
from featsel.features.scaled import featurize_blocks
from featsel.ot import FieldConfig, cfg_field

__all__ = ["FlowConfig", "FlowResult", "energy_distance", "particle_flow"]


@dataclass
class FlowConfig:
    """Settings of the particle flow (module docstring); one place for each default."""

    steps: int = 100          # K: Adam steps on the particles
    lr: float = 0.1           # Adam's lr in units of s (the RMS per-coordinate std of u)
    n_boot: int = 1000        # bootstrap resamples of the classes
    ci: float = 0.95

    def check(self) -> None:
        if self.steps < 1:
            raise ValueError(f"flow steps: expected >= 1, got {self.steps}")
        if not self.lr > 0:
            raise ValueError(f"flow lr: expected > 0, got {self.lr}")


@dataclass
class FlowResult:
    """The particle flow of one candidate (module docstring)."""

    mean: float                        # mean over classes of E(x_K, Y') / E(x_0, Y')
    ci_low: float
    ci_high: float
    per_class: dict[str, float]
    start: dict[str, float]            # E(x_0, Y'_c)
    end: dict[str, float]              # E(x_K, Y'_c)
    n: int
    steps: int
    moved: bool                        # False: the featurizer passes no gradient
    skipped_classes: dict[str, int] = field(default_factory=dict)  # class -> its size
    # (x_0, x_K), each (K, n, *S), with keep_particles=True; not part of to_dict
    particles: tuple[Tensor, Tensor] | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("particles")
        return d


def energy_distance(x: Tensor, y: Tensor) -> Tensor:
    """E(X, Y) = 2 mean |x_i - y_j| - mean |x_i - x_j| - mean |y_i - y_j|, a () float64 tensor.

    x: (N, D), y: (M, D); Euclidean norms; V-statistics (the diagonal zeros included), so
    E >= 0 and in 1-d it equals 2 int (F_X - F_Y)^2 (`scipy.stats.energy_distance` squared).
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"energy_distance: x (N, D) and y (M, D) expected, got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    x, y = x.double(), y.double()

    def dist(a: Tensor, b: Tensor) -> Tensor:  # direct differences: no |a|^2 + |b|^2 - 2ab
        return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").mean()

    return 2 * dist(x, y) - dist(x, x) - dist(y, y)


def particle_flow(
    featurizer: Any,
    u: Tensor,
    *,
    n: int,
    labels: np.ndarray | None = None,
    seed: int = 0,
    config: FlowConfig | None = None,
    field_config: FieldConfig | None = None,
    on_draw: Callable[[int, int], None] | None = None,
    keep_particles: bool = False,
    **overrides,
) -> FlowResult:
    """Run the particle flow of ``featurizer`` (module docstring).

    featurizer: a `featsel.features.Featurizer` (its `blocks(u)` and `differentiable`), set up
    for the generation space of u; u: (N_pool, *S) generation-space samples; labels: (N_pool,)
    or None; n: particles and targets per class per step; field_config: the training field
    (default: the loss's defaults); overrides: `FlowConfig` fields. on_draw(done, total) is
    called after every step; keep_particles=True keeps (x_0, x_K) in the result.
    """
    cfg = FlowConfig(**{**asdict(config or FlowConfig()), **overrides})
    cfg.check()
    fcfg = (field_config or FieldConfig()).validate()
    if n < 2:
        raise ValueError(f"n: expected >= 2 particles per class, got {n}")
    lab = None if labels is None else as_labels(labels, len(u), "labels")
    names, groups, skipped = class_groups(lab, len(u), 2 * n, unconditional=False)
    if skipped:
        warnings.warn(f"particle flow: classes with fewer than {2 * n} samples left out: "
                      f"{skipped} (n={n})", stacklevel=2)
    rng = np.random.default_rng(seed)
    halves = []
    for g in groups:
        perm = rng.permutation(g)
        halves.append((perm[: len(g) // 2], perm[len(g) // 2:]))
    u = u.detach().float()
    mu = u.mean(0)
    s = float(u.reshape(len(u), -1).var(0, correction=0).mean().sqrt().clamp_min(1e-12))
    gen = torch.Generator().manual_seed(seed)
    K = len(groups)
    x0 = mu + s * torch.randn((K, n, *u.shape[1:]), generator=gen)
    moved = bool(getattr(featurizer, "differentiable", True))
    x = x0.clone()
    if moved:
        x = _flow(featurizer, x0, u, [h[0] for h in halves], n, s, cfg, fcfg, rng, on_draw)
    elif on_draw is not None:
        on_draw(cfg.steps, cfg.steps)
    start, end, ratio = {}, {}, {}
    for k, name in enumerate(names):
        held = u[halves[k][1]].reshape(len(halves[k][1]), -1)
        e0 = float(energy_distance(x0[k].reshape(n, -1), held))
        e1 = float(energy_distance(x[k].reshape(n, -1), held)) if moved else e0
        start[name], end[name] = e0, e1
        ratio[name] = e1 / e0 if e0 > 0 else 1.0
    vals = np.asarray(list(ratio.values()))
    lo, hi = bootstrap_interval(vals, n_boot=cfg.n_boot, ci=cfg.ci, seed=seed + 1)
    return FlowResult(mean=float(vals.mean()), ci_low=lo, ci_high=hi, per_class=ratio,
                      start=start, end=end, n=n, steps=cfg.steps, moved=moved,
                      skipped_classes=skipped, particles=(x0, x) if keep_particles else None)


def _flow(featurizer, x0: Tensor, u: Tensor, targets: list[np.ndarray], n: int,
          s: float, cfg: FlowConfig, fcfg: FieldConfig, rng: np.random.Generator,
          on_draw) -> Tensor:
    """K Adam steps of the particles x: (K, n, *S) along the pulled-back training field."""
    K = x0.shape[0]
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=cfg.lr * s)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: max(0.0, 1.0 - k / cfg.steps))
    w = torch.zeros(K)
    for step in range(cfg.steps):
        pos = torch.stack([u[rng.choice(t, size=n, replace=len(t) < n)] for t in targets])
        blocks = featurize_blocks(featurizer, x, pos, None)
        total, n_problems = 0.0, 0
        for g, p, _ in blocks.values():
            q = g.permute(0, 2, 1, 3)  # (K, L, N, C)
            V, _ = cfg_field(q, p.permute(0, 2, 1, 3), None, w, fcfg, errors=False)
            total = total + F.mse_loss(q, q.detach() + V) * q.shape[1]
            n_problems += q.shape[1]
        opt.zero_grad(set_to_none=True)
        (total / n_problems).backward()
        opt.step()
        sched.step()
        if on_draw is not None:
            on_draw(step + 1, cfg.steps)
    return x.detach()
