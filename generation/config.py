"""`TrainConfig`: the one configuration of `featsel train` / `sample` / `evaluate`.

Every default lives here (loss options in `generation.loss.LossConfig`, nested as `loss`).
YAML files (the top-level `configs/` folder) load into it; command-line overrides are
`key=value` strings with YAML values and dotted keys for the nested loss options:

    cfg = load_config("configs/mnist_tiny.yaml", ["steps=200", "loss.iterations=converged"])

Unknown keys and wrong types raise `ValueError` naming the key and what was expected.
Paper values (the official code's `experiments/main.yaml`) are noted beside each default that
the CPU-sized default departs from; `configs/imagenet_dit_b2.yaml` holds the paper's run.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from featsel.rundir import atomic_write
from generation.loss import LossConfig

__all__ = ["TrainConfig", "load_config", "save_config", "config_from_dict", "apply_overrides"]


@dataclass
class TrainConfig:
    """Sinkhorn-CFG generator training configuration (see module docstring)."""

    # what to train on
    data: str = "digits"  # data manifest name or path (featsel.data.load_dataset)
    data_split: str = "train"  # manifest split to train on
    space: str = ""  # generation space spec; "" = the manifest's first
    featurizer: str = "identity"  # training featurizer (featsel.features.create_featurizer)
    out: str = "runs/default"  # run directory: config.yaml, checkpoint.pt, metrics.jsonl
    seed: int = 0
    steps: int = 1000  # paper: 400_000
    # generator
    model: str = "tiny"  # generation.models preset; paper: "B/2"
    model_args: dict = field(default_factory=dict)  # constructor overrides (hidden, depth, ...)
    # batch composition (per class; classes per step are shared out across DDP ranks)
    n_classes: int = 0  # classes per step; 0 = all classes; paper: 128
    n_gen: int = 64  # generated samples per class
    n_pos: int = 128  # class-real samples per class (from the class queue)
    n_unc: int = 32  # unconditional real samples per class (from the global queue)
    queue_size: int = 128  # per-class queue capacity
    uncond_queue_size: int = 1000
    queue_push: int = 64  # fresh real samples pushed into the queues every step
    # CFG: alpha ~ alpha^-power on [alpha_min, alpha_max], w = alpha - 1
    alpha_min: float = 1.0
    alpha_max: float = 4.0
    alpha_power: float = 5.0
    # optimiser
    lr: float = 4e-4
    weight_decay: float = 0.0
    betas: tuple[float, ...] = (0.9, 0.95)
    warmup_steps: int = 100  # paper: 10_000
    lr_schedule: str = "linear"  # "linear" (warmup then linear decay to 0) | "constant"
    grad_clip: float = 2.0
    ema_decays: tuple[float, ...] = (0.999, 0.9995, 0.9998, 0.9999)
    # loss (Sinkhorn-CFG), nested
    loss: LossConfig = field(default_factory=LossConfig)
    # bookkeeping
    ckpt_every: int = 500
    log_every: int = 10
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:1"
    amp: bool = True  # bf16 autocast for the networks on GPU (never for OT)
    progress: bool = True
    # evaluation (featsel evaluate)
    eval_n_per_class: int = 100
    eval_alphas: tuple[float, ...] = (1.0, 1.5, 2.0)
    eval_decay: float = 0.0  # EMA decay used by sample/evaluate; 0 = first of ema_decays

    def validate(self) -> TrainConfig:
        """Raise ValueError naming the first inconsistent field; return self."""
        positive = ["steps", "n_gen", "n_pos", "queue_size", "uncond_queue_size", "ckpt_every",
                    "log_every", "eval_n_per_class"]
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ["n_classes", "n_unc", "queue_push", "warmup_steps", "weight_decay"]:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.n_unc > self.uncond_queue_size:
            raise ValueError(f"n_unc ({self.n_unc}) must be <= uncond_queue_size "
                             f"({self.uncond_queue_size})")
        if not 1.0 <= self.alpha_min <= self.alpha_max:
            raise ValueError(f"need 1 <= alpha_min <= alpha_max, got {self.alpha_min}, "
                             f"{self.alpha_max}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.lr_schedule not in ("linear", "constant"):
            raise ValueError(f"lr_schedule must be 'linear' or 'constant', got {self.lr_schedule!r}")
        if self.grad_clip < 0:
            raise ValueError(f"grad_clip must be >= 0 (0 = off), got {self.grad_clip}")
        if not self.ema_decays or not all(0 < d < 1 for d in self.ema_decays):
            raise ValueError(f"ema_decays must be numbers in (0, 1), got {self.ema_decays}")
        if self.eval_decay and self.eval_decay not in self.ema_decays:
            raise ValueError(f"eval_decay {self.eval_decay} is not one of ema_decays "
                             f"{self.ema_decays}")
        if not self.eval_alphas or min(self.eval_alphas) < 1:
            raise ValueError(f"eval_alphas must be numbers >= 1, got {self.eval_alphas}")
        self.loss.validate()
        return self

    def to_dict(self) -> dict:
        """Plain dict (lists for tuples) for YAML / checkpoints."""
        return _plain(asdict(self))


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# the plain annotations: the types a value may have, and the words of the error
_PLAIN: dict[type, tuple[tuple[type, ...], str]] = {
    bool: ((bool,), "true/false"), int: ((int,), "an integer"), float: ((int, float), "a number"),
    str: ((str,), "a string"), dict: ((dict,), "a mapping")}


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check/convert `value` to annotation `tp` (str, int, float, bool, tuple[...], dict)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"config key {key!r} expects a mapping, got {value!r}")
        return config_from_dict(value, tp, prefix=f"{key}.")
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(key, value, args[0])
    if origin is tuple:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, str) and "+" in value:  # a+b: the list syntax of featurizer specs
            value = [yaml.safe_load(v) for v in value.split("+") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config key {key!r} expects a list, got {value!r}")
        (elem,) = typing.get_args(tp)[:1]
        return tuple(_coerce(key, v, elem) for v in value)
    if origin is dict:
        tp = dict
    if tp in _PLAIN:
        kinds, word = _PLAIN[tp]
        if tp is float and isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        # bool is an int in Python: true/false is refused where a number is expected
        if not isinstance(value, kinds) or (isinstance(value, bool) and tp is not bool):
            raise ValueError(f"config key {key!r} expects {word}, got {value!r}")
        return tp(value)
    raise TypeError(f"unsupported config annotation {tp!r} for {key!r}")


def config_from_dict(d: dict, cls: type = TrainConfig, prefix: str = "") -> Any:
    """Build dataclass `cls` from a (possibly partial) dict; unknown keys -> ValueError."""
    if not isinstance(d, dict):
        raise ValueError(f"config must be a mapping, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise ValueError(f"unknown config key(s) {[prefix + k for k in unknown]}; "
                         f"valid keys: {[prefix + n for n in names]}")
    kwargs = {k: _coerce(prefix + k, v, hints[k]) for k, v in d.items()}
    return cls(**kwargs)


def apply_overrides(cfg_dict: dict, overrides: list[str] | dict | None) -> dict:
    """Apply `["key=value", "loss.taus=[0.05]"]` (YAML values; lists as `[a, b]` or `a+b`, the
    same two forms as `featsel pretrain --set` and featurizer specs) or a {key: value} dict."""
    if not overrides:
        return cfg_dict
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = []
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override must look like key=value, got {item!r}")
            k, v = item.split("=", 1)
            try:
                items.append((k.strip(), yaml.safe_load(v)))
            except yaml.YAMLError as err:
                where = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise ValueError(f"--set {item!r}: the value is not valid YAML ({where})") from None
    out = dict(cfg_dict)
    for key, value in items:
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            node[p] = dict(node.get(p) or {})
            node = node[p]
        node[parts[-1]] = value
    return out


# `featsel train` without --config on a machine without a GPU starts from these (the defaults
# above are sized for a GPU): a random-vit step on 10 MNIST classes took 260 s at the defaults
# on 2 cores (measured), a quarter of the samples per class a quarter of that
CPU_PRESET = {"n_gen": 16, "n_pos": 32, "n_unc": 8, "queue_size": 64, "uncond_queue_size": 256,
              "queue_push": 32}
# ... and at most this many classes per step (as the paper takes 128 of ImageNet's 1000): the
# first random-vit step on MNIST went from 45 s to 21 s wall on 2 cores (measured); the
# step's memory, whose first touch is most of the system time, shrinks the same way
CPU_PRESET_CLASSES = 4


def cpu_preset_classes(num_classes: int, world: int = 1) -> int:
    """Classes per step of the CPU preset: at most CPU_PRESET_CLASSES, a multiple of the
    number of ranks; 0 (all) when the data has no more classes than that."""
    if num_classes <= CPU_PRESET_CLASSES:
        return 0
    return max(world, CPU_PRESET_CLASSES // world * world)


def load_config(path: str | os.PathLike | None = None,
                overrides: list[str] | dict | None = None, *,
                typed: dict | None = None) -> TrainConfig:
    """YAML file (or defaults when None) + overrides -> validated TrainConfig.

    overrides: ``--set`` strings (YAML values) or a dict; typed: values taken as they are (the
    CLI's typed flags: ``--out "runs/a #1"`` stays that string, ``--data no`` the string "no"),
    applied last."""
    d: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file {str(p)!r} does not exist")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as err:
            where = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ValueError(f"config file {str(p)!r} is not valid YAML ({where})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"config file {str(p)!r} must hold a mapping, got "
                             f"{type(loaded).__name__}")
        d = loaded or {}
    return config_from_dict(apply_overrides(apply_overrides(d, overrides), typed)).validate()


def save_config(cfg: TrainConfig, path: str | os.PathLike) -> None:
    """Write `cfg` as YAML atomically (tmp file then os.replace)."""
    atomic_write(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
