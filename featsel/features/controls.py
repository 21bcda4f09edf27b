"""Control featurizers: features that carry no information about the data.

A criterion that ranks one of these above a real candidate measures something other than how
much the features can teach a generator (e.g. how *easy* matching is), so `featsel score` adds
them to every run (``--controls``) and marks such a criterion invalid on that data.

- ``noise:dim=K,seed=S``: ``(B, K)`` i.i.d. standard Gaussian features per sample. They are a
  deterministic function of the sample (its float32 bytes are hashed with the seed, and the hash
  seeds K counter-based draws), so the same sample always gets the same features, a cache keeps
  them, and extraction in batches gives the same result as one call; different samples get
  independent features whatever their values (a hash, not a projection, so nothing of the data's
  geometry survives).
- ``constant:dim=K``: ``(B, K)`` zeros: every sample looks the same, every coupling is the
  independent one.

Neither has a gradient with respect to its input (``differentiable = False``): a generator
trained with them receives nothing from these blocks, which is the point of a control.

Hand-written because no library offers a per-sample deterministic noise map: torch's and
numpy's generators draw by call order, which would give a sample different features in two
batches.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from featsel.features.base import Featurizer

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def sample_keys(u: Tensor, seed: int) -> np.ndarray:
    """u: (B, ...) -> (B,) uint64: blake2b of each sample's float32 bytes and the seed."""
    rows = u.detach().to("cpu", torch.float32).reshape(len(u), -1).contiguous().numpy()
    salt = int(seed).to_bytes(8, "little", signed=True)
    keys = [int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8, salt=salt).digest(),
                           "little") for r in rows]
    return np.asarray(keys, dtype=np.uint64).reshape(len(rows))


def hashed_gaussian(keys: np.ndarray, dim: int) -> np.ndarray:
    """keys: (B,) uint64 -> (B, dim) float64 standard normals (Box-Muller on counter draws)."""
    k = np.arange(dim, dtype=np.uint64)
    with np.errstate(over="ignore"):
        base = keys[:, None] * np.uint64(2 * dim + 1) + np.uint64(2) * k[None, :]
    u1 = (_splitmix64(base) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    u2 = (_splitmix64(base + np.uint64(1)) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    u1 = np.maximum(u1, 2.0**-53)  # log(0) guard
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


@dataclass
class NoiseConfig:
    """noise: ``dim`` i.i.d. N(0, 1) features per sample; ``seed`` of the hash."""

    dim: int = 1
    seed: int = 0


class NoiseFeaturizer(Featurizer):
    """u: (B, ...) -> [(B, dim)] Gaussian features, a deterministic function of each sample."""

    differentiable = False

    def __init__(self, config: NoiseConfig):
        super().__init__(config, ["noise"])

    def forward(self, u: Tensor) -> list[Tensor]:
        z = hashed_gaussian(sample_keys(u, self.config.seed), self.config.dim)
        dtype = u.dtype if u.is_floating_point() else torch.float32
        return [torch.from_numpy(z).to(device=u.device, dtype=dtype)]


def make_noise(cfg: NoiseConfig, *, space=None, in_shape=None, fit_data=None,
               state_dict=None) -> NoiseFeaturizer:
    if cfg.dim < 1:
        raise ValueError(f"featurizer 'noise': dim must be >= 1, got {cfg.dim}")
    return NoiseFeaturizer(cfg)


@dataclass
class ConstantConfig:
    """constant: ``dim`` features, all zero for every sample."""

    dim: int = 1


class ConstantFeaturizer(Featurizer):
    """u: (B, ...) -> [(B, dim)] zeros."""

    differentiable = False

    def __init__(self, config: ConstantConfig):
        super().__init__(config, ["constant"])

    def forward(self, u: Tensor) -> list[Tensor]:
        dtype = u.dtype if u.is_floating_point() else torch.float32
        return [torch.zeros(len(u), self.config.dim, device=u.device, dtype=dtype)]


def make_constant(cfg: ConstantConfig, *, space=None, in_shape=None, fit_data=None,
                  state_dict=None) -> ConstantFeaturizer:
    if cfg.dim < 1:
        raise ValueError(f"featurizer 'constant': dim must be >= 1, got {cfg.dim}")
    return ConstantFeaturizer(cfg)


CONTROL_NAMES = ("noise", "constant")


def is_control(spec: str) -> bool:
    """True for a control featurizer's spec (``noise:...``, ``constant...``)."""
    return isinstance(spec, str) and spec.split(":", 1)[0].strip() in CONTROL_NAMES
