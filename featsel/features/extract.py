"""Batched, device-agnostic feature extraction with chunking, optional bf16 and a cache.

`extract_features(feat, x)` runs the featurizer on chunks of `batch_size` samples on `device`
under `torch.no_grad()` (optionally inside bf16 autocast for the network only: the outputs are
cast back to float32 and no OT runs here), moves each chunk's maps to the CPU in float32 and
concatenates them. A tqdm bar shows progress when there is more than one chunk and stderr is a
terminal (or `progress=True`).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from featsel.cache import FeatureCache, tensor_sha256
from featsel.features.base import Featurizer


def _device_of(feat: Featurizer) -> torch.device:
    for t in list(feat.parameters()) + list(feat.buffers()):
        return t.device
    return torch.device("cpu")


def extract_features(
    featurizer: Featurizer,
    x: Tensor,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    bf16: bool = False,
    progress: bool | None = None,
    cache: FeatureCache | None = None,
    data_id: dict[str, Any] | None = None,
) -> list[Tensor]:
    """x: (N, *space.shape) generation-space samples -> list of CPU float32 maps, each
    (N, C, H, W) or (N, C), in `featurizer.map_names` order.

    device: where to run (default: the featurizer's device); the featurizer is moved there.
    bf16: autocast the network to bfloat16 (CUDA or CPU). cache: a `FeatureCache`; the key
    combines `data_id` (e.g. {"dataset": "mnist", "split": "test", "space": space.spec}), a
    content hash of x, the featurizer's fingerprint and bf16, so any change misses.
    """
    if not isinstance(x, Tensor) or x.ndim < 2 or len(x) == 0:
        raise ValueError(f"extract_features: x must be a non-empty (N, ...) tensor, got {x!r:.80}")
    if batch_size < 1:
        raise ValueError(f"extract_features: batch_size must be >= 1, got {batch_size}")
    key = parts = None
    if cache is not None:
        parts = {
            **(data_id or {}),
            "kind": "features",
            "featurizer": featurizer.spec,
            "featurizer_fingerprint": featurizer.fingerprint(),
            "x_sha256": tensor_sha256(x),
            "n": len(x),
            "bf16": bool(bf16),
        }
        key = cache.key(**parts)
        hit = cache.get(key)
        if hit is not None:
            return list(hit["maps"])
    dev = torch.device(device) if device is not None else _device_of(featurizer)
    featurizer = featurizer.to(dev).eval()
    n = len(x)
    outs: list[list[Tensor]] = []
    amp = torch.autocast(device_type=dev.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    n_chunks = (n + batch_size - 1) // batch_size
    disable = None if progress is None else not progress
    if progress is None and n_chunks <= 1:
        disable = True
    with (
        torch.no_grad(),
        tqdm(total=n, desc=f"features {featurizer.name}", unit="sample", disable=disable, leave=False) as bar,
    ):
        for lo in range(0, n, batch_size):
            chunk = x[lo : lo + batch_size].to(dev, non_blocking=True)
            with amp:
                maps = featurizer(chunk)
            outs.append([m.float().cpu() for m in maps])
            bar.update(len(chunk))
    maps = [torch.cat([o[i] for o in outs]) for i in range(len(outs[0]))]
    if cache is not None:
        cache.put(key, {"maps": maps, "names": list(featurizer.map_names)}, parts)
    return maps
