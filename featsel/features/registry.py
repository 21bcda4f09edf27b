"""Named featurizers, created from spec strings.

Spec syntax: ``name[:key=value,key=value,...]``. Values are converted to the type of the
option's dataclass field (int, float, bool `true/false`, str, or lists joined with ``+``:
``facets=keys+pooled``); ``none`` clears an optional value. A spec that is a path to a featsel
featurizer checkpoint (``*.pt``, written by `save_featurizer`) loads it, as does
``checkpoint:path=FILE``; a CNN teacher's ``teacher.pt`` loads as ``cnn-teacher:path=FILE``.

    create_featurizer("pca:dim=32", fit_data=u_train)        # u_train: (N, *space.shape)
    create_featurizer("random-vit:depth=4,tap_every=2", space=space)
    create_featurizer("vit:model=vit_small_patch16_224.augreg_in21k,input=pixels", space=space)
    create_featurizer("runs/featurizer.pt")
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from featsel.features.base import Featurizer
from featsel.rundir import atomic_save
from featsel.safeload import torch_load

CHECKPOINT_FORMAT = "featsel-featurizer-v1"


# ---------------------------------------------------------------------------------- spec parsing
def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """'name:k=v,k2=v2' -> ('name', {'k': 'v', 'k2': 'v2'}). Bad syntax -> ValueError."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"spec must be a non-empty string like 'name:key=value', got {spec!r}")
    name, _, rest = spec.strip().partition(":")
    opts: dict[str, str] = {}
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ValueError(
                    f"spec {spec!r}: option {item!r} is not key=value (options are separated by ',')"
                )
            if key.strip() in opts:
                raise ValueError(f"spec {spec!r}: option {key.strip()!r} given twice")
            opts[key.strip()] = value.strip()
    return name.strip(), opts


def _convert(value: Any, tp: Any, key: str, what: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if isinstance(value, str) and value.lower() in ("none", "null", ""):
            return None
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], key, what)
    if origin in (tuple, list):
        items = value.split("+") if isinstance(value, str) else list(value)
        return tuple(_convert(v, args[0], key, what) for v in items if v != "")
    if not isinstance(value, str):
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, tp):
            return value
        raise ValueError(f"{what}: option {key} must be {tp.__name__}, got {value!r}")
    try:
        if tp is bool:
            low = value.lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return low in ("true", "1", "yes")
        return tp(value)
    except ValueError:
        raise ValueError(f"{what}: option {key} must be {tp.__name__}, got {value!r}") from None


def options_to_config(cls: type, opts: dict[str, Any], *, what: str) -> Any:
    """Build dataclass `cls` from string (or typed) options; unknown keys -> ValueError."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(opts) - set(names))
    if unknown:
        raise ValueError(f"{what}: unknown option(s) {unknown}; valid options: {names}")
    return cls(**{k: _convert(v, hints[k], k, what) for k, v in opts.items()})


# ------------------------------------------------------------------------------------- registry
Factory = Callable[..., Featurizer]


@dataclass
class FeaturizerEntry:
    """A registered featurizer: its config dataclass, factory and one-line description."""

    name: str
    config: type
    factory: Factory
    description: str
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)  # per-name overrides


_REGISTRY: dict[str, FeaturizerEntry] = {}


def register(
    name: str, config: type, description: str, defaults: dict[str, Any] | None = None
) -> Callable[[Factory], Factory]:
    """Decorator: `factory(config, *, space, in_shape, fit_data) -> Featurizer`."""

    def wrap(factory: Factory) -> Factory:
        _REGISTRY[name] = FeaturizerEntry(name, config, factory, description, defaults or {})
        return factory

    return wrap


def _ensure_registered() -> None:
    # The featurizer modules register themselves on import.
    from featsel.features import cnn, controls, inception, mlpvae, scvi_encoder, simple, vit  # noqa: F401


def list_featurizers() -> list[dict[str, Any]]:
    """[{name, description, options: {option: default}}] for every registered featurizer."""
    _ensure_registered()
    out = []
    order = ["identity", "pca", "random-projection", "random-vit", "vit", "dinov2",
             "inception", "vae-latent", "ambient", "mlp-vae", "scvi-encoder", "noise", "constant"]
    entries = sorted(
        _REGISTRY.values(), key=lambda e: (order.index(e.name) if e.name in order else len(order), e.name)
    )
    for e in entries:
        cfg = e.config(
            **{k: _convert(v, typing.get_type_hints(e.config)[k], k, e.name) for k, v in e.defaults.items()}
        )
        opts = {f.name: _jsonable(getattr(cfg, f.name)) for f in fields(cfg)}
        out.append({"name": e.name, "description": e.description, "options": opts})
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
    _ensure_registered()
    if _looks_like_path(spec):
        from featsel.features.cnn import is_teacher_checkpoint

        if not is_teacher_checkpoint(spec):
            return load_featurizer(spec, space=space)
        spec = f"cnn-teacher:path={spec}"  # a teacher.pt (featsel pretrain teacher)
    name, opts = parse_spec(spec)
    if name == "checkpoint":
        if set(opts) != {"path"}:
            raise ValueError(f"featurizer 'checkpoint' takes exactly one option, path; got {opts}")
        return load_featurizer(opts["path"], space=space)
    _ensure_registered()
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown featurizer {name!r}; known: {sorted(_REGISTRY) + ['checkpoint']} "
            "(or a path to a featurizer checkpoint .pt)"
        )
    entry = _REGISTRY[name]
    cfg = options_to_config(entry.config, {**entry.defaults, **opts}, what=f"featurizer {name!r}")
    if in_shape is None:
        if space is not None:
            in_shape = tuple(space.shape)
        elif fit_data is not None:
            in_shape = tuple(fit_data.shape[1:])
    feat = entry.factory(cfg, space=space, in_shape=in_shape, fit_data=fit_data)
    feat.name = name
    return feat.eval().requires_grad_(False)


def _looks_like_path(spec: str) -> bool:
    if not isinstance(spec, str):
        return False
    head = spec.split(":", 1)[0]
    return (
        spec.endswith((".pt", ".pth"))
        and (os.sep in spec or Path(spec).exists())
        and (head not in _REGISTRY and head != "checkpoint")
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
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"featurizer checkpoint {p} does not exist")
    payload = torch_load(p, "featurizer checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{p} is not a featsel featurizer checkpoint (expected a dict with "
            f"format={CHECKPOINT_FORMAT!r}, written by featsel.features.save_featurizer)"
        )
    name, opts = parse_spec(payload["spec"])
    _ensure_registered()
    entry = _REGISTRY.get(name)
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
