"""The encoder of a trained scVI model as a featurizer, `scvi-encoder`: the latent mean of
q(z|x), a coupling space as in the paper's single-cell runs. Plain torch: loading it needs no
scvi-tools (only training does, `featsel pretrain scvi`, `generation.pretrain.scvi`).

The network reproduces scvi-tools' `scvi.nn.Encoder` (SCVI's `z_encoder`, no batch covariates,
Gaussian latent) in eval mode, its dropout being the identity there:

    x: (B, G) -> [Linear(., hidden) -> BatchNorm1d(eps=1e-3) -> ReLU] x depth -> Linear(hidden, L)

where x is the log-normalised expression featsel's vector data sets hold (their ambient space):
the trainer gives scVI the pseudo-counts expm1(x), which scVI's encoder log1p's back to x
(`log_variational`), or, with `gene_likelihood=normal`, x itself without the log1p. Either way
the encoder's input is x, so z_mean = encoder(x) matches scVI's
`get_latent_representation(give_mean=True)` (tested to 1e-5).

    create_featurizer("runs/pbmc_scvi/featurizer.pt", space=space)

Output: one global map ``mu`` (B, latent_dim). As with `mlp-vae`, inputs in a generation space
other than the ambient one (e.g. `pca:dim=50`) are decoded to genes first, mu(space.decode(u)),
differentiably. Without a checkpoint (``scvi-encoder:n_features=765``) the weights are a seeded
random initialisation (an untrained control).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from featsel.features.mlpvae import MLPVAEFeaturizer, build_vector_encoder

__all__ = ["ScviEncoder", "ScviEncoderConfig", "ScviEncoderFeaturizer", "make_scvi_encoder"]

BN_EPS, BN_MOMENTUM = 1e-3, 0.01  # scvi.nn.FCLayers' BatchNorm1d settings


class ScviEncoder(nn.Module):
    """x: (B, G) -> z_mean (B, latent_dim), scVI's z_encoder (mean head only)."""

    def __init__(self, n_features: int, latent_dim: int = 10, hidden: int = 128, depth: int = 1):
        super().__init__()
        for k, v in (("n_features", n_features), ("latent_dim", latent_dim), ("hidden", hidden),
                     ("depth", depth)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"scvi-encoder: {k} must be an integer >= 1, got {v!r}")
        self.layers = nn.Sequential(*[
            nn.Sequential(nn.Linear(n_features if i == 0 else hidden, hidden),
                          nn.BatchNorm1d(hidden, eps=BN_EPS, momentum=BN_MOMENTUM), nn.ReLU())
            for i in range(depth)
        ])
        self.mean = nn.Linear(hidden, latent_dim)
        self.n_features, self.latent_dim = n_features, latent_dim

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, G) -> the posterior mean (B, latent_dim)."""
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"scvi-encoder: x must be (B, {self.n_features}), got {tuple(x.shape)}")
        return self.mean(self.layers(x))

    @classmethod
    def from_scvi(cls, z_encoder: nn.Module) -> ScviEncoder:
        """Copy the weights of a scvi-tools `scvi.nn.Encoder` (`model.module.z_encoder`; no
        covariates, no layer norm). The result is in eval mode."""
        fc = list(z_encoder.encoder.fc_layers)
        lin = [m for layer in fc for m in layer if isinstance(m, nn.Linear)]
        bns = [m for layer in fc for m in layer if isinstance(m, nn.BatchNorm1d)]
        if len(bns) != len(fc) or any(isinstance(m, nn.LayerNorm) for layer in fc for m in layer):
            raise ValueError("scvi-encoder: the scVI encoder must use batch norm in every layer "
                             "and no layer norm (scvi-tools' SCVI defaults)")
        if any(not isinstance(m, (nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout))
               for layer in fc for m in layer if m is not None):
            raise ValueError("scvi-encoder: the scVI encoder must use ReLU activations")
        mean = z_encoder.mean_encoder
        net = cls(lin[0].in_features, mean.out_features, mean.in_features, len(fc))
        with torch.no_grad():
            for ours, (li, bn) in zip(net.layers, zip(lin, bns)):
                if bn.eps != BN_EPS:
                    raise ValueError(f"scvi-encoder: batch norm eps {bn.eps}, expected {BN_EPS}")
                ours[0].load_state_dict(li.state_dict())
                ours[1].load_state_dict(bn.state_dict())
            net.mean.load_state_dict(mean.state_dict())
        return net.eval()


@dataclass
class ScviEncoderConfig:
    """scvi-encoder: the architecture (weights from `featsel pretrain scvi`; without a
    checkpoint, a randomly initialised encoder seeded by `seed`). n_features 0: the ambient
    vector length of the generation space. Defaults: scvi-tools' SCVI."""

    n_features: int = 0
    latent_dim: int = 10  # n_latent
    hidden: int = 128  # n_hidden
    depth: int = 1  # n_layers
    seed: int = 0


class ScviEncoderFeaturizer(MLPVAEFeaturizer):
    """u (B, *space.shape) -> [mu (B, latent_dim)], scVI's z_mean at x = space.decode(u)."""

    name = "scvi-encoder"


def make_scvi_encoder(cfg: ScviEncoderConfig, *, space=None, in_shape=None, fit_data=None,
                      state_dict=None) -> ScviEncoderFeaturizer:
    return build_vector_encoder("scvi-encoder", cfg, ScviEncoder, ScviEncoderFeaturizer, space,
                                in_shape)
