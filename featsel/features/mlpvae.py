"""A small MLP Gaussian VAE for vector data (cells x genes) and its featurizer `mlp-vae`: the
posterior mean as a coupling space, standing in for scVI's latent.

Why hand-written: diffusers' `AutoencoderKL` (the image VAE of `featsel pretrain vae`) is
convolutional, and scvi-tools would pull a heavy stack (jax/lightning/pyro) for one stand-in
model. Unlike scVI (a negative-binomial / ZINB likelihood on raw counts with library size), this
VAE has a Gaussian likelihood on log-normalised expression, i.e. it is fitted with MSE:

    encoder  x: (B, G) -> [Linear(., hidden) -> GELU] x depth -> Linear(hidden, 2 L) -> (mu, logvar)
    decoder  z: (B, L) -> [Linear(., hidden) -> GELU] x depth -> Linear(hidden, G)
    q(z | x) = N(mu(x), diag exp(logvar(x))),  p(z) = N(0, I),  L = latent_dim.

`generation.pretrain.vae` trains it (`featsel pretrain vae` on vector data) and writes a
featsel featurizer checkpoint (`featurizer.pt`, `save_featurizer`), loaded by

    create_featurizer("runs/pbmc_vae/featurizer.pt", space=space)

Output: one global map ``mu`` (B, latent_dim), the posterior mean. Inputs in a generation space
other than the ambient one (e.g. `pca:dim=50`) are decoded to genes first, mu(space.decode(u)),
differentiably (the generator's loss backpropagates through it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from featsel.features.base import Featurizer

__all__ = ["MLPVAE", "MLPVAEConfig", "MLPVAEFeaturizer", "make_mlp_vae"]


def _mlp(d_in: int, hidden: int, depth: int, d_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(d_in if i == 0 else hidden, hidden), nn.GELU()]
    layers.append(nn.Linear(hidden, d_out))
    return nn.Sequential(*layers)


class MLPVAE(nn.Module):
    """x: (B, G) -> (mu, logvar), each (B, latent_dim); `decode(z)`: (B, latent_dim) -> (B, G)."""

    def __init__(self, n_features: int, latent_dim: int = 10, hidden: int = 128, depth: int = 1):
        super().__init__()
        for k, v in (("n_features", n_features), ("latent_dim", latent_dim), ("hidden", hidden),
                     ("depth", depth)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"mlp-vae: {k} must be an integer >= 1, got {v!r}")
        self.encoder = _mlp(n_features, hidden, depth, 2 * latent_dim)
        self.decoder = _mlp(latent_dim, hidden, depth, n_features)
        self.n_features, self.latent_dim = n_features, latent_dim

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: (B, G) -> mu, logvar: (B, latent_dim)."""
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"mlp-vae: x must be (B, {self.n_features}), got {tuple(x.shape)}")
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """z: (B, latent_dim) -> reconstruction mean (B, G)."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, G) -> the posterior mean (B, latent_dim)."""
        return self.encode(x)[0]


@dataclass
class MLPVAEConfig:
    """mlp-vae: the architecture (weights from `featsel pretrain vae` on vector data; without a
    checkpoint, a randomly initialised encoder seeded by `seed`). n_features 0: the ambient
    vector length of the generation space."""

    n_features: int = 0
    latent_dim: int = 10  # scVI's default n_latent
    hidden: int = 128  # scVI's default n_hidden
    depth: int = 1  # hidden layers per encoder/decoder (scVI's default n_layers)
    seed: int = 0


class MLPVAEFeaturizer(Featurizer):
    """u (B, *space.shape) -> [mu (B, latent_dim)], mu of the VAE at x = space.decode(u)."""

    name = "mlp-vae"

    def __init__(self, config: MLPVAEConfig, net: MLPVAE, space: nn.Module | None, in_shape):
        super().__init__(config, ["mu"])
        self.net = net
        self.use_space(space)  # decodes to genes
        self.in_shape = tuple(in_shape) if in_shape else None

    def forward(self, u: Tensor) -> list[Tensor]:
        x = self.to_ambient(u)
        if x.ndim != 2 or x.shape[1] != self.net.n_features:
            raise ValueError(f"featurizer {self.name}: u must decode to vectors (B, "
                             f"{self.net.n_features}), got {tuple(x.shape)} from {tuple(u.shape)}")
        return [self.net(x.float())]


def build_vector_encoder(name: str, cfg, net_cls, featurizer_cls, space, in_shape):
    """The factory shared by vector-encoder featurizers (``mlp-vae``, ``scvi-encoder``): fill
    ``cfg.n_features`` from the space's ambient shape, build ``net_cls`` with a seeded init that
    leaves the global RNG alone, wrap it in ``featurizer_cls``."""
    if not cfg.n_features:
        ambient = tuple(space.ambient_shape) if space is not None else in_shape
        if ambient is None or len(ambient) != 1:
            raise ValueError(f"featurizer {name!r}: n_features not set and no vector input "
                             f"shape to take it from (got {ambient})")
        cfg.n_features = int(ambient[0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = net_cls(cfg.n_features, cfg.latent_dim, cfg.hidden, cfg.depth)
    return featurizer_cls(cfg, net.eval(), space, in_shape)


def make_mlp_vae(cfg: MLPVAEConfig, *, space=None, in_shape=None, fit_data=None,
                 state_dict=None) -> MLPVAEFeaturizer:
    return build_vector_encoder("mlp-vae", cfg, MLPVAE, MLPVAEFeaturizer, space, in_shape)
