"""A small diffusers `AutoencoderKL` trained on the data set's images: a VAE generation space that
needs no download ("generate in a VAE latent space, match in a semantic space").

Loss per batch x: (B, C, H, W) in [-1, 1], posterior q(z|x) = N(mu, diag sigma^2), z ~ q:

    L = mean (D(z) - x)^2 + kl_weight * KL(q(z|x) || N(0, I)) / (C*H*W).

The model is written with `AutoencoderKL.save_pretrained` to `<out>/vae/` (config.json +
weights), exactly what `featsel.spaces.VAESpace.from_pretrained` reads, so
`create_space("vae:path=<out>/vae", ambient_shape=(C, H, W))` loads it. Its config's
`scaling_factor` is set to 1 / std of the posterior means on the training data (the SD-VAE
convention that gives latents of unit scale). Latents are (latent_channels, H/f, W/f) with
f = 2 ** (len(block_out_channels) - 1).

Vector data (a manifest with `modality: vector`, e.g. `pbmc68k`: cells x genes) trains the MLP
Gaussian VAE of `featsel.features.mlpvae` instead (`generation.pretrain.mlp_vae`, fields
`latent_dim`, `hidden`, `depth`, `kl_weight`), a candidate featurizer: `<out>/featurizer.pt`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from featsel.features.mlpvae import MLPVAEConfig
from generation.pretrain.common import PretrainRun, RunConfig, check_positive, load_space_samples

ARCH_KEYS = ("data", "split", "block_out_channels", "latent_channels", "layers_per_block",
             "norm_num_groups", "seed", "n_max")


@dataclass
class VAEConfig(RunConfig):
    """Options of `train_vae` (one place for each default)."""

    out: str = "runs/vae"
    kl_weight: float | None = None  # None: 1e-3 on images, 1.0 on vectors (see kl())
    block_out_channels: tuple[int, ...] = (32, 64, 64)  # 28x28 -> 7x7 latents
    latent_channels: int = 4
    layers_per_block: int = 1
    norm_num_groups: int = 8
    # vector data: the MLP VAE (featsel.features.mlpvae); its defaults are scVI's
    latent_dim: int = MLPVAEConfig.latent_dim
    hidden: int = MLPVAEConfig.hidden
    depth: int = MLPVAEConfig.depth

    def kl(self, vector: bool) -> float:
        """The KL weight used: `kl_weight`, else 1e-3 on images (nearly an autoencoder, sharp
        reconstructions) and 1.0 on vectors (a Gaussian likelihood of variance 1/2 per gene,
        about the residual variance of log-normalised expression: a real VAE, as scVI)."""
        w = (1.0 if vector else 1e-3) if self.kl_weight is None else self.kl_weight
        if w < 0:
            raise ValueError(f"kl_weight must be >= 0, got {w}")
        return w


def build_vae(cfg: VAEConfig, in_chans: int, size: int):
    """The diffusers AutoencoderKL of `cfg` for (in_chans, size, size) images."""
    from diffusers import AutoencoderKL

    n = len(cfg.block_out_channels)
    f = 2 ** (n - 1)
    if n < 1 or size % f:
        raise ValueError(f"block_out_channels: {n} blocks downsample by {f}, which must divide the "
                         f"image size {size}")
    if any(c % cfg.norm_num_groups for c in cfg.block_out_channels):
        raise ValueError(f"block_out_channels {cfg.block_out_channels} must be multiples of "
                         f"norm_num_groups={cfg.norm_num_groups}")
    return AutoencoderKL(
        in_channels=in_chans, out_channels=in_chans,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.block_out_channels), layers_per_block=cfg.layers_per_block,
        latent_channels=cfg.latent_channels, norm_num_groups=cfg.norm_num_groups,
        sample_size=size, scaling_factor=1.0,
    )


def _save_dir(vae, target: Path) -> None:
    """save_pretrained into a temporary folder, then swap it in (featsel.rundir.publish_dir:
    the run's own vae/ folder is replaced in one step at every save)."""
    from featsel.rundir import publish_dir

    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    vae.save_pretrained(str(tmp))
    publish_dir(tmp, target, force=True)


def train_vae(cfg: VAEConfig, *, resume: bool = False, force: bool = False,
        progress: bool = True) -> dict:
    """Train (or continue) the VAE. Returns a summary with `vae` (diffusers directory), `space`
    (the spec for `create_space`), `latent_shape`, `step`, `losses`, `scaling_factor`; on vector
    data the MLP VAE's summary (`featurizer`: the checkpoint path, see `train_mlp_vae`)."""
    from featsel.data import load_manifest

    if load_manifest(cfg.data).modality == "vector":
        from generation.pretrain.mlp_vae import load_vectors, train_mlp_vae

        x = load_vectors(cfg.data, cfg.split, cfg.data_root, cfg.n_max)
        return train_mlp_vae(cfg, x, resume=resume, force=force, progress=progress)
    check_positive(batch_size=cfg.batch_size, lr=cfg.lr, save_every=cfg.save_every,
                   latent_channels=cfg.latent_channels)
    if cfg.steps < 0:
        raise ValueError(f"steps must be >= 0, got {cfg.steps}")
    kl_weight = cfg.kl(vector=False)
    run = PretrainRun(cfg, resume, ARCH_KEYS, force=force)
    x, _, _, _ = load_space_samples(cfg.data, cfg.split, cfg.data_root, "pixels", cfg.n_max)
    if x.shape[2] != x.shape[3]:
        raise ValueError(f"data {cfg.data!r}: images must be square, got {tuple(x.shape[1:])}")
    vae = build_vae(cfg, x.shape[1], x.shape[2]).to(cfg.device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr)
    gen = run.gen
    start = run.resume({"model": vae, "optimizer": opt})
    dim = x[0].numel()
    for step in tqdm(range(start, cfg.steps), desc="vae", initial=start, total=cfg.steps,
                     disable=not progress):
        idx = torch.randint(len(x), (cfg.batch_size,), generator=gen)
        xb = x[idx].to(cfg.device)
        post = vae.encode(xb).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen).to(cfg.device)
        rec = vae.decode(z).sample
        loss = F.mse_loss(rec, xb) + kl_weight * post.kl().mean() / dim
        run.step(loss, opt, step, cfg.steps)
    run.save(cfg.steps)
    d = run.dir
    vae.eval()
    with torch.no_grad():
        mu = torch.cat([vae.encode(c.to(cfg.device)).latent_dist.mean.cpu() for c in x.split(256)])
    scaling = float(1.0 / mu.std().clamp_min(1e-6))
    vae.register_to_config(scaling_factor=scaling)
    _save_dir(vae, d / "vae")
    return {"kind": "vae", "vae": str(d / "vae"), "space": f"vae:path={d / 'vae'}",
            "latent_shape": list(mu.shape[1:]), "scaling_factor": scaling, "step": cfg.steps,
            "losses": run.loss_history(), "out": str(d)}


def vae_space(path: str | Path, image_shape: tuple[int, int, int]):
    """The `VAESpace` of a trained VAE directory (same as create_space('vae:path=...'))."""
    from featsel.spaces import create_space

    return create_space(f"vae:path={Path(path)}", ambient_shape=tuple(image_shape))
