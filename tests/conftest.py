"""Test-wide settings: one thread per process, no hub access, the shared data directory."""

import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
_shared = Path(__file__).resolve().parents[2] / "shared" / "data"
if _shared.is_dir():
    os.environ.setdefault("FEATSEL_DATA_DIR", str(_shared))

import torch  # noqa: E402

torch.set_num_threads(1)
