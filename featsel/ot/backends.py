"""The OT backends (geometries), one line each, and the `auto` rule that picks one.

Adding a backend: a `Geometry` subclass in a new file of this package (see `geometry.py` for
the contract) and one line in `GEOMETRIES`. The solver runs its log-domain iterations on any
geometry; only `dense` also gets the kernel-domain fast path.
"""

from __future__ import annotations

import os

import torch

from featsel.ot.blocked import BlockedGeometry
from featsel.ot.dense import DenseGeometry
from featsel.ot.geometry import Geometry
from featsel.ot.keops import KeOpsGeometry, keops_available

GEOMETRIES: dict[str, type[Geometry]] = {
    "dense": DenseGeometry,
    "blocked": BlockedGeometry,
    "keops": KeOpsGeometry,
}
BACKENDS = ("auto", *GEOMETRIES)


def default_memory_budget(device: torch.device) -> int:
    """Bytes the dense backend may hold: `$FEATSEL_OT_MEMORY_BUDGET`, else a third of the RAM
    on a CPU or a third of the free memory on a GPU."""
    env = os.environ.get("FEATSEL_OT_MEMORY_BUDGET")
    if env:
        return int(float(env))
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free // 3)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        total = 16 << 30
    return int(total // 3)


def choose_backend(
    batch: int, n: int, m: int, d: int, device: torch.device, dtype: torch.dtype,
    memory_budget: int | None = None, mask_diagonal: bool = False,
) -> str:
    """The `auto` rule (measured in benchmarks/README.md).

    dense when its memory (cost, kernel and one softmax temporary: 3 B N M floats) fits the
    budget; otherwise KeOps on a GPU or at low dimension (D <= 16) on a CPU, where its symbolic
    cost is cheap, if KeOps passes its test reduction there (`keops_available`); otherwise
    blocked GEMM. KeOps cannot mask a diagonal: blocked then.
    """
    budget = default_memory_budget(device) if memory_budget is None else memory_budget
    itemsize = torch.finfo(dtype).bits // 8
    if 3 * batch * n * m * itemsize <= budget:
        return "dense"
    if not mask_diagonal and (device.type == "cuda" or d <= 16) and keops_available(device.type):
        return "keops"
    return "blocked"


def make_geometry(
    backend: str, x, y, mask_diagonal: bool, *, x2, y2, memory_budget: int
) -> Geometry:
    """The geometry of `backend` for flattened points x: (B, N, D), y: (B, M, D)."""
    cls = GEOMETRIES.get(backend)
    if cls is None:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return cls.build(x, y, mask_diagonal, x2=x2, y2=y2, memory_budget=memory_budget)
