"""Test-wide settings: one thread per process, no hub access, the shared data directory."""

import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
_shared = Path(__file__).resolve().parents[2] / "shared" / "data"
if _shared.is_dir():
    os.environ.setdefault("FEATSEL_DATA_DIR", str(_shared))

# the suite never touches the user's feature cache (~/.cache/featsel): one temporary cache per
# session, removed at exit
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

_cache = tempfile.mkdtemp(prefix="featsel-test-cache-")
os.environ["FEATSEL_CACHE_DIR"] = _cache
atexit.register(shutil.rmtree, _cache, ignore_errors=True)

import torch  # noqa: E402

torch.set_num_threads(1)
