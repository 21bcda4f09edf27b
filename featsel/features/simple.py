"""Featurizers without a network: identity, pca, random-projection, vae-latent.

- `identity`: the generation space itself: `[u]`, a spatial map `(B, C, H, W)` for images and
  latents (so per_loc blocks are the pixel/latent channels at each position), `(B, D)` for vectors.
- `ambient`: the data's own space (pixels, genes): `[decode(u).flatten(1)]` `(B, D_ambient)`, u
  decoded through the generation space (identity when generating in the ambient space), so
  runs in different generation spaces are compared in one space (FD in pixels or genes).
- `vae-latent`: the flattened generation space `[u.flatten(1)]` `(B, C*H*W)`: FD-VAE's space
  when generating in SD-VAE latents (4096 dims at 32x32x4).
- `pca`: scikit-learn PCA fitted on `fit_data` (flattened), applied as the linear map
  `(u.flatten(1) - mu) V^T`, `(B, dim)` (differentiable).
- `random-projection`: scikit-learn's Gaussian random matrix R `(dim, D)` (entries N(0, 1/dim)),
  `u.flatten(1) R^T` `(B, dim)`; with `spatial=true` on images, a random 1x1 projection of the
  channels at each position, `(B, dim, H, W)`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from featsel.features.base import Featurizer


def _need_shape(in_shape, name: str) -> tuple[int, ...]:
    if in_shape is None:
        raise ValueError(f"featurizer {name!r} needs the input shape: pass space=, fit_data= or in_shape=")
    return tuple(int(s) for s in in_shape)


@dataclass
class IdentityConfig:
    """identity: no options."""


class IdentityFeaturizer(Featurizer):
    def __init__(self, config: IdentityConfig, in_shape: tuple[int, ...] | None = None):
        super().__init__(config, ["identity"])
        self.in_shape = in_shape

    def forward(self, u: Tensor) -> list[Tensor]:
        """u: (B, C, H, W) -> [(B, C, H, W)]; (B, D) -> [(B, D)]; other ranks flattened."""
        if u.ndim in (2, 4):
            return [u]
        return [u.flatten(1)]


def make_identity(cfg: IdentityConfig, *, space=None, in_shape=None, fit_data=None,
                  state_dict=None) -> IdentityFeaturizer:
    return IdentityFeaturizer(cfg, in_shape)


@dataclass
class AmbientConfig:
    """ambient: no options."""


class AmbientFeaturizer(Featurizer):
    def __init__(self, config: AmbientConfig, space, in_shape: tuple[int, ...] | None = None):
        super().__init__(config, ["ambient"])
        self.use_space(space)
        self.in_shape = in_shape

    def forward(self, u: Tensor) -> list[Tensor]:
        """u: (B, *space.shape) -> [(B, prod(ambient shape))] (differentiable through decode)."""
        return [self.to_ambient(u).flatten(1)]


def make_ambient(cfg: AmbientConfig, *, space=None, in_shape=None, fit_data=None,
                 state_dict=None) -> AmbientFeaturizer:
    return AmbientFeaturizer(cfg, space, in_shape)


@dataclass
class VAELatentConfig:
    """vae-latent: no options."""


class VAELatentFeaturizer(Featurizer):
    def __init__(self, config: VAELatentConfig, in_shape: tuple[int, ...] | None = None):
        super().__init__(config, ["latent"])
        self.in_shape = in_shape

    def forward(self, u: Tensor) -> list[Tensor]:
        """u: (B, ...) -> [(B, prod(...))]."""
        return [u.flatten(1)]


def make_vae_latent(cfg: VAELatentConfig, *, space=None, in_shape=None, fit_data=None,
                    state_dict=None) -> VAELatentFeaturizer:
    return VAELatentFeaturizer(cfg, in_shape)


@dataclass
class PCAConfig:
    """pca: `dim` components fitted on fit_data (sklearn PCA, `seed` for its randomised solver)."""

    dim: int = 64
    seed: int = 0


class LinearFeaturizer(Featurizer):
    """`(u.flatten(1) - mean) W^T`: W (dim, D), mean (D,). Output [(B, dim)] named `map_name`."""

    def __init__(self, config, mean: Tensor, weight: Tensor, in_shape, map_name: str):
        super().__init__(config, [map_name])
        self.register_buffer("mean", mean.float())
        self.register_buffer("weight", weight.float())
        self.in_shape = tuple(in_shape) if in_shape else None

    def forward(self, u: Tensor) -> list[Tensor]:
        flat = u.flatten(1)
        if flat.shape[1] != self.weight.shape[1]:
            raise ValueError(
                f"{self.name}: input has {flat.shape[1]} values per sample, fitted on {self.weight.shape[1]}"
            )
        w = self.weight.to(flat.dtype)
        return [(flat - self.mean.to(flat.dtype)) @ w.T]


def make_pca(cfg: PCAConfig, *, space=None, in_shape=None, fit_data=None,
             state_dict=None) -> LinearFeaturizer:
    if state_dict is not None:
        return LinearFeaturizer(cfg, state_dict["mean"], state_dict["weight"], in_shape, "pca")
    if fit_data is None:
        raise ValueError("featurizer 'pca' needs fit_data: (N, ...) generation-space samples")
    from sklearn.decomposition import PCA

    flat = torch.as_tensor(fit_data).reshape(len(fit_data), -1).double().cpu().numpy()
    if not 1 <= cfg.dim <= min(flat.shape):
        raise ValueError(
            f"featurizer 'pca': dim must be in [1, min(N, D)] = [1, {min(flat.shape)}], got {cfg.dim}"
        )
    pca = PCA(n_components=cfg.dim, random_state=cfg.seed).fit(flat)
    return LinearFeaturizer(
        cfg,
        torch.from_numpy(pca.mean_),
        torch.from_numpy(pca.components_),
        tuple(fit_data.shape[1:]),
        "pca",
    )


@dataclass
class RandomProjectionConfig:
    """random-projection: `dim` outputs, `seed`; `spatial`: 1x1 projection of channels."""

    dim: int = 64
    seed: int = 0
    spatial: bool = False


class SpatialProjection(Featurizer):
    """u: (B, C, H, W) -> [(B, dim, H, W)], out[:, k] = sum_c W[k, c] u[:, c]."""

    def __init__(self, config, weight: Tensor, in_shape):
        super().__init__(config, ["proj"])
        self.register_buffer("weight", weight.float())
        self.in_shape = tuple(in_shape) if in_shape else None

    def forward(self, u: Tensor) -> list[Tensor]:
        return [torch.einsum("kc,bchw->bkhw", self.weight.to(u.dtype), u)]


def _gaussian_matrix(dim: int, n_features: int, seed: int) -> Tensor:
    from sklearn.random_projection import GaussianRandomProjection

    rp = GaussianRandomProjection(n_components=dim, random_state=seed)
    with warnings.catch_warnings():  # dim > n_features is allowed here (an expansion)
        warnings.simplefilter("ignore")
        rp.fit(np.zeros((2, n_features)))
    return torch.from_numpy(np.asarray(rp.components_, dtype=np.float64))


def make_random_projection(cfg: RandomProjectionConfig, *, space=None, in_shape=None,
                           fit_data=None, state_dict=None) -> LinearFeaturizer | SpatialProjection:
    shape = _need_shape(in_shape, "random-projection")
    if cfg.dim < 1:
        raise ValueError(f"featurizer 'random-projection': dim must be >= 1, got {cfg.dim}")
    if cfg.spatial:
        if len(shape) != 3:
            raise ValueError(
                f"featurizer 'random-projection': spatial=true needs (C, H, W) inputs, got {shape}"
            )
        w = state_dict["weight"] if state_dict else _gaussian_matrix(cfg.dim, shape[0], cfg.seed)
        return SpatialProjection(cfg, w, shape)
    n = math.prod(shape)
    w = state_dict["weight"] if state_dict else _gaussian_matrix(cfg.dim, n, cfg.seed)
    return LinearFeaturizer(cfg, torch.zeros(n), w, shape, "proj")
