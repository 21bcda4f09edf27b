"""Masked autoencoding (MAE, He et al. 2022) of generation-space samples with a timm ViT encoder,
plus the paper's short classification fine-tune.

Per step, for a batch u: (B, C, H, W) cut into N = (H/p)(W/p) patches of p*p*C values:
a random subset of round((1 - mask_ratio) N) patches per sample is kept; the encoder (the timm
ViT of the featurizer: patch embedding + position embedding, class token, blocks, norm) sees only
the kept patches; a light decoder (linear to `decoder_dim`, learned mask token at the masked
positions, its own position embedding, `decoder_depth` timm Blocks, linear to p*p*C) predicts
every patch, and the loss is the mean squared error on the masked patches only:

    L_mae = sum_{masked i} ||x_hat_i - x_i||^2 / (|masked| * p*p*C).

Classification fine-tune (last `finetune_steps` steps, needs labels): a linear head on the mean
of the final patch tokens of the unmasked input, cross-entropy weighted by
w(t) = cls_weight * min(1, (t - t0 + 1) / cls_warmup) (t0: the first fine-tune step), added to L_mae.

Hand-written because timm ships ViT encoders but no MAE masking/decoder; the encoder is timm's.
The trained encoder is saved as a `random-vit` featurizer checkpoint (`featurizer.pt`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from generation.pretrain.common import PretrainRun, check_positive, load_space_samples
from generation.pretrain.student import StudentConfig, make_student, save_student

ARCH_KEYS = ("data", "split", "space", "patch_size", "depth", "embed_dim", "num_heads",
             "decoder_dim", "decoder_depth", "mask_ratio", "seed", "n_max")


@dataclass
class MAEConfig(StudentConfig):
    """Options of `train_mae` (one place for each default; the student's: `StudentConfig`)."""

    out: str = "runs/mae"
    finetune_steps: int = 0  # classification fine-tune steps after the `steps` MAE steps
    mask_ratio: float = 0.75  # paper: 0.5 / 0.6 / 0.75
    decoder_dim: int = 64
    decoder_depth: int = 1
    cls_weight: float = 0.1
    cls_warmup: int = 100


class MAEDecoder(nn.Module):
    """Light decoder: (B, 1 + n_keep, D) encoder tokens -> (B, N, p*p*C) patch predictions."""

    def __init__(self, embed_dim: int, dim: int, depth: int, n_patches: int, patch_dim: int):
        from timm.models.vision_transformer import Block

        super().__init__()
        heads = max(1, dim // 32)
        if dim % heads:
            raise ValueError(f"decoder_dim must be a multiple of {heads}, got {dim}")
        self.embed = nn.Linear(embed_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n_patches + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio=2.0) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.pred = nn.Linear(dim, patch_dim)

    def forward(self, tokens: Tensor, keep: Tensor, n_patches: int) -> Tensor:
        """tokens: (B, 1 + K, D), keep: (B, K) kept patch indices -> (B, N, patch_dim)."""
        b, k = keep.shape
        t = self.embed(tokens)
        full = self.mask_token.expand(b, n_patches, -1).clone()
        full = full.scatter(1, keep[..., None].expand(-1, -1, t.shape[-1]), t[:, 1:])
        x = torch.cat([t[:, :1], full], 1) + self.pos
        x = self.norm(self.blocks(x))
        return self.pred(x[:, 1:])


def patchify(u: Tensor, p: int) -> Tensor:
    """u: (B, C, H, W) -> (B, (H/p)(W/p), p*p*C), patches in row-major order (timm's)."""
    b, c, h, w = u.shape
    x = u.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def encode_masked(vit: nn.Module, u: Tensor, keep: Tensor) -> Tensor:
    """Run timm ViT `vit` on the kept patches only. u: (B, C, H, W), keep: (B, K) -> (B, 1+K, D)."""
    x = vit.patch_embed(u)  # (B, N, D)
    pos = vit.pos_embed
    if getattr(vit, "no_embed_class", False) or vit.num_prefix_tokens != 1:
        raise ValueError("MAE needs a ViT with one class token and position embeddings that include it")
    x = x + pos[:, 1:]
    x = x.gather(1, keep[..., None].expand(-1, -1, x.shape[-1]))
    cls = (vit.cls_token + pos[:, :1]).expand(len(x), -1, -1)
    x = vit.norm_pre(vit.pos_drop(torch.cat([cls, x], 1)))
    return vit.norm(vit.blocks(x))


def train_mae(cfg: MAEConfig, *, resume: bool = False, force: bool = False,
        progress: bool = True) -> dict:
    """Train (or continue, `resume`) an MAE run in `cfg.out`. Returns a summary dict with
    `featurizer` (path of the featurizer checkpoint), `step`, `losses` (per step, this call)."""
    if not 0.0 < cfg.mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in (0, 1), got {cfg.mask_ratio}")
    check_positive(batch_size=cfg.batch_size, lr=cfg.lr, decoder_dim=cfg.decoder_dim,
                   cls_warmup=cfg.cls_warmup, save_every=cfg.save_every)
    if cfg.steps < 0 or cfg.finetune_steps < 0:
        raise ValueError(f"steps and finetune_steps must be >= 0, got {cfg.steps}, {cfg.finetune_steps}")
    run = PretrainRun(cfg, resume, ARCH_KEYS, force=force)
    _, labels, u, _ = load_space_samples(cfg.data, cfg.split, cfg.data_root, cfg.space, cfg.n_max)
    if cfg.finetune_steps and labels is None:
        raise ValueError(f"finetune_steps > 0 needs labels; data {cfg.data!r} has none")
    in_shape = tuple(u.shape[1:])
    feat = make_student(cfg, in_shape)
    vit = feat.model
    p = feat.patch[0]
    n_patches = (in_shape[1] // p) * (in_shape[2] // p)
    n_keep = max(1, round((1 - cfg.mask_ratio) * n_patches))
    decoder = MAEDecoder(cfg.embed_dim, cfg.decoder_dim, cfg.decoder_depth, n_patches,
                         p * p * in_shape[0]).to(cfg.device)
    n_cls = int(labels.max()) + 1 if labels is not None else 1
    head = nn.Linear(cfg.embed_dim, n_cls).to(cfg.device)
    params = [*vit.parameters(), *decoder.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = run.gen
    start = run.resume({"featurizer": feat, "decoder": decoder, "head": head, "optimizer": opt})
    total = cfg.steps + cfg.finetune_steps
    bar = tqdm(range(start, total), desc="mae", initial=start, total=total, disable=not progress)
    for step in bar:
        idx = torch.randint(len(u), (cfg.batch_size,), generator=gen)
        ub = u[idx].to(cfg.device)
        noise = torch.rand(len(ub), n_patches, generator=gen).to(cfg.device)
        order = noise.argsort(1)
        keep, masked = order[:, :n_keep], order[:, n_keep:]
        pred = decoder(encode_masked(vit, ub, keep), keep, n_patches)
        target = patchify(ub, p)
        err = (pred - target).pow(2).mean(-1)  # (B, N)
        loss = err.gather(1, masked).mean()
        if step >= cfg.steps:  # classification fine-tune, weight warmed up
            w = cfg.cls_weight * min(1.0, (step - cfg.steps + 1) / cfg.cls_warmup)
            tokens = vit.forward_features(ub)[:, vit.num_prefix_tokens :]
            ce = F.cross_entropy(head(tokens.mean(1)), labels[idx].to(cfg.device))
            loss = loss + w * ce
        run.step(loss, opt, step, total)
    return save_student(run, feat, "mae", total)
