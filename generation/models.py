"""One-step generators g(noise, class, alpha) -> sample in the generation space M.

Two families, one interface (`forward(noise, labels, alpha)`, attribute `noise_shape`):

- `DiTGenerator` for images / latents `(C, H, W)`: patchify (conv, stride p), fixed 2-D sin-cos
  positions, register tokens carrying the conditioning, transformer blocks with adaLN-Zero
  modulation, RMSNorm, QK-norm attention and a SwiGLU MLP, a final adaLN layer, unpatchify.
  No timestep: the generator is one-step. Conditioning `c = E_class[y] + MLP(fourier(alpha))`
  (plus an optional random "style" code as in the paper's code).
- `MLPGenerator` for vectors `(D,)` (single-cell expression, PCA coordinates): residual MLP on
  `[noise, one_hot(class), fourier(alpha)]`.

Presets (`create_generator`): DiT `tiny`, `S`, `B`, `L` with a patch size `/p` (`B/2`, `L/2` are
the paper's configurations for 32x32x4 SD-VAE latents; `tiny/4` is the CPU test size) and MLP
`mlp-tiny`, `mlp`. Hand-written (not diffusers' `DiTTransformer2DModel`) because the paper's
generator differs from the diffusion DiT: no timestep, alpha Fourier conditioning, registers,
RMSNorm/QK-norm/SwiGLU.

Model files hold only models: no training logic.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "DiTGenerator",
    "MLPGenerator",
    "DIT_PRESETS",
    "MLP_PRESETS",
    "create_generator",
    "fourier_features",
]


def fourier_features(alpha: torch.Tensor, dim: int, max_period: float = 10.0) -> torch.Tensor:
    """Sinusoidal features of a scalar: `[cos(alpha * f_k), sin(alpha * f_k)]`.

    f_k = max_period^(-k / (dim/2)), k = 0..dim/2-1.  alpha: (B,) -> (B, dim).
    """
    half = dim // 2
    k = torch.arange(half, device=alpha.device, dtype=torch.float32)
    freqs = torch.exp(-math.log(max_period) * k / half)
    args = alpha.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class AlphaEmbedder(nn.Module):
    """alpha: (B,) -> (B, hidden): Fourier features followed by a 2-layer MLP."""

    def __init__(self, hidden: int, n_freq: int = 256):
        super().__init__()
        self.n_freq = n_freq
        self.mlp = nn.Sequential(nn.Linear(n_freq, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, alpha: torch.Tensor) -> torch.Tensor:
        return self.mlp(fourier_features(alpha, self.n_freq).to(self.mlp[0].weight.dtype))


class StyleEmbedder(nn.Module):
    """Random style code (the paper code's extra noise): sum of `n_tokens` codebook rows."""

    def __init__(self, hidden: int, n_tokens: int = 32, codebook_size: int = 64):
        super().__init__()
        self.n_tokens = n_tokens
        self.codebook = nn.Embedding(codebook_size, hidden)

    def forward(self, batch: int, device: torch.device) -> torch.Tensor:
        idx = torch.randint(0, self.codebook.num_embeddings, (batch, self.n_tokens), device=device)
        return self.codebook(idx).sum(dim=1)


def sincos_pos_embed_2d(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding (as in MAE/DiT): -> (grid*grid, dim)."""
    if dim % 4 != 0:
        raise ValueError(f"hidden size must be divisible by 4 for 2-D sin-cos positions, got {dim}")
    coords = torch.arange(grid, dtype=torch.float64)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    parts = []
    for pos in (yy.reshape(-1), xx.reshape(-1)):
        out = pos[:, None] * omega[None, :]
        parts += [torch.sin(out), torch.cos(out)]
    return torch.cat(parts, dim=1).float()


class SwiGLU(nn.Module):
    """x: (..., dim) -> (..., dim); `W2 (silu(W1 x) * W3 x)`."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Attention(nn.Module):
    """Multi-head self-attention with RMSNorm on queries and keys. x: (B, T, dim)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"hidden size {dim} must be divisible by heads {heads}")
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_norm = nn.RMSNorm(self.head_dim, eps=1e-6)
        self.k_norm = nn.RMSNorm(self.head_dim, eps=1e-6)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).reshape(B, T, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, T, D))


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    """Pre-norm transformer block with adaLN-Zero: x: (B, T, dim), c: (B, dim)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.RMSNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.RMSNorm(dim, eps=1e-6)
        self.mlp = SwiGLU(dim, int(dim * mlp_ratio))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, dim=1)
        x = x + g1[:, None] * self.attn(_modulate(self.norm1(x), sh1, sc1))
        return x + g2[:, None] * self.mlp(_modulate(self.norm2(x), sh2, sc2))


class DiTGenerator(nn.Module):
    """One-step DiT generator: noise (B, C, H, W), labels (B,), alpha (B,) -> (B, C, H, W).

    Label index `num_classes` is the null (unconditional) class; `label_dropout` replaces labels
    by it with that probability in training mode (the paper code uses 0.1).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        img_size: int,
        num_classes: int,
        patch_size: int = 2,
        hidden: int = 768,
        depth: int = 12,
        heads: int = 12,
        mlp_ratio: float = 4.0,
        registers: int = 16,
        label_dropout: float = 0.0,
        style_tokens: int = 0,
    ):
        super().__init__()
        if img_size % patch_size != 0:
            raise ValueError(f"img_size {img_size} must be divisible by patch_size {patch_size}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.noise_shape = (in_channels, img_size, img_size)
        self.num_classes = num_classes
        self.patch_size = patch_size
        self.grid = img_size // patch_size
        self.label_dropout = label_dropout
        self.patch = nn.Conv2d(in_channels, hidden, patch_size, stride=patch_size)
        self.register_buffer("pos", sincos_pos_embed_2d(hidden, self.grid)[None], persistent=False)
        self.n_registers = registers
        self.registers = nn.Parameter(torch.randn(1, registers, hidden) * 0.02)
        self.cond_to_registers = nn.Linear(hidden, hidden)
        self.class_embed = nn.Embedding(num_classes + 1, hidden)
        self.alpha_embed = AlphaEmbedder(hidden)
        self.style = StyleEmbedder(hidden, style_tokens) if style_tokens > 0 else None
        self.blocks = nn.ModuleList(DiTBlock(hidden, heads, mlp_ratio) for _ in range(depth))
        self.final_norm = nn.RMSNorm(hidden, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.final = nn.Linear(hidden, patch_size * patch_size * in_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)
        w = self.patch.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch.bias)
        # class embedding at unit scale per entry (|e_y| ~ sqrt(hidden)), not DiT's std 0.02:
        # with 0.02 the class is ~4% of c = e_y + MLP(fourier(alpha)) (|.| ~ 4 at hidden 64),
        # the adaLN-Zero layers learn the alpha part only and every class gets one sample
        # distribution (digits/MNIST runs at chance class accuracy; see test_generation_parts)
        nn.init.normal_(self.class_embed.weight, std=1.0)
        for blk in self.blocks:  # adaLN-Zero: every residual branch starts closed
            nn.init.zeros_(blk.ada[-1].weight)
            nn.init.zeros_(blk.ada[-1].bias)
        nn.init.zeros_(self.final_ada[-1].weight)
        nn.init.zeros_(self.final_ada[-1].bias)
        nn.init.zeros_(self.cond_to_registers.weight)
        nn.init.zeros_(self.cond_to_registers.bias)
        # not zero: a one-step generator's output must depend on the noise from step 0
        nn.init.normal_(self.final.weight, std=0.02)
        nn.init.zeros_(self.final.bias)

    def condition(self, labels: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """labels: (B,) int, alpha: (B,) -> c: (B, hidden)."""
        if self.training and self.label_dropout > 0:
            drop = torch.rand(labels.shape, device=labels.device) < self.label_dropout
            labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
        c = self.class_embed(labels) + self.alpha_embed(alpha)
        if self.style is not None:
            c = c + self.style(labels.shape[0], labels.device)
        return c

    def forward(self, noise: torch.Tensor, labels: torch.Tensor, alpha: torch.Tensor):
        """noise: (B, C, H, W), labels: (B,), alpha: (B,) -> (B, C, H, W)."""
        B, C, H, W = noise.shape
        p, g = self.patch_size, self.grid
        c = self.condition(labels, alpha)
        x = self.patch(noise).flatten(2).transpose(1, 2) + self.pos.to(noise.dtype)
        reg = self.registers.expand(B, -1, -1) + self.cond_to_registers(c)[:, None]
        x = torch.cat([reg.to(x.dtype), x], dim=1)
        for blk in self.blocks:
            x = blk(x, c)
        x = x[:, self.n_registers :]
        shift, scale = self.final_ada(c).chunk(2, dim=1)
        x = self.final(_modulate(self.final_norm(x), shift, scale))  # (B, g*g, p*p*C)
        x = x.reshape(B, g, g, p, p, C).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(B, C, g * p, g * p)


class MLPGenerator(nn.Module):
    """Vector generator: noise (B, noise_dim), labels (B,), alpha (B,) -> (B, *out_shape).

    Input `[noise, one_hot(label, K+1), fourier(alpha)]` (index K = null class), a linear
    stem, `depth` pre-LayerNorm residual blocks `x + W2 silu(W1 LN(x))`, LayerNorm, linear head
    to prod(out_shape) values, reshaped to `out_shape` (default `(out_dim,)`; a spatial shape such
    as a small VAE latent (4, 7, 7) is generated as a flat vector, without spatial structure).
    """

    def __init__(
        self,
        *,
        out_dim: int,
        num_classes: int,
        noise_dim: int | None = None,
        hidden: int = 512,
        depth: int = 4,
        n_freq: int = 32,
        label_dropout: float = 0.0,
        out_shape: tuple[int, ...] | None = None,
    ):
        super().__init__()
        if out_dim < 1 or num_classes < 1:
            raise ValueError(f"out_dim and num_classes must be >= 1, got {out_dim}, {num_classes}")
        self.out_shape = tuple(out_shape) if out_shape else (out_dim,)
        if math.prod(self.out_shape) != out_dim:
            raise ValueError(f"out_shape {self.out_shape} must hold out_dim={out_dim} values")
        self.noise_shape = (noise_dim or out_dim,)
        self.num_classes = num_classes
        self.n_freq = n_freq
        self.label_dropout = label_dropout
        self.stem = nn.Linear(self.noise_shape[0] + num_classes + 1 + n_freq, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden)
            )
            for _ in range(depth)
        )
        self.head = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, out_dim))

    def forward(self, noise: torch.Tensor, labels: torch.Tensor, alpha: torch.Tensor):
        """noise: (B, noise_dim), labels: (B,), alpha: (B,) -> (B, out_dim)."""
        if self.training and self.label_dropout > 0:
            drop = torch.rand(labels.shape, device=labels.device) < self.label_dropout
            labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
        onehot = F.one_hot(labels, self.num_classes + 1).to(noise.dtype)
        feats = fourier_features(alpha, self.n_freq).to(noise.dtype)
        x = self.stem(torch.cat([noise, onehot, feats], dim=1))
        for blk in self.blocks:
            x = x + blk(x)
        return self.head(x).view(len(x), *self.out_shape)


# size -> (hidden, depth, heads, registers); patch size comes from the name ("B/2") or the data
DIT_PRESETS: dict[str, dict] = {
    "tiny": dict(hidden=64, depth=2, heads=2, registers=4),
    "S": dict(hidden=384, depth=12, heads=6, registers=16),
    "B": dict(hidden=768, depth=12, heads=12, registers=16),
    "L": dict(hidden=1024, depth=24, heads=16, registers=16),
}
MLP_PRESETS: dict[str, dict] = {
    "mlp-tiny": dict(hidden=64, depth=2),
    "mlp": dict(hidden=512, depth=4),
}


def create_generator(
    name: str, *, sample_shape: tuple[int, ...], num_classes: int, **overrides
) -> nn.Module:
    """Build a generator from a preset name for samples of `sample_shape`.

    name: DiT `"tiny" | "S" | "B" | "L"` with optional `/patch` (`"B/2"`; default patch 2 if it
    divides the image size, else 4, else 1) for `sample_shape = (C, H, H)`; `"mlp-tiny" | "mlp"`
    for any `sample_shape` (generated flat, reshaped). overrides: any constructor argument
    (`hidden=..., depth=...`).
    """
    shape = tuple(int(s) for s in sample_shape)
    if name in MLP_PRESETS:
        return MLPGenerator(out_dim=math.prod(shape), num_classes=num_classes,
                            out_shape=shape, **{**MLP_PRESETS[name], **overrides})
    size, _, patch = name.partition("/")
    if size not in DIT_PRESETS:
        known = sorted(DIT_PRESETS) + [f"{k}/2" for k in DIT_PRESETS] + sorted(MLP_PRESETS)
        raise ValueError(f"model must be one of {known}, got {name!r}")
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(f"DiT model {name!r} needs sample_shape (C, H, H), got {shape}")
    if patch:
        if not patch.isdigit():
            raise ValueError(f"model patch size must be an integer, got {name!r}")
        p = int(patch)
    else:
        p = next(q for q in (2, 4, 1) if shape[1] % q == 0)
    kwargs = {**DIT_PRESETS[size], "patch_size": p, **overrides}
    return DiTGenerator(in_channels=shape[0], img_size=shape[1], num_classes=num_classes, **kwargs)
