"""Shared pieces of the diagnostics tests that run a featurizer on new points (the particle
flow, the inversion share): labelled Gaussian clusters and a fixed linear featurizer."""

import numpy as np
import torch
from torch import Tensor

from featsel.features.base import Featurizer


def clusters(n_per: int = 64, k: int = 2, d: int = 4, seed: int = 0
             ) -> tuple[Tensor, np.ndarray]:
    """k Gaussian clusters of n_per points in d dims (unit spread, centres 3 apart): u (k n_per,
    d) and labels (k n_per,)."""
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(k, d, generator=g)
    u = torch.cat([centres[i] + torch.randn(n_per, d, generator=g) for i in range(k)])
    return u, np.repeat(np.arange(k), n_per)


class LinearFeaturizer(Featurizer):
    """u (B, D) -> [u W^T] (B, k): a fixed linear map, differentiable."""

    def __init__(self, w: Tensor):
        super().__init__(None, ["lin"])
        self.register_buffer("w", w)

    def forward(self, u: Tensor) -> list[Tensor]:
        return [u @ self.w.T]
