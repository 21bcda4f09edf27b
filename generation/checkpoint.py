"""Atomic training checkpoints, loaded with `torch.load(weights_only=True)`.

A checkpoint is one dict of tensors and plain Python values (no pickled objects):
`step`, `config` (plain dict), `model`, `ema`, `optimizer`, `scheduler`, `queues`, `loss_state`,
`rng` (torch CPU / CUDA generator states). `save_checkpoint` writes `path.tmp`, flushes and fsyncs
it, then `os.replace`s it over `path`, so a kill at any moment leaves either the previous or the
new checkpoint, never a truncated one.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from featsel.rundir import atomic_save

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write `state` to `path` atomically (tmp file in the same folder, fsync, os.replace)."""
    atomic_save(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by `save_checkpoint` (weights_only=True).

    Raises FileNotFoundError if missing, ValueError naming the file if it is corrupt, truncated
    or not a featsel training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as err:
        raise ValueError(
            f"checkpoint {str(path)!r} is corrupt or unreadable ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); delete it to restart, or restore "
            f"a copy"
        ) from err
    needed = {"step", "config", "model", "ema", "optimizer", "queues", "rng"}
    if not isinstance(state, dict) or not needed <= set(state):
        have = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"checkpoint {str(path)!r} is not a featsel training checkpoint "
                         f"(expected keys {sorted(needed)}, found {have})")
    return state


def rng_state() -> dict[str, Any]:
    """Global torch RNG states (CPU and every CUDA device)."""
    out: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["cpu"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
