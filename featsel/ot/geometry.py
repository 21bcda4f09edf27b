"""Geometries: how the cost C_ij = ||x_i - y_j||^2 is held and reduced, one class per backend.

Every geometry works on flattened batches, `x: (B, N, D)`, `y: (B, M, D)`, `eps: (B,)`, and
offers the two log-sum-exp reductions the Sinkhorn updates need,

    lse(h, axis=1)_i = log sum_j exp(h_j - C_ij / eps)        h: (B, M) -> (B, N)
    lse(h, axis=0)_j = log sum_i exp(h_i - C_ij / eps)        h: (B, N) -> (B, M)

and the row-normalised barycentric projection (docs/science.md)

    T(x_i) = sum_j pi_ij v_j / sum_j pi_ij,  pi_ij ~ exp(h_j - C_ij / eps)  (f_i cancels).

Backends:
- `DenseGeometry`: C built once by GEMM (`baddbmm`) and held, (B, N, M) memory. The solver also
  uses it for the fast kernel-domain iterations (matrix-vector products, no exp per iteration).
- `BlockedGeometry`: C rebuilt by GEMM in row blocks at every reduction; memory
  O(B * block * M) instead of O(B * N * M). For problems whose cost matrix does not fit.
- `KeOpsGeometry`: pykeops LazyTensors, symbolic cost, memory linear in N + M.

The points are centred when needed (`prepare_points`) before any cost is formed: the cost is
translation invariant and centring limits the cancellation in |x|^2 + |y|^2 - 2 x.y.
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
import warnings

import torch
from torch import Tensor


def sq_norms(x: Tensor) -> Tensor:
    """|x_i|^2 as one fused reduction (no temporary of the size of x). x: (B, N, D) -> (B, N)."""
    return torch.linalg.vector_norm(x, dim=-1).square_()


def prepare_points(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Check x: (B, N, D), y: (B, M, D) for NaN/Inf and centre them if needed.

    Returns (x, y, |x_i|^2, |y_j|^2). The squared norms serve three purposes at the price of one
    fused pass: the finiteness check (a NaN or Inf entry makes its norm non-finite), the
    decision to centre, and the cost. Centring (a common shift per problem, under which the
    cost is invariant) limits the cancellation in |x|^2 + |y|^2 - 2 x.y; it is skipped unless the
    mean dominates the spread, since copying large feature batches is not free.
    """
    x2 = sq_norms(x)
    y2 = x2 if y is x else sq_norms(y)
    for name, t in (("x", x2), ("y", y2)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or Inf values (or values too large for {t.dtype})")
    n, m = x.shape[-2], y.shape[-2]
    mu = (x.sum(-2) + y.sum(-2)) / (n + m)  # (B, D)
    scale = (x2.sum(-1) + y2.sum(-1)) / (n + m)  # mean squared norm, (B,)
    # float32 loses about log10(1 + |mu|^2 / Var) digits to the cancellation: centre only when
    # the mean dominates the spread (|mu|^2 > Var), a copy is not worth less
    if bool(((mu * mu).sum(-1) <= 0.5 * scale).all()):
        return x, y, x2, y2
    mu = mu.unsqueeze(-2)
    xc = x - mu
    yc = xc if y is x else y - mu
    x2 = sq_norms(xc)
    return xc, yc, x2, x2 if y is x else sq_norms(yc)


def sq_cost(x: Tensor, y: Tensor, x2: Tensor | None = None, y2: Tensor | None = None) -> Tensor:
    """C_ij = ||x_i - y_j||^2 by one batched GEMM. x: (B, N, D), y: (B, M, D) -> (B, N, M).

    x2: (B, N), y2: (B, M) squared norms, when already computed."""
    x2 = sq_norms(x) if x2 is None else x2
    y2 = sq_norms(y) if y2 is None else y2
    return torch.baddbmm(
        x2.unsqueeze(-1) + y2.unsqueeze(-2), x, y.transpose(-1, -2), alpha=-2.0
    ).clamp_min_(0.0)


def _mask_diag_(c: Tensor, row_offset: int = 0) -> Tensor:
    """Set C_ii = +inf in place on a row block c: (B, rows, M) starting at row `row_offset`."""
    rows = c.shape[-2]
    idx = torch.arange(rows, device=c.device)
    cols = idx + row_offset
    keep = cols < c.shape[-1]
    c[:, idx[keep], cols[keep]] = math.inf
    return c


class Geometry:
    """Common interface; `x: (B, N, D)`, `y: (B, M, D)` already centred, `eps: (B,)`."""

    name = "base"

    def __init__(self, x: Tensor, y: Tensor, mask_diagonal: bool = False):
        self.x, self.y = x, y
        self.mask_diagonal = mask_diagonal

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.x.shape[0], self.x.shape[1], self.y.shape[1]

    def lse(self, h: Tensor, eps: Tensor, axis: int) -> Tensor:
        raise NotImplementedError

    def log_kernel(self, hx: Tensor, hy: Tensor, eps: Tensor) -> Tensor:
        """(hx_i + hy_j - C_ij / eps): (B, N, M), dense. For `coupling()` only."""
        c = sq_cost(self.x, self.y)
        if self.mask_diagonal:
            _mask_diag_(c)
        return hx.unsqueeze(-1) + hy.unsqueeze(-2) - c / eps.view(-1, 1, 1)

    def barycentric(self, hy: Tensor, eps: Tensor, values: Tensor) -> Tensor:
        """sum_j softmax_j(hy_j - C_ij / eps) values_j. hy: (B, M), values: (B, M, K) -> (B, N, K)."""
        raise NotImplementedError


class DenseGeometry(Geometry):
    """Cost held in memory, built once by GEMM: the fastest route whenever (B, N, M) fits."""

    name = "dense"

    def __init__(
        self, x: Tensor, y: Tensor, mask_diagonal: bool = False, cost: Tensor | None = None,
        x2: Tensor | None = None, y2: Tensor | None = None,
    ):
        super().__init__(x, y, mask_diagonal)
        self.cost = sq_cost(x, y, x2, y2) if cost is None else cost
        if mask_diagonal and cost is None:
            _mask_diag_(self.cost)

    def lse(self, h: Tensor, eps: Tensor, axis: int) -> Tensor:
        ce = self.cost / eps.view(-1, 1, 1)
        if axis == 1:
            return torch.logsumexp(h.unsqueeze(-2) - ce, dim=-1)
        return torch.logsumexp(h.unsqueeze(-1) - ce, dim=-2)

    def log_kernel(self, hx: Tensor, hy: Tensor, eps: Tensor) -> Tensor:
        return hx.unsqueeze(-1) + hy.unsqueeze(-2) - self.cost / eps.view(-1, 1, 1)

    chunk: int | None = None  # problems per pass, set by the solver to keep passes in cache
    kernel: Tensor | None = None  # a chunk's final kernel k with pi_ij ~ u_i k_ij, if kept
    kernels: list[Tensor | None] | None = None  # per chunk of the full batch, set by the solver

    def barycentric(self, hy: Tensor, eps: Tensor, values: Tensor) -> Tensor:
        batch, n, _ = self.cost.shape
        step = self.chunk or batch
        values = values.to(self.cost.dtype)
        out = values.new_empty((batch, n, values.shape[-1]))
        for i, s in enumerate(range(0, batch, step)):
            sl = slice(s, s + step)
            k = self.kernels[i] if self.kernels else None
            if k is not None:  # rows of the kept kernel are the plan's rows up to a factor
                torch.bmm(k, values[sl], out=out[sl]).div_(k.sum(-1, keepdim=True))
                continue
            p = torch.div(self.cost[sl], -eps[sl].view(-1, 1, 1)).add_(hy[sl].unsqueeze(-2))
            torch.bmm(torch.softmax(p, dim=-1), values[sl], out=out[sl])
        return out


class BlockedGeometry(Geometry):
    """Cost rebuilt by GEMM in blocks of rows at every reduction: O(B * block * M) memory.

    Hand-written because neither POT nor GeomLoss offers a batched, blocked GEMM route: GeomLoss's
    "online" mode recomputes the cost symbolically (slow at high D on CPU), "tensorized" holds it.
    """

    name = "blocked"

    def __init__(
        self, x: Tensor, y: Tensor, mask_diagonal: bool = False, block_rows: int = 1024,
        x2: Tensor | None = None, y2: Tensor | None = None,
    ):
        super().__init__(x, y, mask_diagonal)
        self.block_rows = max(1, int(block_rows))
        self.x2 = sq_norms(x) if x2 is None else x2
        self.y2 = (sq_norms(y) if y2 is None else y2).unsqueeze(-2)

    def _blocks(self):
        n = self.x.shape[1]
        for s in range(0, n, self.block_rows):
            xb = self.x[:, s : s + self.block_rows]
            x2 = self.x2[:, s : s + self.block_rows].unsqueeze(-1)
            c = torch.baddbmm(x2 + self.y2, xb, self.y.transpose(-1, -2), alpha=-2.0).clamp_min_(0)
            if self.mask_diagonal:
                _mask_diag_(c, row_offset=s)
            yield s, c

    def lse(self, h: Tensor, eps: Tensor, axis: int) -> Tensor:
        e = eps.view(-1, 1, 1)
        if axis == 1:
            parts = [torch.logsumexp(h.unsqueeze(-2) - c / e, dim=-1) for _, c in self._blocks()]
            return torch.cat(parts, dim=-1)
        out = None
        for s, c in self._blocks():
            hb = h[:, s : s + c.shape[1]]
            part = torch.logsumexp(hb.unsqueeze(-1) - c / e, dim=-2)
            out = part if out is None else torch.logaddexp(out, part)
        return out

    def barycentric(self, hy: Tensor, eps: Tensor, values: Tensor) -> Tensor:
        e = eps.view(-1, 1, 1)
        parts = [
            torch.bmm(torch.softmax(hy.unsqueeze(-2) - c / e, dim=-1), values.to(c.dtype))
            for _, c in self._blocks()
        ]
        return torch.cat(parts, dim=-2)


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
