"""Shared pieces of the featurizer trainers: data in generation space, the run folder and its
resumable trainer state (atomic, `torch.load(weights_only=True)`), `PretrainRun` (what every
optimiser-step trainer does around its loss). The ViT student of mae / distill:
`generation.pretrain.student`.

Run folder layout (`out`): `state.pt` (trainer state: step, weights, optimiser; for `--resume`),
`featurizer.pt` (a featsel featurizer checkpoint: `create_featurizer(path)` loads it),
`config.json` (the trainer config).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from featsel.rundir import atomic_save, atomic_write_json

STATE_FORMAT = "featsel-pretrain-state-v1"


@dataclass
class RunConfig:
    """Options every pretraining run shares; each trainer's config extends it (one place for
    each shared default, overridden where a trainer differs)."""

    data: str = "mnist"
    split: str = "train"
    data_root: str | None = None
    n_max: int | None = None  # use the first n_max samples only
    out: str = "runs/pretrain"
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    save_every: int = 500
    seed: int = 0
    device: str = "cpu"


def load_space_samples(
    data: str, split: str, data_root: str | None, space: str, n_max: int | None = None
) -> tuple[Tensor, Tensor | None, Tensor, Any]:
    """Load a data set and encode it in a generation space.

    Returns x: (N, C, H, W) ambient images in [-1, 1], labels: (N,) int64 or None,
    u: (N, *space.shape) generation-space samples (computed once, no grad), the space.
    """
    from featsel.data import load_dataset
    from featsel.spaces import create_space

    ds = load_dataset(data, split=split, data_root=data_root)
    if ds.in_generation_space or ds.x.ndim != 4:
        raise ValueError(f"data {data!r}: featurizer pretraining needs images (N, C, H, W); "
                         f"got shape {tuple(ds.x.shape)}")
    x, labels = ds.x, ds.labels
    if n_max is not None:
        x = x[:n_max]
        labels = labels[:n_max] if labels is not None else None
    sp = create_space(space, fit_data=x)
    if len(sp.shape) != 3:
        raise ValueError(f"space {space!r}: the ViT trainers need spatial samples (C, H, W), "
                         f"got shape {sp.shape}")
    with torch.no_grad():
        u = torch.cat([sp.encode(c) for c in x.split(256)])
    return x, labels, u, sp


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save to a temporary file, then os.replace (featsel.rundir.atomic_save)."""
    atomic_save(path, lambda p: torch.save(obj, p))


def config_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass config as a JSON-able dict."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


def prepare_out(
    out: str | os.PathLike, cfg: Any, resume: bool, keys: tuple[str, ...], *,
    force: bool = False,
) -> tuple[Path, dict | None]:
    """Claim the run folder (the rule of `featsel.rundir`); with `resume`, load `state.pt`.
    A resume whose config differs from the run's (other than `MAY_CHANGE`) is refused with the
    differing keys; so is a non-empty folder that is not this kind of run, unless `force`.
    `keys` (architecture, data) are the fields a run written before markers existed is
    checked on. Returns (folder, state or None)."""
    from featsel.device import check_device
    from featsel.rundir import claim_dir

    if not out:
        raise ValueError("--out: a run folder is required (--out DIR)")
    if getattr(cfg, "steps", 1) < 1:
        raise ValueError(f"--steps: expected >= 1, got {cfg.steps}")
    check_device(getattr(cfg, "device", "cpu"))
    d = Path(out).expanduser()
    state_path = d / "state.pt"

    def recorded(folder: Path) -> dict | None:  # pre-marker runs: their state.pt's config
        try:
            st = load_state_file(state_path)
        except (ValueError, FileNotFoundError):
            return None
        new = config_dict(cfg)
        return {k: (st["config"].get(k) if k in keys else v) for k, v in new.items()}

    claim_dir(d, f"pretrain {type(cfg).__name__}", config_dict(cfg), force=force, resume=resume,
              may_change=MAY_CHANGE, recorded=recorded)
    state = load_state_file(state_path) if resume and state_path.is_file() else None
    atomic_write_json(d / "config.json", config_dict(cfg))
    return d, state


# config fields a resumed pretraining may change (how long, where, how it reports)
MAY_CHANGE = ("steps", "epochs", "out", "device", "progress", "log_every", "save_every")


def load_state_file(path: Path) -> dict:
    """`state.pt` of a pretraining run, checked (one line naming the file when it is not one)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # unpickling, zip and I/O errors all mean: not a state file
        raise ValueError(f"{path}: not a readable featsel pretraining state "
                         f"({type(err).__name__}: {str(err).splitlines()[0][:120]})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not a featsel pretraining state ({STATE_FORMAT})")
    return state


def write_state(d: Path, cfg: Any, step: int, modules: dict[str, Any], extra: dict | None = None) -> None:
    """Write `state.pt`: {format, config, step, <name>: state_dict for each module/optimiser}."""
    payload = {"format": STATE_FORMAT, "config": config_dict(cfg), "step": int(step)}
    payload.update({k: m.state_dict() for k, m in modules.items()})
    payload.update(extra or {})
    save_atomic(payload, d / "state.pt")


def read_state(state: dict | None, modules: dict[str, Any], gen: torch.Generator) -> int:
    """The inverse of `write_state`: load each module/optimiser and the RNG; return the step to
    continue from (0 for a new run, `state` None)."""
    if state is None:
        return 0
    for k, m in modules.items():
        m.load_state_dict(state[k])
    gen.set_state(state["rng"])
    return int(state["step"])


def optimizer_step(
    loss: torch.Tensor, opt: torch.optim.Optimizer, losses: list, d: Path, cfg: Any, step: int,
    total: int, modules: dict[str, Any], gen: torch.Generator,
) -> None:
    """The tail every pretraining step shares: one optimiser step on `loss`, its value kept in
    `losses`, and `state.pt` written every `cfg.save_every` steps before the last (the caller
    writes the final state after its loop, also when a resumed run has no step left)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    losses.append(loss.detach())
    done = step + 1
    if done % cfg.save_every == 0 and done < total:
        write_state(d, cfg, done, modules, {"rng": gen.get_state()})


def check_positive(**kw: float) -> None:
    """ValueError for any argument <= 0."""
    for k, v in kw.items():
        if v is None or v <= 0:
            raise ValueError(f"{k} must be > 0, got {v}")


class PretrainRun:
    """What every optimiser-step trainer does around its loss: claim the run folder and load the
    state a resume continues from (`prepare_out`), seed torch with ``cfg.seed``, keep the
    generator of the batches, take one optimiser step per loss (`optimizer_step`: state.pt every
    ``save_every`` steps) and write the final state.

        run = PretrainRun(cfg, resume, ARCH_KEYS, force=force)   # run.dir: the folder
        ...build the modules...
        start = run.resume({"model": net, "optimizer": opt})
        for step in range(start, total):
            run.step(loss_of(batch drawn with run.gen), opt, step, total)
        run.save(total)                                           # run.loss_history()
    """

    def __init__(self, cfg: Any, resume: bool, keys: tuple[str, ...], *, force: bool = False):
        self.cfg = cfg
        self.dir, self._saved = prepare_out(cfg.out, cfg, resume, keys, force=force)
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.losses: list[Tensor] = []
        self.modules: dict[str, Any] = {}

    def resume(self, modules: dict[str, Any]) -> int:
        """Load the saved state into ``modules`` (name: module or optimiser, all saved from
        now on) and the batch generator; the step to continue from (0 for a new run)."""
        self.modules = modules
        return read_state(self._saved, modules, self.gen)

    def step(self, loss: Tensor, opt: torch.optim.Optimizer, step: int, total: int) -> None:
        """One optimiser step on ``loss`` (``step`` of ``total``), saved on schedule."""
        optimizer_step(loss, opt, self.losses, self.dir, self.cfg, step, total, self.modules,
                       self.gen)

    def save(self, step: int) -> None:
        """Write ``state.pt`` at ``step`` (the end of the run)."""
        write_state(self.dir, self.cfg, step, self.modules, {"rng": self.gen.get_state()})

    def loss_history(self) -> list[float]:
        """The loss of every step of this call."""
        return torch.stack(self.losses).cpu().tolist() if self.losses else []
