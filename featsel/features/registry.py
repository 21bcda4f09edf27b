"""Named featurizers, created from spec strings: the one table of them, `FEATURIZERS`.

Spec syntax: ``name[:key=value,key=value,...]`` (`featsel.features.spec`). Values are converted
to the type of the option's dataclass field (int, float, bool `true/false`, str, or lists joined
with ``+``: ``facets=keys+pooled``); ``none`` clears an optional value. A spec that is a path to
a featsel featurizer checkpoint (``*.pt``, written by `save_featurizer`) loads it, as does
``checkpoint:path=FILE``; a CNN teacher's ``teacher.pt`` loads as ``cnn-teacher:path=FILE``.

    create_featurizer("pca:dim=32", fit_data=u_train)        # u_train: (N, *space.shape)
    create_featurizer("random-vit:depth=4,tap_every=2", space=space)
    create_featurizer("vit:model=vit_small_patch16_224.augreg_in21k,input=pixels", space=space)
    create_featurizer("runs/featurizer.pt")

This module imports every implementation; the implementations never import it (they import
`featsel.features.base` and `featsel.features.spec`). Adding a featurizer: a module in
`featsel/features/` with its options dataclass, its `Featurizer` subclass and a factory
``make_x(cfg, *, space=None, in_shape=None, fit_data=None, state_dict=None) -> XFeaturizer``
(the return annotation names the class(es) it builds: `differentiable` is read from them), then
one line in `FEATURIZERS` below. Heavy third-party packages (timm, diffusers, torch_fidelity,
scvi-tools) stay imported inside the functions that need them, so importing this stays fast.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from featsel.features import cnn, controls, inception, mlpvae, scvi_encoder, simple, vit
from featsel.features.base import Featurizer
from featsel.features.spec import options_to_config, parse_spec
from featsel.rundir import atomic_save
from featsel.safeload import torch_load

__all__ = ["CHECKPOINT_FORMAT", "FEATURIZERS", "FeaturizerEntry", "create_featurizer",
           "is_differentiable", "list_featurizers", "load_featurizer", "options_to_config",
           "parse_spec", "save_featurizer"]

CHECKPOINT_FORMAT = "featsel-featurizer-v1"

Factory = Callable[..., Featurizer]


@dataclass(frozen=True)
class FeaturizerEntry:
    """A featurizer name: its options dataclass, factory
    ``(cfg, *, space, in_shape, fit_data, state_dict=None) -> Featurizer``, per-name option
    defaults (e.g. `random-vit`: `vit` with ``pretrained=False``) and one-line description."""

    config: type
    factory: Factory
    defaults: dict[str, Any]
    description: str

    @property
    def classes(self) -> tuple[type[Featurizer], ...]:
        """The Featurizer subclass(es) the factory builds (its return annotation)."""
        ret = typing.get_type_hints(self.factory).get("return")
        if ret is None:
            raise TypeError(f"featurizer factory {self.factory.__qualname__} needs a return "
                            "annotation naming the Featurizer class(es) it builds")
        return tuple(typing.get_args(ret)) if typing.get_args(ret) else (ret,)

    @property
    def differentiable(self) -> bool:
        """Whether every featurizer this entry builds passes gradients back to its input."""
        return all(c.differentiable for c in self.classes)


_E = FeaturizerEntry
_VIT_TINY = {"model": "vit_tiny_patch16_224", "pretrained": False}
_DINOV2 = {"model": "vit_small_patch14_dinov2.lvd142m", "input": "pixels", "img_size": 224,
           "facets": "pooled"}

# The featurizers, one entry each, in the order `featsel featurizers` lists them:
# name: _E(options dataclass, factory, option defaults, description).
FEATURIZERS: dict[str, FeaturizerEntry] = {
    "identity": _E(simple.IdentityConfig, simple.make_identity, {},
                   "the generation space itself (spatial for images/latents)"),
    "pca": _E(simple.PCAConfig, simple.make_pca, {},
              "PCA fitted on the data (sklearn), a (B, dim) global map"),
    "random-projection": _E(simple.RandomProjectionConfig, simple.make_random_projection, {},
                            "a Gaussian random projection (sklearn), (B, dim) or, spatial=true, "
                            "(B, dim, H, W)"),
    "random-vit": _E(vit.ViTConfig, vit.make_vit, _VIT_TINY,
                     "a randomly initialised timm ViT (a baseline), same facets as vit"),
    "vit": _E(vit.ViTConfig, vit.make_vit, {},
              "a timm ViT: attention keys every tap_every layers, tokens, pooled"),
    "dinov2": _E(vit.ViTConfig, vit.make_vit, _DINOV2,
                 "timm DINOv2 on pixels (FD-DINO's space): pooled CLS by default"),
    "inception": _E(inception.InceptionConfig, inception.make_inception, {},
                    "torch-fidelity InceptionV3 pool3 (FID's space), on pixels"),
    "vae-latent": _E(simple.VAELatentConfig, simple.make_vae_latent, {},
                     "the flattened generation space (FD-VAE's space)"),
    "ambient": _E(simple.AmbientConfig, simple.make_ambient, {},
                  "the data's ambient space (pixels/genes): u decoded, flattened"),
    "mlp-vae": _E(mlpvae.MLPVAEConfig, mlpvae.make_mlp_vae, {},
                  "MLP Gaussian VAE on vectors (cells x genes; `featsel pretrain vae` on vector "
                  "data), the posterior mean (B, latent_dim)"),
    "scvi-encoder": _E(scvi_encoder.ScviEncoderConfig, scvi_encoder.make_scvi_encoder, {},
                       "scVI's encoder (`featsel pretrain scvi`, needs scvi-tools only to train): the "
                       "latent mean of q(z|x) (B, latent_dim) on vectors (cells x genes)"),
    "noise": _E(controls.NoiseConfig, controls.make_noise, {},
                "control: i.i.d. Gaussian features per sample (seeded hash), (B, dim); carries no "
                "information about the data"),
    "constant": _E(controls.ConstantConfig, controls.make_constant, {},
                   "control: the same features for every sample, (B, dim)"),
    "cnn-teacher": _E(cnn.CNNTeacherConfig, cnn.make_cnn_teacher, {},
                      "the small CNN classifier trained by `featsel pretrain teacher` "
                      "(teacher.pt), on pixels"),
}


def list_featurizers() -> list[dict[str, Any]]:
    """[{name, description, options: {option: default}}] for every featurizer in the table."""
    out = []
    for name, e in FEATURIZERS.items():
        cfg = options_to_config(e.config, e.defaults, what=name)
        opts = {f.name: _jsonable(getattr(cfg, f.name)) for f in fields(cfg)}
        out.append({"name": name, "description": e.description, "options": opts})
    out.append(
        {
            "name": "checkpoint",
            "description": "a featurizer checkpoint written by featsel (save_featurizer); "
            "also accepted as a bare path",
            "options": {"path": None},
        }
    )
    return out


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def create_featurizer(
    spec: str,
    *,
    space: Any | None = None,
    fit_data: Tensor | None = None,
    in_shape: tuple[int, ...] | None = None,
) -> Featurizer:
    """Build a frozen featurizer (eval mode, parameters without gradient).

    spec: see module docstring. space: the `GenerationSpace` of the inputs (decoded to pixels
    by featurizers that need pixels: inception, dinov2, vit with input=pixels).
    fit_data: (N, *space.shape) generation-space samples for fitted featurizers (pca).
    in_shape: per-sample input shape when neither space nor fit_data gives it.
    """
    name, opts, checkpoint = _resolve(spec)
    if checkpoint is not None:
        return load_featurizer(checkpoint, space=space)
    entry = _entry(name)
    cfg = options_to_config(entry.config, {**entry.defaults, **opts}, what=f"featurizer {name!r}")
    if in_shape is None:
        if space is not None:
            in_shape = tuple(space.shape)
        elif fit_data is not None:
            in_shape = tuple(fit_data.shape[1:])
    feat = entry.factory(cfg, space=space, in_shape=in_shape, fit_data=fit_data)
    feat.name = name
    return feat.eval().requires_grad_(False)


def is_differentiable(spec: str) -> bool:
    """Whether the featurizer of `spec` passes gradients back to its input (`Featurizer.
    differentiable` of the class it builds), without building it: no weights, data or hub are
    touched (a checkpoint's spec is read from the file). Unknown names -> ValueError."""
    name, _, checkpoint = _resolve(spec)
    if checkpoint is not None:
        name = parse_spec(_read_checkpoint(checkpoint)[1]["spec"])[0]
    return _entry(name).differentiable


def _resolve(spec: str) -> tuple[str, dict[str, str], str | None]:
    """spec -> (name, options, featurizer checkpoint path or None); a teacher.pt path becomes
    cnn-teacher:path=... ."""
    if _looks_like_path(spec):
        if not cnn.is_teacher_checkpoint(spec):
            return "checkpoint", {"path": spec}, spec
        spec = f"cnn-teacher:path={spec}"  # a teacher.pt (featsel pretrain teacher)
    name, opts = parse_spec(spec)
    if name == "checkpoint":
        if set(opts) != {"path"}:
            raise ValueError(f"featurizer 'checkpoint' takes exactly one option, path; got {opts}")
        return name, opts, opts["path"]
    return name, opts, None


def _entry(name: str) -> FeaturizerEntry:
    if name not in FEATURIZERS:
        raise ValueError(
            f"unknown featurizer {name!r}; known: {sorted(FEATURIZERS) + ['checkpoint']} "
            "(or a path to a featurizer checkpoint .pt)"
        )
    return FEATURIZERS[name]


def _looks_like_path(spec: str) -> bool:
    if not isinstance(spec, str):
        return False
    head = spec.split(":", 1)[0]
    return (
        spec.endswith((".pt", ".pth"))
        and (os.sep in spec or Path(spec).exists())
        and (head not in FEATURIZERS and head != "checkpoint")
    )


# ---------------------------------------------------------------------------------- checkpoints
def save_featurizer(feat: Featurizer, path: str | os.PathLike) -> Path:
    """Write `feat` (spec, input shape, weights) to `path` atomically; `load_featurizer` reads it.

    The spec is saved with `pretrained=false` so that loading never calls a hub.
    """
    spec = feat.spec
    name, opts = parse_spec(spec)
    if "pretrained" in opts:
        opts["pretrained"] = "false"
    opts.pop("weights", None)
    spec = name + (":" + ",".join(f"{k}={v}" for k, v in opts.items()) if opts else "")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "spec": spec,
        "in_shape": list(getattr(feat, "in_shape", None) or []),
        "state_dict": {  # the generation space (a VAE decoder) is not part of the featurizer
            k: v.detach().cpu() for k, v in feat.state_dict().items() if not k.startswith("pixel_space.")
        },
    }
    return atomic_save(path, lambda tmp: torch.save(payload, tmp))


def load_featurizer(path: str | os.PathLike, *, space: Any | None = None) -> Featurizer:
    """Load a featurizer checkpoint written by `save_featurizer` (torch.load weights_only).

    space: the generation space of the inputs, for featurizers that decode through it (it is not
    saved with the weights)."""
    p, payload = _read_checkpoint(path)
    name, opts = parse_spec(payload["spec"])
    entry = FEATURIZERS.get(name)
    if entry is None:
        raise ValueError(f"{p}: unknown featurizer {name!r} in checkpoint")
    cfg = options_to_config(entry.config, opts, what=f"featurizer {name!r} in {p}")
    in_shape = tuple(payload["in_shape"]) or None
    feat = entry.factory(cfg, space=space, in_shape=in_shape, fit_data=None, state_dict=payload["state_dict"])
    feat.name = name
    missing, unexpected = feat.load_state_dict(payload["state_dict"], strict=False)
    bad = unexpected + [k for k in missing if not k.startswith("pixel_space.")]  # space: not saved
    if bad:
        raise ValueError(f"{p}: weights do not match featurizer {name!r} (keys {bad[:5]})")
    return feat.eval().requires_grad_(False)


def _read_checkpoint(path: str | os.PathLike) -> tuple[Path, dict]:
    """(path, payload) of a featurizer checkpoint; a missing or foreign file -> error."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"featurizer checkpoint {p} does not exist")
    payload = torch_load(p, "featurizer checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{p} is not a featsel featurizer checkpoint (expected a dict with "
            f"format={CHECKPOINT_FORMAT!r}, written by featsel.features.save_featurizer)"
        )
    return p, payload
