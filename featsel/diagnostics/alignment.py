"""Alignment R^2: kernel ridge regression from one featurizer's features to another's.

Rows of both ``phi`` (n x D_phi) and ``psi`` (n x D_psi) are L2-normalised. On ``n_train``
samples we fit RBF kernel ridge regression with an intercept (targets centred by their training
mean):

    k(x, x') = exp(-gamma ||x - x'||^2),   alpha = (K + lambda I)^{-1} (Y - ybar),
    yhat(x)  = ybar + k(x, X_train) alpha

and report the variance-weighted held-out R^2 (scikit-learn's ``r2_score(...,
multioutput="variance_weighted")``):

    R^2 = 1 - sum_{i,d} (y_id - yhat_id)^2 / sum_{i,d} (y_id - mean_test(y_d))^2

``gamma`` and ``lambda`` are chosen on the training set by exact leave-one-out error (one
``eigh`` of K per gamma, every lambda for free: ``e_i = (y_i - yhat_i) / (1 - H_ii)`` with
``H = K (K + lambda I)^{-1}``), or given. The gamma grid is relative to the median squared
distance of the training rows. The solve is a float64 Cholesky in torch; scikit-learn's
``KernelRidge`` (fitted on the centred targets) is the reference in the tests: its own fit is an
O(n^3) LAPACK call per hyper-parameter, with no shared eigendecomposition for the LOO search.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

__all__ = [
    "AlignmentConfig", "AlignmentResult", "alignment_r2", "alignment", "alignment_table",
    "fit_kernel_ridge",
]

_F64 = torch.float64


@dataclass
class AlignmentConfig:
    """Defaults for :func:`alignment` (one place for each)."""

    n_train: int = 2048            # training rows (the paper's 2048); capped to leave
    #                                max(n_test_min, n // 4) held-out rows
    n_test_min: int = 64
    gamma: float | None = None     # None: chosen by leave-one-out on the training rows
    ridge: float | None = None
    gamma_grid: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)  # x 1 / median squared distance
    ridge_grid: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    seed: int = 0
    normalise_psi: bool = True     # L2-normalise the target rows too (False: regress psi as is)


@dataclass
class AlignmentResult:
    """Held-out R^2 and the hyper-parameters that produced it."""

    r2: float
    gamma: float
    ridge: float
    n_train: int
    n_test: int
    loo_mse: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _prep(x, name: str, normalise: bool = True) -> Tensor:
    if not isinstance(x, Tensor):
        x = torch.as_tensor(x)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected shape (num_samples, dim), got {tuple(x.shape)}")
    x = x.detach().to("cpu", _F64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: features contain NaN or infinite values")
    if not normalise:
        return x
    norms = x.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError(f"{name}: some rows are all zero and cannot be L2-normalised")
    return x / norms


def _sqdist(a: Tensor, b: Tensor) -> Tensor:
    """a: (n, D), b: (m, D) -> (n, m) squared distances (clamped >= 0)."""
    return (a.square().sum(1)[:, None] + b.square().sum(1)[None, :] - 2.0 * a @ b.T).clamp_min(0)


def fit_kernel_ridge(x_train: Tensor, y_train: Tensor, x_test: Tensor, *, gamma: float,
                     ridge: float, center: bool = True) -> Tensor:
    """Predict ``(n_test, D_y)`` from RBF kernel ridge fitted on ``x_train: (n, D_x)``,
    ``y_train: (n, D_y)``; Cholesky solve of ``(K + ridge I) alpha = y - ybar`` in float64."""
    x_train, y_train, x_test = (t.to(_F64) for t in (x_train, y_train, x_test))
    ybar = y_train.mean(0, keepdim=True) if center else torch.zeros_like(y_train[:1])
    k = torch.exp(-gamma * _sqdist(x_train, x_train))
    k.diagonal().add_(ridge)
    chol = torch.linalg.cholesky(k)
    alpha = torch.cholesky_solve(y_train - ybar, chol)
    return ybar + torch.exp(-gamma * _sqdist(x_test, x_train)) @ alpha


def _r2(y: Tensor, yhat: Tensor) -> float:
    sst = (y - y.mean(0, keepdim=True)).square().sum()
    # relative to the targets' size: a constant target leaves rounding noise in sst, and
    # 1 - noise/noise gave R^2 = 1.0 (a constant evaluation space looked perfectly aligned)
    if float(sst) <= 1e-12 * float(y.square().sum()):
        raise ValueError("psi: held-out targets are constant; R^2 is undefined")
    return float(1.0 - (y - yhat).square().sum() / sst)


def _loo_select(x: Tensor, y: Tensor, gammas: list[float], ridges: list[float]
                ) -> tuple[float, float, dict[str, float]]:
    """Exact leave-one-out MSE for every (gamma, ridge); returns the best pair and the table."""
    yc = y - y.mean(0, keepdim=True)
    d2 = _sqdist(x, x)
    scores: dict[str, float] = {}
    best = (float("inf"), gammas[0], ridges[0])
    for g in gammas:
        w, u = torch.linalg.eigh(torch.exp(-g * d2))
        w = w.clamp_min(0)
        uty = u.T @ yc
        for lam in ridges:
            shrink = w / (w + lam)
            yhat = u @ (shrink[:, None] * uty)
            hdiag = (u.square() * shrink[None, :]).sum(1)
            resid = (yc - yhat) / (1.0 - hdiag).clamp_min(1e-12)[:, None]
            mse = float(resid.square().mean())
            scores[f"gamma={g:.6g},ridge={lam:.6g}"] = mse
            if mse < best[0]:
                best = (mse, g, lam)
    return best[1], best[2], scores


def _split(n: int, cfg: AlignmentConfig) -> tuple[Tensor, Tensor]:
    """Seeded train/test split: n_train = min(cfg.n_train, n - max(n_test_min, n // 4))."""
    n_train = min(cfg.n_train, n - max(cfg.n_test_min, n // 4))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed))
    return perm[:n_train], perm[n_train:]


def _grids(xtr: Tensor, cfg: AlignmentConfig) -> tuple[list[float], list[float]]:
    med = float(_sqdist(xtr, xtr).median())
    if med <= 0:
        med = 1.0
    gammas = [cfg.gamma] if cfg.gamma is not None else [g / med for g in cfg.gamma_grid]
    ridges = [cfg.ridge] if cfg.ridge is not None else list(cfg.ridge_grid)
    if any(g <= 0 for g in gammas) or any(r <= 0 for r in ridges):
        raise ValueError(f"gamma, ridge: expected positive values, got {gammas}, {ridges}")
    return gammas, ridges


def _config_with(config: AlignmentConfig | None, overrides: dict) -> AlignmentConfig:
    cfg = config or AlignmentConfig()
    if overrides:
        unknown = set(overrides) - set(AlignmentConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(f"alignment: unknown option(s) {sorted(unknown)}")
        cfg = AlignmentConfig(**{**asdict(cfg), **overrides})
    return cfg


def alignment_table(phi, psis: dict, *, config: AlignmentConfig | None = None,
                    **overrides) -> dict[str, AlignmentResult]:
    """Alignment of one ``phi: (n, D_phi)`` to several ``psis[name]: (n, D_name)`` at once.

    The kernel and its eigendecomposition depend on phi only, so one ``eigh`` per gamma serves
    every target (LOO selection per target, then ``alpha = U (w + lambda)^{-1} U^T (Y - ybar)``).
    Same split and grids as :func:`alignment`, so the results agree with it.
    """
    cfg = _config_with(config, overrides)
    x = _prep(phi, "phi")
    n = x.shape[0]
    ys = {}
    for name, psi in psis.items():
        ys[name] = _prep(psi, f"psis[{name!r}]")
        if ys[name].shape[0] != n:
            raise ValueError(f"psis[{name!r}]: expected {n} rows (the samples of phi), got "
                             f"{ys[name].shape[0]}")
    if n < cfg.n_test_min + 8:
        raise ValueError(f"phi: expected at least {cfg.n_test_min + 8} samples, got {n}")
    tr, te = _split(n, cfg)
    xtr, xte = x[tr], x[te]
    gammas, ridges = _grids(xtr, cfg)
    d2 = _sqdist(xtr, xtr)
    d2te = _sqdist(xte, xtr)
    best: dict[str, tuple[float, float, float]] = {k: (float("inf"), 0.0, 0.0) for k in ys}
    tables: dict[str, dict[str, float]] = {k: {} for k in ys}
    eig: dict[float, tuple[Tensor, Tensor]] = {}
    for g in gammas:
        w, u = torch.linalg.eigh(torch.exp(-g * d2))
        eig[g] = (w.clamp_min(0), u)
        if len(gammas) * len(ridges) == 1:
            break
        w = w.clamp_min(0)
        for name, y in ys.items():
            yc = y[tr] - y[tr].mean(0, keepdim=True)
            uty = u.T @ yc
            for lam in ridges:
                shrink = w / (w + lam)
                resid = (yc - u @ (shrink[:, None] * uty)) / (
                    1.0 - (u.square() * shrink[None, :]).sum(1)).clamp_min(1e-12)[:, None]
                mse = float(resid.square().mean())
                tables[name][f"gamma={g:.6g},ridge={lam:.6g}"] = mse
                if mse < best[name][0]:
                    best[name] = (mse, g, lam)
    out = {}
    for name, y in ys.items():
        g, lam = (best[name][1], best[name][2]) if tables[name] else (gammas[0], ridges[0])
        w, u = eig[g]
        ybar = y[tr].mean(0, keepdim=True)
        alpha = u @ ((u.T @ (y[tr] - ybar)) / (w + lam)[:, None])
        yhat = ybar + torch.exp(-g * d2te) @ alpha
        out[name] = AlignmentResult(_r2(y[te], yhat), float(g), float(lam), len(tr), len(te),
                                    tables[name])
    return out


def alignment(phi, psi, *, config: AlignmentConfig | None = None, **overrides) -> AlignmentResult:
    """Kernel-ridge alignment of ``phi: (n, D_phi)`` -> ``psi: (n, D_psi)`` (same samples, same
    order). Keyword overrides replace :class:`AlignmentConfig` fields."""
    cfg = _config_with(config, overrides)
    x = _prep(phi, "phi")
    y = _prep(psi, "psi", cfg.normalise_psi)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"phi, psi: expected the same samples, got {x.shape[0]} and {y.shape[0]} "
                         "rows")
    n = x.shape[0]
    if n < cfg.n_test_min + 8:
        raise ValueError(f"phi: expected at least {cfg.n_test_min + 8} samples "
                         f"(n_test_min={cfg.n_test_min} held out), got {n}")
    tr, te = _split(n, cfg)
    n_train = len(tr)
    xtr, ytr, xte, yte = x[tr], y[tr], x[te], y[te]
    gammas, ridges = _grids(xtr, cfg)
    loo: dict[str, float] = {}
    if len(gammas) * len(ridges) > 1:
        gamma, ridge, loo = _loo_select(xtr, ytr, gammas, ridges)
    else:
        gamma, ridge = gammas[0], ridges[0]
    yhat = fit_kernel_ridge(xtr, ytr, xte, gamma=gamma, ridge=ridge)
    return AlignmentResult(_r2(yte, yhat), float(gamma), float(ridge), int(n_train),
                           int(n - n_train), loo)


def alignment_r2(phi, psi, **kwargs) -> float:
    """Held-out R^2 of RBF kernel ridge from ``phi: (n, D_phi)`` to ``psi: (n, D_psi)`` (float).

    Options as in :class:`AlignmentConfig` (``n_train``, ``gamma``, ``ridge``, ``seed``, ...).
    """
    return alignment(phi, psi, **kwargs).r2
