"""On-disk cache of extracted features (and later Fréchet statistics).

An entry is keyed by the sha256 of its parts: data set, split, generation space fingerprint,
featurizer fingerprint (spec with all options + weights hash), a content hash of the input
tensor and any extraction setting that changes the numbers (e.g. bf16). A changed input, option
or weight gives a new key, never a stale hit. Each entry is two files under the cache root:
`<key>.pt` (the value, `torch.save`, read back with `weights_only=True`) and `<key>.json`
(its parts, size and creation time, for `featsel cache ls`), both written atomically
(temporary file in the same directory, then `os.replace`).

Root: `$FEATSEL_CACHE_DIR`, default `~/.cache/featsel/cache`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


def default_cache_dir() -> Path:
    """`$FEATSEL_CACHE_DIR` or `~/.cache/featsel/cache`."""
    env = os.environ.get("FEATSEL_CACHE_DIR")
    return Path(env).expanduser() if env else Path("~/.cache/featsel/cache").expanduser()


def tensor_sha256(x: Tensor, chunk_bytes: int = 1 << 26) -> str:
    """sha256 of a tensor's dtype, shape and bytes (streamed in chunks of `chunk_bytes`)."""
    t = x.detach().cpu().contiguous().reshape(-1)
    h = hashlib.sha256(f"{t.dtype}|{tuple(x.shape)}".encode())
    b = t.view(torch.uint8) if t.numel() else t
    step = max(1, chunk_bytes)
    for lo in range(0, b.numel(), step):
        h.update(b[lo : lo + step].numpy().tobytes())
    return h.hexdigest()


def _atomic_write_bytes(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@dataclass
class CacheEntry:
    """One cache entry as listed by `FeatureCache.ls`."""

    key: str
    parts: dict[str, Any]
    bytes: int
    created: float

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "bytes": self.bytes, "created": self.created, **self.parts}


class FeatureCache:
    """A directory of cached values keyed by `key(**parts)`.

    cache = FeatureCache()                     # root $FEATSEL_CACHE_DIR
    k = cache.key(dataset="mnist", split="test", featurizer=feat.fingerprint(), x=x_sha)
    value = cache.get(k)                        # None on a miss
    if value is None: cache.put(k, {"maps": maps}, parts)
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    @staticmethod
    def key(**parts: Any) -> str:
        """sha256 (hex, 40 chars) of the JSON of `parts` (sorted keys; non-JSON values by str)."""
        text = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    def _paths(self, key: str) -> tuple[Path, Path]:
        if not key or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"cache key must be a hex string, got {key!r}")
        return self.root / f"{key}.pt", self.root / f"{key}.json"

    def get(self, key: str) -> Any | None:
        """The stored value, or None if absent (or unreadable, which is then removed)."""
        data, meta = self._paths(key)
        if not data.is_file():
            return None
        try:
            return torch.load(data, map_location="cpu", weights_only=True)
        except Exception:
            for p in (data, meta):
                p.unlink(missing_ok=True)
            return None

    def put(self, key: str, value: Any, parts: dict[str, Any] | None = None) -> Path:
        """Store `value` (tensors, lists, dicts, numbers, strings) atomically under `key`."""
        data, meta = self._paths(key)
        self.root.mkdir(parents=True, exist_ok=True)
        _atomic_write_bytes(data, lambda p: torch.save(value, p))
        info = {"parts": parts or {}, "bytes": data.stat().st_size, "created": time.time()}
        _atomic_write_bytes(meta, lambda p: p.write_text(json.dumps(info, default=str, indent=1)))
        return data

    def __contains__(self, key: str) -> bool:
        return self._paths(key)[0].is_file()

    def ls(self) -> list[CacheEntry]:
        """All entries, newest first."""
        if not self.root.is_dir():
            return []
        out = []
        for data in self.root.glob("*.pt"):
            meta = data.with_suffix(".json")
            try:
                info = json.loads(meta.read_text())
            except (OSError, ValueError):
                info = {"parts": {}, "bytes": data.stat().st_size, "created": data.stat().st_mtime}
            out.append(
                CacheEntry(
                    data.stem,
                    info.get("parts", {}),
                    int(info.get("bytes", 0)),
                    float(info.get("created", 0.0)),
                )
            )
        return sorted(out, key=lambda e: -e.created)

    def clear(self, **match: Any) -> int:
        """Remove entries whose parts match all of `match` (all entries when empty); returns
        the number removed. `clear(dataset="mnist")` removes only mnist's features."""
        n = 0
        for e in self.ls():
            if all(str(e.parts.get(k)) == str(v) for k, v in match.items()):
                data, meta = self._paths(e.key)
                data.unlink(missing_ok=True)
                meta.unlink(missing_ok=True)
                n += 1
        return n
