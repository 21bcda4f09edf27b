"""Generation spaces: where a generator's outputs live, with `encode` (ambient -> space) and
`decode` (space -> ambient).

Conventions: ambient images are float `(B, C, H, W)` in [-1, 1]; ambient vectors `(B, D)`.

- `PixelSpace` ("pixels", alias "ambient"): the identity; `shape` = the ambient sample shape.
- `VAESpace` ("vae"): a diffusers `AutoencoderKL`, by default the SD-VAE
  `stabilityai/sd-vae-ft-mse` with latent scaling 0.18215:
  `encode(x) = sample(q(z | x)) * scaling` (posterior sample), `decode(u) = D(u / scaling)`.
  Latents of a `(3, 256, 256)` image are `(4, 32, 32)`.
- `PCASpace` ("pca"): scikit-learn PCA fitted on the data, `encode(x) = (x - mu) V^T` with
  `V: (dim, D)` orthonormal rows, `decode(u) = u V + mu` (the least-squares inverse).

`create_space(spec, fit_data=..., ambient_shape=...)` builds one from a string such as
`"pixels"`, `"vae:name=stabilityai/sd-vae-ft-mse"`, `"vae:path=/local/vae_dir"`,
`"pca:dim=128"`. All spaces are `torch.nn.Module`s (frozen), so `.to(device)` moves them.

The space owns decoding: a featurizer that needs the ambient form (pixels, genes) asks the space
(`ambient_decoder`: the space itself, or None for `PixelSpace`, whose decode is the identity) and
never looks at which space it is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

SD_VAE_NAME = "stabilityai/sd-vae-ft-mse"
SD_VAE_SCALING = 0.18215


class GenerationSpace(nn.Module):
    """Base class. `shape`: per-sample shape in the space; `ambient_shape`: in ambient space."""

    name: str = ""

    def __init__(self, shape: tuple[int, ...], ambient_shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.ambient_shape = tuple(int(s) for s in ambient_shape)

    @property
    def is_spatial(self) -> bool:
        """True when samples are `(C, H, W)` maps (images, latents)."""
        return len(self.shape) == 3

    @property
    def spec(self) -> str:
        """Canonical spec string (recreates the space together with its weights/fit)."""
        return self.name

    def encode(self, x: Tensor) -> Tensor:
        """x: (B, *ambient_shape) -> u: (B, *shape)."""
        raise NotImplementedError

    def decode(self, u: Tensor) -> Tensor:
        """u: (B, *shape) -> x: (B, *ambient_shape)."""
        raise NotImplementedError

    @property
    def ambient_decoder(self) -> GenerationSpace | None:
        """What a featurizer on the ambient form (pixels, genes) decodes u through: this space,
        whose `decode` it calls differentiably (the generator's loss backpropagates through
        it); None when u already is ambient and nothing needs decoding (`PixelSpace`)."""
        return self

    def fingerprint(self) -> str:
        """sha256 of the spec, shapes and all weights/buffers (cache keys)."""
        h = hashlib.sha256(f"{self.spec}|{self.shape}|{self.ambient_shape}".encode())
        for k, v in sorted(self.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def _check(self, t: Tensor, shape: tuple[int, ...], arg: str) -> None:
        if not isinstance(t, Tensor) or tuple(t.shape[1:]) != shape:
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{self.name}: {arg} must have shape (B, {shape}), got {got}")


class PixelSpace(GenerationSpace):
    """The ambient space itself (pixels for images, expression vectors for cells)."""

    name = "pixels"

    def __init__(self, ambient_shape: tuple[int, ...]):
        super().__init__(ambient_shape, ambient_shape)

    @property
    def spec(self) -> str:
        # vectors (e.g. gene expression) have no pixels: their spec is the alias "ambient",
        # so settings and cache keys name the space the data is in
        return self.name if self.is_spatial else "ambient"

    @property
    def ambient_decoder(self) -> None:
        """None: u already is ambient (decode is the identity), nothing to decode."""
        return None

    def encode(self, x: Tensor) -> Tensor:
        self._check(x, self.ambient_shape, "x")
        return x

    def decode(self, u: Tensor) -> Tensor:
        self._check(u, self.shape, "u")
        return u


class VAESpace(GenerationSpace):
    """Latents of a diffusers `AutoencoderKL`, scaled by `scaling` (SD-VAE: 0.18215)."""

    name = "vae"

    def __init__(
        self,
        vae: nn.Module,
        *,
        image_shape: tuple[int, int, int] = (3, 256, 256),
        scaling: float | None = None,
        source: str = "",
    ):
        cfg = vae.config
        f = 2 ** (len(cfg.block_out_channels) - 1)
        c, h, w = image_shape
        if c != cfg.in_channels or h % f or w % f:
            raise ValueError(
                f"vae: image_shape {tuple(image_shape)} does not fit the VAE (in_channels="
                f"{cfg.in_channels}, spatial sizes must be multiples of {f})"
            )
        super().__init__((cfg.latent_channels, h // f, w // f), image_shape)
        self.vae = vae.eval().requires_grad_(False)
        if scaling is None:
            scaling = getattr(cfg, "scaling_factor", None) or SD_VAE_SCALING
        self.scaling = float(scaling)
        self.source = source

    @property
    def spec(self) -> str:
        return f"vae:{self.source},scaling={self.scaling:g}" if self.source else "vae"

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str = SD_VAE_NAME,
        *,
        image_shape: tuple[int, int, int] = (3, 256, 256),
        scaling: float | None = None,
        subfolder: str | None = None,
    ) -> VAESpace:
        """Load an `AutoencoderKL` from a local diffusers directory or a hub name.

        Offline (`HF_HUB_OFFLINE=1`) and not cached -> `WeightsUnavailableError` at once.
        """
        from diffusers import AutoencoderKL

        from featsel.hub import WeightsUnavailableError, require_hf_files

        p = Path(name_or_path).expanduser()
        if p.exists():
            cfg = p / subfolder if subfolder else p
            if not (cfg / "config.json").is_file():
                raise FileNotFoundError(
                    f"vae: {cfg} has no config.json; expected a directory written by "
                    "AutoencoderKL.save_pretrained"
                )
            from diffusers.utils import logging as dlog

            level = dlog.get_verbosity()
            # diffusers logs its own errors and fallbacks (safetensors -> .bin) while loading; a
            # failure is reported below as one line naming the directory, so it stays quiet
            dlog.set_verbosity(dlog.CRITICAL)
            try:
                # low_cpu_mem_usage=False said explicitly: without `accelerate` diffusers
                # otherwise prints a multi-line warning on every load
                vae = AutoencoderKL.from_pretrained(str(p), subfolder=subfolder,
                                                    low_cpu_mem_usage=False)
            except (OSError, ValueError, RuntimeError) as err:  # a truncated or foreign file
                msg = " ".join(str(err).split())[:200]
                raise ValueError(f"vae: could not load the VAE in {str(cfg)!r} ({msg}); expected "
                                 "a directory written by AutoencoderKL.save_pretrained") from None
            finally:
                dlog.set_verbosity(level)
            source = f"path={p}"
        else:
            if name_or_path.startswith(("/", ".", "~")):
                raise FileNotFoundError(f"vae: local VAE directory {p} does not exist")
            how = (
                "Pass a local diffusers directory with 'vae:path=/dir' (a copy of "
                f"{name_or_path} saved with AutoencoderKL.save_pretrained)"
            )
            require_hf_files(
                name_or_path,
                ["config.json"],
                what=f"VAE '{name_or_path}'",
                how=how,
                subfolder=subfolder,
            )
            try:
                vae = AutoencoderKL.from_pretrained(name_or_path, subfolder=subfolder,
                                                    low_cpu_mem_usage=False)
            except OSError as err:
                raise WeightsUnavailableError(
                    f"VAE '{name_or_path}' could not be loaded ({err}). {how}."
                ) from err
            source = f"name={name_or_path}"
        if subfolder:
            source += f",subfolder={subfolder}"
        return cls(vae, image_shape=image_shape, scaling=scaling, source=source)

    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x: (B, 3, H, W) in [-1, 1] -> u: (B, 4, H/8, W/8) = posterior sample * scaling."""
        self._check(x, self.ambient_shape, "x")
        dist = self.vae.encode(x).latent_dist
        return dist.sample(generator=generator) * self.scaling

    def decode(self, u: Tensor) -> Tensor:
        """u: (B, 4, h, w) -> x: (B, 3, 8h, 8w), roughly in [-1, 1] (not clamped)."""
        self._check(u, self.shape, "u")
        return self.vae.decode(u / self.scaling).sample


class PCASpace(GenerationSpace):
    """PCA coordinates fitted with scikit-learn: `u = (x - mu) V^T`, `x_hat = u V + mu`."""

    name = "pca"

    def __init__(self, mean: Tensor, components: Tensor, ambient_shape: tuple[int, ...]):
        """mean: (D,), components: (dim, D) with orthonormal rows."""
        super().__init__((components.shape[0],), ambient_shape)
        self.register_buffer("mean", mean.float())
        self.register_buffer("components", components.float())

    @property
    def spec(self) -> str:
        return f"pca:dim={self.shape[0]}"

    @classmethod
    def fit(cls, x: Tensor | np.ndarray, dim: int, seed: int = 0) -> PCASpace:
        """x: (N, *ambient_shape), fitted with `sklearn.decomposition.PCA(dim)`."""
        from sklearn.decomposition import PCA

        x = torch.as_tensor(x)
        flat = x.reshape(len(x), -1).double().numpy()
        if not 1 <= dim <= min(flat.shape):
            raise ValueError(f"pca: dim must be in [1, min(N, D)] = [1, {min(flat.shape)}], got {dim}")
        pca = PCA(n_components=dim, random_state=seed).fit(flat)
        return cls(torch.from_numpy(pca.mean_), torch.from_numpy(pca.components_), tuple(x.shape[1:]))

    def encode(self, x: Tensor) -> Tensor:
        self._check(x, self.ambient_shape, "x")
        return (x.reshape(len(x), -1) - self.mean) @ self.components.T

    def decode(self, u: Tensor) -> Tensor:
        self._check(u, self.shape, "u")
        return (u @ self.components + self.mean).reshape(len(u), *self.ambient_shape)


@dataclass
class SpaceSpec:
    """Options of `create_space` (one place for each default)."""

    kind: str = "pixels"
    name: str | None = None  # vae: hub name (default SD_VAE_NAME when no path)
    path: str | None = None  # vae: local diffusers directory
    subfolder: str | None = None
    scaling: float | None = None  # vae: latent scaling (default: config's, else 0.18215)
    dim: int = 128  # pca
    seed: int = 0  # pca


def parse_space_spec(spec: str) -> SpaceSpec:
    """'kind[:key=value,...]' -> SpaceSpec; unknown keys or kinds -> ValueError."""
    from featsel.features.spec import options_to_config, parse_spec

    kind, opts = parse_spec(spec)
    kind = {"ambient": "pixels"}.get(kind, kind)
    if kind not in ("pixels", "vae", "pca"):
        raise ValueError(f"generation space must be one of pixels, ambient, vae, pca; got {spec!r}")
    return options_to_config(SpaceSpec, {**opts, "kind": kind}, what=f"space {kind!r}")


def create_space(
    spec: str | GenerationSpace,
    *,
    fit_data: Tensor | None = None,
    ambient_shape: tuple[int, ...] | None = None,
) -> GenerationSpace:
    """Build a generation space from a spec string.

    fit_data: (N, *ambient_shape) ambient samples (needed by 'pca'; gives the shape otherwise).
    ambient_shape: per-sample ambient shape, e.g. (3, 256, 256) for the SD-VAE.
    """
    if isinstance(spec, GenerationSpace):
        return spec
    s = parse_space_spec(spec)
    if ambient_shape is None and fit_data is not None:
        ambient_shape = tuple(fit_data.shape[1:])
    if s.kind == "pca":
        if fit_data is None:
            raise ValueError("space 'pca' needs fit_data: (N, D) ambient samples to fit on")
        return PCASpace.fit(fit_data, s.dim, s.seed)
    if ambient_shape is None:
        if s.kind == "vae":
            ambient_shape = (3, 256, 256)
        else:
            raise ValueError(f"space {spec!r} needs ambient_shape or fit_data to know its shape")
    if s.kind == "pixels":
        return PixelSpace(ambient_shape)
    if len(ambient_shape) != 3:
        raise ValueError(f"space 'vae' needs image data (C, H, W), got ambient_shape {ambient_shape}")
    return VAESpace.from_pretrained(
        s.path or s.name or SD_VAE_NAME,
        image_shape=ambient_shape,  # type: ignore[arg-type]
        scaling=s.scaling,
        subfolder=s.subfolder,
    )
