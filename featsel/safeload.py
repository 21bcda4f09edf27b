"""Reading files users point featsel at: weights, checkpoints, states.

Every such read goes through `torch_load` / `safetensors_load`: `torch.load` always runs with
`weights_only=True` (no code runs from a pickle), and anything that makes the file unreadable --
a truncated zip, a malicious or foreign pickle, a text file, a folder -- becomes one
`ValueError` naming the file, what was expected and why it failed, instead of the library's
traceback. A missing file stays `FileNotFoundError` with the path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["torch_load", "safetensors_load"]


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:160]}" if text else type(err).__name__


def _check_file(path: str | os.PathLike, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{what} {str(p)!r} does not exist")
    if not p.is_file():
        raise ValueError(f"{what} {str(p)!r} is not a file")
    return p


def torch_load(path: str | os.PathLike, what: str, **kwargs: Any) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True, **kwargs)``; unreadable ->
    ValueError("<what> <path> is not a readable torch file (<why>)")."""
    import torch

    p = _check_file(path, what)
    kwargs.setdefault("map_location", "cpu")
    try:
        return torch.load(p, weights_only=True, **kwargs)
    except Exception as err:  # unpickling, zip, EOF and I/O errors all mean: not such a file
        raise ValueError(f"{what} {str(p)!r} is not a readable torch file of plain tensors "
                         f"({_reason(err)})") from None


def safetensors_load(path: str | os.PathLike, what: str) -> dict:
    """``safetensors.torch.load_file(path)``; unreadable -> ValueError naming the file."""
    from safetensors.torch import load_file

    p = _check_file(path, what)
    try:
        return load_file(str(p))
    except Exception as err:
        raise ValueError(f"{what} {str(p)!r} is not a readable safetensors file "
                         f"({_reason(err)})") from None
