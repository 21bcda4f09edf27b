"""On-disk cache of extracted features (and later Fréchet statistics).

An entry is keyed by the sha256 of its parts: data set, split, generation space fingerprint,
featurizer fingerprint (spec with all options + weights hash), a content hash of the input
tensor and any extraction setting that changes the numbers (e.g. bf16). A changed input, option
or weight gives a new key, never a stale hit. Each entry is two files under the cache root:
`<key>.pt` (the value, `torch.save`, read back with `weights_only=True`) and `<key>.json`
(its parts, size and creation time, for `featsel cache ls`), both written atomically
(temporary file in the same directory, then `os.replace`).

The entry's own key is stored inside its value file and checked on every read: a file that
was swapped or copied under another key is a miss (removed with a warning), never another
featurizer's features.

Size: `$FEATSEL_CACHE_MAX` (bytes, or with a K/M/G/T suffix; default
`featsel.defaults.CACHE_MAX`) caps the total; after each write the least recently used entries
(by last read or write) are removed until the cache fits. `0` or `none` means no cap.

Root: `$FEATSEL_CACHE_DIR`, default `~/.cache/featsel/cache`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from featsel.rundir import atomic_save, atomic_write_json


def default_cache_dir() -> Path:
    """`$FEATSEL_CACHE_DIR` or `~/.cache/featsel/cache`."""
    env = os.environ.get("FEATSEL_CACHE_DIR")
    return Path(env).expanduser() if env else Path("~/.cache/featsel/cache").expanduser()


def parse_size(text: str, what: str = "FEATSEL_CACHE_MAX") -> int | None:
    """'500M', '10G', '123' -> bytes; '0' / 'none' / '' -> None (no cap)."""
    t = str(text).strip().upper().removesuffix("B")
    if t in ("", "0", "NONE"):
        return None
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    try:
        v = float(t[:-1] if mult > 1 else t) * mult
    except ValueError:
        raise ValueError(f"{what}: expected a size such as 500M or 10G, got {text!r}") from None
    if not v > 0:
        raise ValueError(f"{what}: expected a positive size, got {text!r}")
    return int(v)


def default_cache_max() -> int | None:
    """`$FEATSEL_CACHE_MAX` or `featsel.defaults.CACHE_MAX`, in bytes (None: no cap)."""
    from featsel.defaults import CACHE_MAX

    return parse_size(os.environ.get("FEATSEL_CACHE_MAX", CACHE_MAX))


def tensor_sha256(x: Tensor, chunk_bytes: int = 1 << 26) -> str:
    """sha256 of a tensor's dtype, shape and bytes (streamed in chunks of `chunk_bytes`)."""
    t = x.detach().cpu().contiguous().reshape(-1)
    h = hashlib.sha256(f"{t.dtype}|{tuple(x.shape)}".encode())
    b = t.view(torch.uint8) if t.numel() else t
    step = max(1, chunk_bytes)
    for lo in range(0, b.numel(), step):
        h.update(b[lo : lo + step].numpy().tobytes())
    return h.hexdigest()


# the entry's own key, stored beside its value: a file served under another key is detected
_KEY_FIELD = "featsel_cache_key"


@dataclass
class CacheEntry:
    """One cache entry as listed by `FeatureCache.ls`."""

    key: str
    parts: dict[str, Any]
    bytes: int
    created: float
    used: float = 0.0  # last read or write (the LRU order)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "bytes": self.bytes, "created": self.created, "used": self.used,
                **self.parts}


class FeatureCache:
    """A directory of cached values keyed by `key(**parts)`.

    cache = FeatureCache()                     # root $FEATSEL_CACHE_DIR
    k = cache.key(dataset="mnist", split="test", featurizer=feat.fingerprint(), x=x_sha)
    value = cache.get(k)                        # None on a miss
    if value is None: cache.put(k, {"maps": maps}, parts)
    """

    def __init__(self, root: str | os.PathLike | None = None, max_bytes: int | None | str = "env"):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.max_bytes = default_cache_max() if max_bytes == "env" else max_bytes

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
        """The stored value, or None if absent, unreadable or stored under another key (the
        file is then removed)."""
        data, meta = self._paths(key)
        if not data.is_file():
            return None
        try:
            payload = torch.load(data, map_location="cpu", weights_only=True)
        except Exception:
            payload = None
        if not (isinstance(payload, dict) and payload.get(_KEY_FIELD) == key):
            if isinstance(payload, dict) and _KEY_FIELD in payload:  # not an old-format entry
                warnings.warn(f"feature cache: {data} holds another entry than its name says "
                              "(copied or swapped file); removed, the features are recomputed",
                              stacklevel=2)
            for p in (data, meta):
                p.unlink(missing_ok=True)
            return None
        now = time.time()
        os.utime(data, (now, now))  # last use: the LRU order of the size cap
        return payload["value"]

    def put(self, key: str, value: Any, parts: dict[str, Any] | None = None) -> Path:
        """Store `value` (tensors, lists, dicts, numbers, strings) atomically under `key`, then
        apply the size cap (least recently used entries out, never this one)."""
        data, meta = self._paths(key)
        self.root.mkdir(parents=True, exist_ok=True)
        payload = {_KEY_FIELD: key, "value": value}
        atomic_save(data, lambda p: torch.save(payload, p))
        info = {"parts": parts or {}, "bytes": data.stat().st_size, "created": time.time()}
        atomic_write_json(meta, info)
        self.prune(keep=key)
        return data

    def prune(self, max_bytes: int | None = None, keep: str | None = None) -> int:
        """Remove least recently used entries until the total is <= `max_bytes` (default the
        cache's cap); returns the number removed."""
        cap = self.max_bytes if max_bytes is None else max_bytes
        if cap is None:
            return 0
        entries = sorted(self.ls(), key=lambda e: e.used)  # oldest use first
        total, n = sum(e.bytes for e in entries), 0
        for e in entries:
            if total <= cap:
                break
            if e.key == keep:
                continue
            for p in self._paths(e.key):
                p.unlink(missing_ok=True)
            total -= e.bytes
            n += 1
        return n

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
            try:
                used = data.stat().st_mtime
            except OSError:  # removed meanwhile (another process pruned it)
                continue
            out.append(
                CacheEntry(
                    data.stem,
                    info.get("parts", {}),
                    int(info.get("bytes", 0)),
                    float(info.get("created", 0.0)),
                    used,
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
