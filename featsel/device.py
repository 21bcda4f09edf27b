"""The one check of a `--device` argument, done before any work.

An invalid device used to pass unnoticed whenever nothing reached it (features served from the
cache), so the same command failed or not depending on the cache's state.
"""

from __future__ import annotations

import torch

__all__ = ["check_device"]


def check_device(name: str | torch.device, flag: str = "--device") -> torch.device:
    """``name`` as a ``torch.device`` ("auto": the GPU when there is one, else the CPU);
    ValueError naming ``flag`` when it is not a device or not present on this machine."""
    if isinstance(name, torch.device):
        dev = name
    else:
        if str(name) == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            dev = torch.device(str(name))
        except (RuntimeError, ValueError):
            raise ValueError(f"{flag}: expected cpu, cuda, cuda:N, mps or auto, got {name!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{flag}: {str(name)!r} requested but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{flag}: {str(name)!r} requested but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{flag}: 'mps' requested but it is not available here")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{flag}: expected cpu, cuda, cuda:N, mps or auto, got {str(name)!r}")
    return dev
