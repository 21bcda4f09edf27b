"""The KeOps backend: pykeops LazyTensors, a symbolic cost, memory linear in N + M.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import warnings

from torch import Tensor

from featsel.ot.geometry import Geometry

# A reduction of the kind the solver runs (log-sum-exp of -|x_i - y_j|^2), compiled and run in a
# child process: KeOps's JIT can crash the interpreter rather than raise (pykeops 2.3's nvrtc
# compile segfaulted on an H200 with CUDA 13), and a crash must cost a fallback, not the run.
_KEOPS_PROBE = """
import sys, torch
from pykeops.torch import LazyTensor
dev = sys.argv[1]
x = torch.randn(7, 1, 3, device=dev)
y = torch.randn(1, 5, 3, device=dev)
r = (-LazyTensor(x).sqdist(LazyTensor(y))).logsumexp(dim=1)
ref = torch.logsumexp(-((x - y) ** 2).sum(-1), dim=1, keepdim=True)
assert torch.allclose(r, ref, atol=1e-4), (r, ref)
"""


def keops_available(device_type: str = "cpu") -> bool:
    """Whether KeOps can serve the `keops` backend on this device type ("cpu" or "cuda").

    pykeops must import, and a test reduction must compile and match torch in a child process
    (once per process and device type; the first compile takes seconds to a minute). When the
    test fails, a warning says why and the `auto` backend uses dense/blocked instead.
    `FEATSEL_KEOPS=0` turns KeOps off; `FEATSEL_KEOPS=1` trusts it without the test.
    """
    flag = os.environ.get("FEATSEL_KEOPS", "")
    if flag == "0":
        return False
    try:
        import pykeops  # noqa: F401
        from pykeops.torch import LazyTensor  # noqa: F401
    except Exception:  # pragma: no cover - depends on the install
        return False
    return flag == "1" or _keops_probe(device_type)


@functools.cache
def _keops_probe(device_type: str) -> bool:
    try:
        res = subprocess.run([sys.executable, "-c", _KEOPS_PROBE, device_type],
                             capture_output=True, text=True, timeout=600)
        ok, why = res.returncode == 0, f"exit code {res.returncode}"
        tail = (res.stderr.strip().splitlines() or [""])[-1][:300]
    except subprocess.TimeoutExpired:
        ok, why, tail = False, "no answer within 600 s", ""
    if not ok:
        warnings.warn(f"KeOps is installed but its test reduction on {device_type!r} failed "
                      f"({why}{': ' + tail if tail else ''}); featsel uses the dense and blocked "
                      f"OT backends instead (FEATSEL_KEOPS=1 forces KeOps)", RuntimeWarning,
                      stacklevel=3)
    return ok


class KeOpsGeometry(Geometry):
    """Symbolic cost through pykeops LazyTensors: memory linear in N + M, any N, M.

    On a CPU KeOps recomputes the D-dimensional cost at every reduction, which loses to GEMM at
    high D; it pays off on GPUs and at low D (see benchmarks/README.md).
    """

    name = "keops"

    def __init__(self, x: Tensor, y: Tensor, mask_diagonal: bool = False):
        if mask_diagonal:
            raise ValueError("backend='keops' does not support mask_diagonal; use 'dense' or 'blocked'")
        if not keops_available(x.device.type):
            raise ValueError(f"backend='keops' is not usable on {x.device.type!r}: it needs pykeops "
                             f"(pip install pykeops), a compiler, and a passing test reduction "
                             f"(see the warning); use backend='dense' or 'blocked'")
        super().__init__(x, y, mask_diagonal)
        from pykeops.torch import LazyTensor

        self._L = LazyTensor
        self.xi = LazyTensor(x.contiguous().unsqueeze(2))  # (B, N, 1, D)
        self.yj = LazyTensor(y.contiguous().unsqueeze(1))  # (B, 1, M, D)
        self.cost_ij = self.xi.sqdist(self.yj)

    def lse(self, h: Tensor, eps: Tensor, axis: int) -> Tensor:
        L = self._L
        inv = L((1.0 / eps).view(-1, 1, 1, 1))
        if axis == 1:
            hj = L(h.contiguous().view(h.shape[0], 1, -1, 1))
            return (hj - self.cost_ij * inv).logsumexp(dim=2).squeeze(-1)
        hi = L(h.contiguous().view(h.shape[0], -1, 1, 1))
        return (hi - self.cost_ij * inv).logsumexp(dim=1).squeeze(-1)

    def barycentric(self, hy: Tensor, eps: Tensor, values: Tensor) -> Tensor:
        L = self._L
        inv = L((1.0 / eps).view(-1, 1, 1, 1))
        hj = L(hy.contiguous().view(hy.shape[0], 1, -1, 1))
        vj = L(values.to(hy.dtype).contiguous().unsqueeze(1))
        return (hj - self.cost_ij * inv).sumsoftmaxweight(vj, dim=2)

