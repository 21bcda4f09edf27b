"""ViT featurizers (timm): attention keys tapped every k layers, plus token and pooled facets.

Featurizer names (one factory, `make_vit`; the registry's defaults tell them apart): `vit` (any
timm ViT, pretrained weights by name or local file), `random-vit` (the same, randomly
initialised: a baseline the paper lacks), `dinov2` (timm's DINOv2, on pixels: the evaluation
space of FD-DINO).

Keys facet (paper Appendix C): at each tapped block i (layers k, 2k, ... counted from 1), the
keys `k_norm(key slice of qkv(norm1(x_i)))` of shape (B, heads, tokens, head_dim) are captured
by a forward hook on `blocks[i].attn.k_norm` (timm calls it on the keys; it is the identity
unless `qk_norm=true`). Prefix (class/register) tokens are dropped and the patch tokens are
reshaped into a map `(B, heads * head_dim, H/p, W/p)` (channel = head * head_dim + d), named
`keys.<layer>`. Other facets: `tokens` (final normed patch tokens, `(B, D, H/p, W/p)`),
`pooled` (timm's pre-logits pooled vector, `(B, D)`), `cls` (the final class token, `(B, D)`).

Inputs: `input=generation` feeds u itself (e.g. SD-VAE latents with in_chans=4, patch_size=2);
`input=pixels` decodes u to pixels with the generation space, maps [-1, 1] to [0, 1], repeats
grey channels to in_chans, resizes to img_size (bicubic) and applies the model's mean/std.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from featsel.features.base import Featurizer
from featsel.hub import WeightsUnavailableError, is_offline, require_hf_files, torch_hub_checkpoint
from featsel.safeload import safetensors_load, torch_load

FACETS = ("keys", "tokens", "pooled", "cls")


@dataclass
class ViTConfig:
    """Options of the ViT featurizers (one place for each default; `random-vit` and `dinov2`
    override a few through the registry)."""

    model: str = "vit_small_patch16_224.augreg_in21k_ft_in1k"  # timm name, or hf-hub:org/name
    pretrained: bool = True
    weights: str | None = None  # local weights file (timm/HF state dict, or featsel checkpoint)
    img_size: int | None = None  # default: input H for input=generation, the model's for pixels
    patch_size: int | None = None  # default: the model's (random-vit: chosen from img_size)
    in_chans: int | None = None  # default: input channels for input=generation, 3 for pixels
    depth: int | None = None
    embed_dim: int | None = None
    num_heads: int | None = None
    qk_norm: bool | None = None
    tap_every: int = 3  # keys tapped at layers k, 2k, ... (1-based)
    facets: tuple[str, ...] = ("keys", "tokens", "pooled")
    input: str = "generation"  # generation | pixels
    seed: int = 0  # initialisation of random weights


def _default_patch(size: int) -> int:
    """Smallest divisor p of `size` with size / p <= 16 (32 -> 2, 28 -> 2, 25 -> 5, 8 -> 1)."""
    for p in range(1, size + 1):
        if size % p == 0 and size // p <= 16:
            return p
    return size


def _check_offline(cfg: ViTConfig) -> None:
    """Fail at once when pretrained weights are neither local nor downloadable."""
    how = (
        "Pass a local weights file with 'weights=/path/to/model.safetensors' in the featurizer "
        "spec (or use random-vit / pretrained=false)"
    )
    if cfg.model.startswith("hf-hub:"):
        repo = cfg.model[len("hf-hub:") :].split("@")[0]
        require_hf_files(
            repo,
            ["open_clip_pytorch_model.bin", "model.safetensors", "pytorch_model.bin"],
            what=f"ViT {cfg.model!r}",
            how=how,
        )
        return
    from timm.models import get_pretrained_cfg

    pcfg = get_pretrained_cfg(cfg.model)
    if pcfg is None:
        raise ValueError(f"featurizer vit: timm has no pretrained weights for {cfg.model!r}; {how}")
    if pcfg.file and Path(pcfg.file).is_file():
        return
    if pcfg.hf_hub_id:
        files = (
            [pcfg.hf_hub_filename]
            if pcfg.hf_hub_filename
            else ["model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"]
        )
        require_hf_files(pcfg.hf_hub_id, files, what=f"ViT {cfg.model!r}", how=how)
        return
    if pcfg.url and is_offline():
        url = pcfg.url if isinstance(pcfg.url, str) else pcfg.url[0]
        if not torch_hub_checkpoint(url).is_file():
            raise WeightsUnavailableError(
                f"ViT {cfg.model!r}: weights not available offline (no {torch_hub_checkpoint(url)}). {how}."
            )


def build_timm_vit(cfg: ViTConfig, in_shape: tuple[int, ...] | None, *,
                   load_weights: bool = True) -> nn.Module:
    """timm.create_model with the config's overrides (num_classes=0), then `weights=` (a local
    file, with or without `pretrained`) unless `load_weights` is False (a saved featurizer's
    state dict follows)."""
    import timm

    kwargs: dict[str, Any] = {"num_classes": 0}
    if cfg.input == "generation":
        if in_shape is not None and len(in_shape) != 3:
            raise ValueError(f"featurizer vit: input=generation needs (C, H, W) inputs, got shape {in_shape}")
        if in_shape is not None:
            if in_shape[1] != in_shape[2]:
                raise ValueError(f"featurizer vit: inputs must be square, got {in_shape}")
            kwargs["img_size"] = cfg.img_size or in_shape[1]
            kwargs["in_chans"] = cfg.in_chans or in_shape[0]
    for k in ("img_size", "in_chans", "patch_size", "depth", "embed_dim", "num_heads", "qk_norm"):
        v = getattr(cfg, k)
        if v is not None:
            kwargs[k] = v
    weights_file = None
    featsel_checkpoint = load_weights and _is_featsel_checkpoint(cfg.weights)
    if load_weights and cfg.weights and not featsel_checkpoint:
        # weights= is loaded whatever `pretrained` says (it was silently ignored with
        # pretrained=false, the random-vit default, even for a file that did not exist)
        weights_file = Path(cfg.weights).expanduser()
        if not weights_file.is_file():
            raise FileNotFoundError(f"featurizer vit: weights file {weights_file} does not exist")
    elif cfg.pretrained and not cfg.weights:
        _check_offline(cfg)
    try:
        with _seeded(cfg.seed):
            model = timm.create_model(cfg.model, pretrained=cfg.pretrained and not cfg.weights,
                                      **kwargs)
    except RuntimeError as err:
        if "Unknown model" in str(err):
            raise ValueError(f"featurizer vit: {err}") from err
        raise
    except (AssertionError, TypeError, ValueError) as err:
        # timm asserts on inconsistent shapes (e.g. embed_dim not divisible by num_heads)
        opts = {k: v for k, v in kwargs.items() if k != "num_classes"}
        raise ValueError(f"featurizer vit: timm cannot build {cfg.model!r} with {opts} "
                         f"({type(err).__name__}: {str(err) or 'inconsistent options'}); e.g. "
                         f"embed_dim must be divisible by num_heads") from None
    if weights_file is not None:
        load_weights_file(model, weights_file, cfg.model)
    elif featsel_checkpoint:
        sd = torch_load(cfg.weights, "featurizer vit: weights=")["state_dict"]
        sd = {k[len("model.") :]: v for k, v in sd.items() if k.startswith("model.")}
        model.load_state_dict(sd)
    return model


def load_weights_file(model: nn.Module, path: Path, name: str) -> None:
    """A local timm/HF weights file (.safetensors, .pth/.pt/.bin state dict, or JAX .npz) into a
    timm model, through the model family's `checkpoint_filter_fn` (key renames, position
    embeddings resampled to the model's grid), strictly but for a classifier head the
    featurizer does not have (num_classes=0).

    Why not timm's `pretrained_cfg_overlay={"file": ...}`: local files load differently across
    timm releases (before 1.0.31 a ViT tag's npz loader took any file; 1.0.29 loaded a state
    dict that did not reproduce the saved weights), and torch.load must run with weights_only.
    """
    if path.suffix == ".npz":
        model.load_pretrained(str(path))  # timm's loader of the original JAX checkpoints
        return
    if path.suffix == ".safetensors":
        sd: Any = safetensors_load(path, "featurizer vit: weights=")
    else:
        sd = torch_load(path, "featurizer vit: weights=")
    for key in ("state_dict", "model", "module"):  # common training-checkpoint wrappers
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise ValueError(f"featurizer vit: weights file {path} does not hold a state dict "
                         f"(name -> tensor)")
    filter_fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    if filter_fn is not None:
        sd = filter_fn(sd, model)
    own = model.state_dict()
    sd = {k: v for k, v in sd.items() if k in own or not k.startswith("head")}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(f"featurizer vit: weights file {path} does not fit {name!r} with these "
                         f"options: missing {list(missing)[:5]}, unexpected "
                         f"{list(unexpected)[:5]}")


def _is_featsel_checkpoint(path: str | None) -> bool:
    if not path or not str(path).endswith((".pt", ".pth")) or not Path(path).is_file():
        return False
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return False
    return isinstance(obj, dict) and str(obj.get("format", "")).startswith("featsel-featurizer")


@contextlib.contextmanager
def _seeded(seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class ViTFeaturizer(Featurizer):
    """A timm ViT with key hooks. forward(u: (B, C, H, W)) -> maps named by `map_names`."""

    def __init__(
        self,
        config: ViTConfig,
        model: nn.Module,
        *,
        space: nn.Module | None = None,
        in_shape: tuple[int, ...] | None = None,
    ):
        bad = set(config.facets) - set(FACETS)
        if bad or not config.facets:
            raise ValueError(f"featurizer vit: facets must be among {FACETS}, got {config.facets}")
        if config.input not in ("generation", "pixels"):
            raise ValueError(f"featurizer vit: input must be generation or pixels, got {config.input!r}")
        blocks = getattr(model, "blocks", None)
        if blocks is None or not hasattr(model, "patch_embed"):
            raise ValueError(f"featurizer vit: {config.model!r} is not a timm VisionTransformer")
        depth = len(blocks)
        if config.tap_every < 1:
            raise ValueError(f"featurizer vit: tap_every must be >= 1, got {config.tap_every}")
        self.taps = [i for i in range(depth) if (i + 1) % config.tap_every == 0]
        names: list[str] = []
        for facet in config.facets:
            if facet == "keys":
                if not self.taps:
                    raise ValueError(f"featurizer vit: tap_every={config.tap_every} > depth={depth}: no taps")
                names += [f"keys.{i + 1}" for i in self.taps]
            else:
                names.append(facet)
        super().__init__(config, names)
        self.model = model
        self.in_shape = tuple(in_shape) if in_shape else None
        self.use_space(space if config.input == "pixels" else None)
        self.prefix = int(getattr(model, "num_prefix_tokens", 1))
        ps = model.patch_embed.patch_size
        self.patch = (ps, ps) if isinstance(ps, int) else tuple(ps)
        self._keys: dict[int, Tensor] = {}
        self._hooks = []
        if "keys" in config.facets:
            for i in self.taps:
                attn = blocks[i].attn
                if not hasattr(attn, "k_norm"):
                    raise ValueError(
                        f"featurizer vit: block {i} attention of {config.model!r} has no k_norm; "
                        "the keys facet needs timm's Attention"
                    )
                self._hooks.append(attn.k_norm.register_forward_hook(self._make_hook(i)))
        pcfg = getattr(model, "pretrained_cfg", {}) or {}
        pixel_mean = pcfg.get("mean", (0.5, 0.5, 0.5)) if config.pretrained else (0.5,) * 3
        pixel_std = pcfg.get("std", (0.5, 0.5, 0.5)) if config.pretrained else (0.5,) * 3
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(1, -1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(1, -1, 1, 1), False)

    def _make_hook(self, i: int):
        def hook(module, args, out):
            self._keys[i] = out

        return hook

    def prepare(self, u: Tensor) -> Tensor:
        """u -> the network input (B, in_chans, img, img) (identity for input=generation)."""
        if u.ndim != 4:
            raise ValueError(f"featurizer vit: u must be (B, C, H, W), got {tuple(u.shape)}")
        if self.config.input == "generation":
            return u
        x = (self.to_ambient(u) + 1) / 2
        c = self.model.patch_embed.proj.in_channels
        if x.shape[1] == 1 and c != 1:
            x = x.expand(-1, c, -1, -1)
        size = self.model.patch_embed.img_size
        size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
        mean = self.pixel_mean[:, : x.shape[1]].to(x.dtype)
        std = self.pixel_std[:, : x.shape[1]].to(x.dtype)
        return (x - mean) / std

    def _grid(self, x: Tensor) -> tuple[int, int]:
        return x.shape[-2] // self.patch[0], x.shape[-1] // self.patch[1]

    def _spatial(self, tokens: Tensor, grid: tuple[int, int]) -> Tensor:
        """tokens: (B, N_prefix + h*w, D) -> (B, D, h, w)."""
        t = tokens[:, self.prefix :]
        if t.shape[1] != grid[0] * grid[1]:
            raise ValueError(f"featurizer vit: {t.shape[1]} patch tokens do not make a {grid} grid")
        return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], *grid)

    def forward(self, u: Tensor) -> list[Tensor]:
        """u: (B, C, H, W) -> [keys.<l>: (B, heads*head_dim, h, w) ..., tokens: (B, D, h, w),
        pooled: (B, D), cls: (B, D)] in `map_names` order."""
        x = self.prepare(u)
        grid = self._grid(x)
        facets = self.config.facets
        self._keys = {}
        try:
            if set(facets) == {"keys"}:
                self.model.forward_intermediates(
                    x, indices=[self.taps[-1]], stop_early=True, intermediates_only=True
                )
                feats = None
            else:
                feats = self.model.forward_features(x)
            keys = dict(self._keys)
        finally:
            self._keys = {}
        out: list[Tensor] = []
        for facet in facets:
            if facet == "keys":
                for i in self.taps:
                    k = keys[i]  # (B, heads, N, head_dim)
                    b, h, n, d = k.shape
                    k = k[:, :, self.prefix :].permute(0, 1, 3, 2).reshape(b, h * d, *grid)
                    out.append(k)
            elif facet == "tokens":
                out.append(self._spatial(feats, grid))
            elif facet == "pooled":
                out.append(self.model.forward_head(feats, pre_logits=True))
            elif facet == "cls":
                if self.prefix < 1:
                    raise ValueError("featurizer vit: facet cls needs a class token")
                out.append(feats[:, 0])
        return out


def make_vit(cfg: ViTConfig, *, space=None, in_shape=None, fit_data=None,
             state_dict=None) -> ViTFeaturizer:
    """The factory of `vit`, `random-vit` and `dinov2` (they differ in the registry's defaults)."""
    if state_dict is not None:
        cfg.pretrained = False
    if cfg.input == "generation" and cfg.patch_size is None and in_shape is not None:
        if len(in_shape) == 3 and not cfg.pretrained:
            cfg.patch_size = _default_patch(cfg.img_size or in_shape[1])
    model = build_timm_vit(cfg, in_shape, load_weights=state_dict is None)
    return ViTFeaturizer(cfg, model, space=space, in_shape=in_shape)

