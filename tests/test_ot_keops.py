"""The KeOps backend against the dense one (float64, D = 3: a few formulas compile once)."""

import pytest
import torch

from featsel.ot import keops_available, sinkhorn, sinkhorn_self

pytestmark = [
    pytest.mark.keops,
    pytest.mark.skipif(not keops_available(), reason="KeOps not installed or failed its test"),
]


def test_keops_matches_dense():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 50, 3, generator=g, dtype=torch.float64)
    y = torch.randn(2, 70, 3, generator=g, dtype=torch.float64) + 0.3
    eps = torch.tensor([0.1, 0.5], dtype=torch.float64)
    d = sinkhorn(x, y, eps=eps, tol=1e-12, max_iter=20000, backend="dense")
    k = sinkhorn(x, y, eps=eps, tol=1e-12, max_iter=20000, backend="keops")
    assert k.backend == "keops"
    torch.testing.assert_close(k.f, d.f, rtol=0, atol=1e-9)
    torch.testing.assert_close(k.g, d.g, rtol=0, atol=1e-9)
    torch.testing.assert_close(k.barycentric_map(), d.barycentric_map(), rtol=0, atol=1e-9)
    torch.testing.assert_close(k.coupling(), d.coupling(), rtol=0, atol=1e-12)
    ks = sinkhorn_self(x, eps=eps, tol=1e-12, max_iter=20000, backend="keops")
    ds = sinkhorn_self(x, eps=eps, tol=1e-12, max_iter=20000, backend="dense")
    torch.testing.assert_close(ks.f, ds.f, rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="mask_diagonal"):
        sinkhorn_self(x, eps=0.1, mask_diagonal=True, backend="keops")
