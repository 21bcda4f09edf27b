"""`featsel pretrain vae` on vector data (cells x genes): the MLP Gaussian VAE of
`featsel.features.mlpvae`, a candidate coupling space standing in for scVI.

Loss per batch x: (B, G) (log-normalised expression), q(z|x) = N(mu, diag sigma^2), z ~ q:

    L = mean_{b,g} (D(z) - x)^2 + kl_weight * mean_b KL(q(z|x_b) || N(0, I)) / G,
    KL = 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)              (closed form).

With a fixed observation variance s^2, the negative ELBO per gene is proportional to this loss with
kl_weight = 2 s^2 (the same normalisation as the image VAE, KL per ambient dimension); the default
1.0 (s^2 = 1/2) is about the residual variance of a 10-dim fit of log-normalised PBMC expression
(PCA-10 leaves 0.42 of the per-gene variance 0.58 on pbmc68k's test split).

Writes `<out>/featurizer.pt` (a featsel featurizer checkpoint of `mlp-vae` with the trained
weights): `create_featurizer("<out>/featurizer.pt", space=space)` loads it, and every command
that takes featurizer specs (`featsel score/validate --featurizers`) accepts the path.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from featsel.features import save_featurizer
from featsel.features.mlpvae import MLPVAE, MLPVAEConfig, MLPVAEFeaturizer
from generation.pretrain.common import PretrainRun, check_positive

ARCH_KEYS = ("data", "split", "latent_dim", "hidden", "depth", "seed", "n_max")


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per sample: mu, logvar (B, L) -> (B,)."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(1)


def vae_loss(net: MLPVAE, x: Tensor, eps: Tensor, kl_weight: float) -> Tensor:
    """The loss above for x: (B, G) with the reparameterisation noise eps: (B, latent_dim)."""
    mu, logvar = net.encode(x)
    rec = net.decode(mu + (0.5 * logvar).exp() * eps)
    return F.mse_loss(rec, x) + kl_weight * gaussian_kl(mu, logvar).mean() / x.shape[1]


def load_vectors(data: str, split: str, data_root: str | None, n_max: int | None) -> Tensor:
    """The split's vectors x: (N, G) float32 (the first n_max)."""
    from featsel.data import load_dataset

    x = load_dataset(data, split=split, data_root=data_root).x
    return x[:n_max] if n_max is not None else x


def train_mlp_vae(cfg: Any, x: Tensor, *, resume: bool = False, force: bool = False,
        progress: bool = True) -> dict:
    """Train (or continue) the MLP VAE on x: (N, G). `cfg`: a `VAEConfig` (its `latent_dim`,
    `hidden`, `depth`, `kl(vector=True)` and the shared run options). Returns a summary with
    `featurizer` (the checkpoint path: the spec to pass to `--featurizers`), `step`, `losses`."""
    check_positive(batch_size=cfg.batch_size, lr=cfg.lr, save_every=cfg.save_every,
                   latent_dim=cfg.latent_dim, hidden=cfg.hidden, depth=cfg.depth)
    if cfg.steps < 0:
        raise ValueError(f"steps must be >= 0, got {cfg.steps}")
    kl_weight = cfg.kl(vector=True)
    if not isinstance(x, Tensor) or x.ndim != 2 or len(x) < 2:
        raise ValueError(f"x: vectors (N >= 2, G) needed, got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"x: data {cfg.data!r} ({cfg.split}) contains NaN or infinite values")
    run = PretrainRun(cfg, resume, ARCH_KEYS, force=force)
    x = x.float()
    net = MLPVAE(x.shape[1], cfg.latent_dim, cfg.hidden, cfg.depth).to(cfg.device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    gen = run.gen
    start = run.resume({"model": net, "optimizer": opt})
    for step in tqdm(range(start, cfg.steps), desc="mlp-vae", initial=start, total=cfg.steps,
                     disable=not progress):
        xb = x[torch.randint(len(x), (cfg.batch_size,), generator=gen)].to(cfg.device)
        eps = torch.randn(len(xb), cfg.latent_dim, generator=gen).to(cfg.device)
        loss = vae_loss(net, xb, eps, kl_weight)
        run.step(loss, opt, step, cfg.steps)
    run.save(cfg.steps)
    fcfg = MLPVAEConfig(n_features=x.shape[1], latent_dim=cfg.latent_dim, hidden=cfg.hidden,
                        depth=cfg.depth, seed=cfg.seed)
    feat = MLPVAEFeaturizer(fcfg, net.cpu().eval(), None, (x.shape[1],))
    path = save_featurizer(feat, run.dir / "featurizer.pt")
    return {"kind": "vae", "model": "mlp-vae", "featurizer": str(path),
            "latent_dim": cfg.latent_dim, "step": cfg.steps,
            "losses": run.loss_history(), "out": str(run.dir)}
