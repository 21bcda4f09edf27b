"""Accept features as one tensor or as named blocks (``featsel.features.Block`` or tensors).

A block is returned as a tensor ``(n, L, D)``: ``L`` independent OT sub-problems in ``R^D``
(``L = H*W`` for a per-location block, 1 for a global one). ``(n, D)`` becomes ``(n, 1, D)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor


def block_tensor(b, name: str) -> Tensor:
    """One block (``Block`` with ``.x``, tensor or array) -> float tensor ``(n, L, D)``."""
    x = getattr(b, "x", b)
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise ValueError(f"{name}: expected a tensor of shape (num_samples, dim) or "
                         f"(num_samples, L, dim), got {type(x).__name__}")
    if x.ndim == 2:
        x = x.unsqueeze(1)
    if x.ndim != 3:
        raise ValueError(f"{name}: expected shape (num_samples, dim) or (num_samples, L, dim), "
                         f"got {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.float()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: features contain NaN or infinite values")
    return x.detach()


def as_blocks(features, name: str = "features") -> dict[str, Tensor]:
    """Tensor ``(n, D)``/``(n, L, D)`` or mapping of blocks -> ``{block name: (n, L, D)}``,
    all with the same ``n``."""
    if isinstance(features, Mapping):
        if not features:
            raise ValueError(f"{name}: expected at least one block, got an empty mapping")
        out = {str(k): block_tensor(v, f"{name}[{k!r}]") for k, v in features.items()}
    else:
        out = {"features": block_tensor(features, name)}
    sizes = {k: v.shape[0] for k, v in out.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"{name}: blocks have different numbers of samples: {sizes}")
    return out


def as_labels(labels, n: int, name: str = "labels") -> np.ndarray:
    """Labels ``(n,)`` (any hashable values) -> numpy array; checks the length."""
    if isinstance(labels, Tensor):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n},), got {tuple(arr.shape)}")
    return arr


def class_groups(lab: np.ndarray | None, n_pool: int, need: int, unconditional: bool
                 ) -> tuple[list[str], list[np.ndarray], dict[str, int]]:
    """Class pools (indices into the pool) with at least ``need`` samples, plus the whole pool
    "all" without labels or when ``unconditional``, and the classes left out (name -> size).
    ``need`` is 2n for draws of n sources and n targets; too small a pool is one error naming n."""
    names, groups, skipped = [], [], {}
    if lab is not None:
        for c in np.unique(lab):
            g = np.flatnonzero(lab == c)
            if g.size >= need:
                names.append(str(c))
                groups.append(g)
            else:
                skipped[str(c)] = int(g.size)
    if lab is None or unconditional:
        if n_pool < need:
            raise ValueError(f"n: too few samples in the pool ({n_pool}) for n={need // 2} "
                             f"sources + n targets; lower n")
        names.append("all")
        groups.append(np.arange(n_pool))
    if lab is not None and len(names) == (1 if unconditional else 0):
        raise ValueError(f"n: every class has fewer than {need} samples (2n for n={need // 2}); "
                         f"lower n")
    return names, groups, skipped
