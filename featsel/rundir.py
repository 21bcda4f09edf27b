"""Folders and files that commands write: one rule for every output folder, one atomic write.

**The rule.** Every command that writes a folder (`score`, `train`, `pretrain`, `validate`)
claims it with `claim_dir` before any work:

- a missing or empty folder is created and gets a marker file, `.featsel-run.json`, holding the
  command and its settings;
- a non-empty folder whose marker says it is this command's run with the same settings is
  continued with `--resume` (settings that may change, e.g. `steps`, are named per command);
  with other settings it is refused with one line that lists the differing keys;
- any other non-empty folder is refused with one line; `--force` replaces it (the only case
  in which featsel deletes what it did not write).

`publish_dir` is the other half for commands that compute first and write at the end
(`score`): the finished folder is built beside the target and renamed onto it in one step,
which fails when the target appeared meanwhile (two runs on one `--out`), so a folder never
ends up with files from two runs.

`atomic_write` is the one way files are written: a temporary file in the same folder, flushed
and fsynced, then `os.replace`, so a kill at any moment leaves the old file or the new one.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

MARKER = ".featsel-run.json"

__all__ = ["MARKER", "atomic_write", "atomic_write_json", "atomic_save", "read_marker",
           "write_marker", "guard_replace", "claim_dir", "differing_settings", "publish_dir"]


# --- atomic files ---------------------------------------------------------------------------
def atomic_save(path: str | os.PathLike, write: Callable[[Path], Any], *,
                suffix: str = ".tmp") -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, fsync it, then ``os.replace``
    it onto ``path``. The temporary file is removed if ``write`` fails (nothing half-written).
    suffix: the temporary name's ending, for writers that read the format from it (``.png``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:  # on disk before the rename: a crash leaves old or new
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are meant to be read by others
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically (fsync before the rename)."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    return atomic_save(path, lambda tmp: tmp.write_bytes(raw))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> Path:
    """``json.dumps(obj)`` written atomically (non-JSON values by ``str``)."""
    return atomic_write(path, json.dumps(obj, indent=indent, default=str))


# --- the folder rule --------------------------------------------------------------------------
def read_marker(folder: str | os.PathLike) -> dict | None:
    """The marker of ``folder`` ({"command", "settings"}), or None when absent or unreadable."""
    p = Path(folder) / MARKER
    try:
        m = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and isinstance(m.get("command"), str) else None


def write_marker(folder: str | os.PathLike, command: str, settings: dict) -> None:
    atomic_write_json(Path(folder) / MARKER, {"command": command, "settings": settings})


def _norm(v: Any) -> Any:
    # YAML/JSON round trips turn tuples into lists; compare what was meant
    if isinstance(v, tuple | list):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _norm(x) for k, x in v.items()}
    return v


def differing_settings(old: dict, new: dict, may_change: Iterable[str] = ()) -> list[str]:
    """Keys (dotted for nested dicts) whose values differ between ``old`` and ``new``, except
    ``may_change`` (top-level names)."""
    skip = set(may_change)
    out: list[str] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=str):
                if not prefix and k in skip:
                    continue
                walk(a.get(k), b.get(k), f"{prefix}{k}.")
        elif _norm(a) != _norm(b):
            out.append(prefix[:-1])

    walk(old, new, "")
    return out


def _describe(old: dict, new: dict, keys: list[str], limit: int = 4) -> str:
    def get(d: dict, key: str) -> Any:
        for part in key.split("."):
            d = d.get(part) if isinstance(d, dict) else None
        return d

    shown = [f"{k} {get(old, k)!r} -> {get(new, k)!r}" for k in keys[:limit]]
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(shown) + more


def _clear(folder: Path) -> None:
    for p in folder.iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def guard_replace(folder: Path, flag: str = "--out") -> None:
    """Refuse to replace the current folder, one above it, or the home folder: `--force` on
    `--out .` would delete the user's work (and its own working directory)."""
    here = Path.cwd().resolve()
    if folder.resolve() in (here, *here.parents, Path.home().resolve()):
        raise ValueError(f"{flag}: refusing to replace {str(folder)!r} (the current folder, one "
                         "above it, or the home folder); choose a new folder")


def claim_dir(
    folder: str | os.PathLike,
    command: str,
    settings: dict,
    *,
    force: bool = False,
    resume: bool = False,
    may_change: Iterable[str] = (),
    recorded: Callable[[Path], dict | None] | None = None,
    write: bool = True,
    flag: str = "--out",
    compatible: Iterable[str] = (),
) -> bool:
    """Apply the rule (module docstring) to ``folder`` for ``command``; return True when an
    existing run is continued (``resume``), False for a new one.

    settings: what defines the run (JSON-able). recorded: for folders written before markers
    existed, a function returning their recorded settings (e.g. a run's config.yaml) or None.
    write: create the folder and marker (False on the non-zero ranks of a DDP run, which only
    check). compatible: other commands whose folders this one continues as they are (their
    marker kept; e.g. `validate` completes a `select` folder: the same runs, each checked by its
    own marker). Raises ValueError naming ``flag`` and what to do."""
    d = Path(folder).expanduser()
    if d.exists() and not d.is_dir():
        raise ValueError(f"{flag}: {str(d)!r} exists and is not a directory")
    entries = [p for p in d.iterdir()] if d.is_dir() else []
    if entries and force:
        guard_replace(d, flag)
        if write:
            _clear(d)
        entries = []
    if entries:
        marker = read_marker(d)
        if marker is not None and marker["command"] in set(compatible):
            return True
        old = marker["settings"] if marker and marker["command"] == command else None
        if marker is None and recorded is not None:
            old = recorded(d)
        if old is None:
            what = (f"a featsel {marker['command']} run" if marker
                    else "not a featsel " + command + " run")
            raise ValueError(f"{flag}: {str(d)!r} is not empty and is {what}; choose a new "
                             f"folder, or pass --force to replace it (deletes its contents)")
        diff = differing_settings(old, settings, may_change)
        if diff:
            raise ValueError(f"{flag}: {str(d)!r} holds a featsel {command} run with other "
                             f"settings ({_describe(old, settings, diff)}); use a new folder, "
                             f"or --force to replace it")
        if not resume:
            raise ValueError(f"{flag}: {str(d)!r} already holds this featsel {command} run; "
                             f"pass --resume to continue it, or --force to replace it")
        if write:
            write_marker(d, command, settings)
        return True
    if write:
        d.mkdir(parents=True, exist_ok=True)
        write_marker(d, command, settings)
    return False


def publish_dir(tmp: str | os.PathLike, out: str | os.PathLike, *, force: bool = False) -> None:
    """Rename the finished folder ``tmp`` onto ``out`` in one step.

    A missing or empty ``out`` is replaced atomically (rename(2) replaces an empty folder).
    A non-empty one is replaced only with ``force`` (moved aside, the new one renamed in, the
    old removed); without ``force`` -- another run published there since this one started --
    ValueError, and ``tmp`` is kept under a visible name beside ``out`` so no work is lost."""
    tmp, out = Path(tmp), Path(out)
    old = None
    if force and out.is_dir() and any(out.iterdir()):
        old = out.with_name(f".{out.name}.old{os.getpid()}")
        os.replace(out, old)
    try:
        os.rename(tmp, out)
    except OSError as err:
        if old is not None and not out.exists():
            os.replace(old, out)
        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise
        keep = out.with_name(f"{out.name}.{os.getpid()}")
        os.rename(tmp, keep)
        raise ValueError(f"--out: {str(out)!r} was written by another run while this one was "
                         f"computing; this run's results are in {str(keep)!r}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
