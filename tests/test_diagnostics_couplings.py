"""Class-grouped couplings against POT's plan; block structure vs chance; KeOps vs dense."""

import numpy as np
import ot
import pytest
import torch

from featsel.diagnostics import class_coupling
from featsel.ot import eps_from_tau


def _clusters(n, k=4, d=8, sep=4.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=g, dtype=torch.float64) * sep
    lab = torch.arange(n) % k
    return centers[lab] + torch.randn(n, d, generator=g, dtype=torch.float64), lab


def test_class_mass_matches_pot():
    x, cx = _clusters(60, seed=1)
    y, cy = _clusters(50, seed=1)
    y = y + 0.1 * torch.randn(50, 8, dtype=torch.float64)
    r = class_coupling(x, y, x_labels=cx, y_labels=cy, tau=0.2, dtype=torch.float64, tol=1e-10,
                       max_iter=10000)
    eps = float(eps_from_tau(x, y, 0.2))
    p = ot.sinkhorn(np.full(60, 1 / 60), np.full(50, 1 / 50), (torch.cdist(x, y) ** 2).numpy(),
                    eps, method="sinkhorn_log", stopThr=1e-13, numItermax=20000)
    want = np.zeros((4, 4))
    np.add.at(want, (cx.numpy()[:, None], cy.numpy()[None, :]), p)
    np.testing.assert_allclose(r.class_mass, want, atol=1e-7)
    order_r, order_c = np.argsort(cx.numpy(), kind="stable"), np.argsort(cy.numpy(), kind="stable")
    np.testing.assert_allclose(r.plan, p[np.ix_(order_r, order_c)], atol=1e-8)
    assert r.row_labels == sorted(r.row_labels)
    assert r.class_mass.sum() == pytest.approx(1.0, abs=1e-9)


def test_semantic_structure_vs_chance():
    x, cx = _clusters(80, seed=2)
    y, cy = _clusters(80, seed=3)
    y = y - y.mean(0) + x.mean(0)
    x2, y2 = _clusters(80, seed=2)
    r = class_coupling(x, x + 0.3 * torch.randn_like(x), x_labels=cx, y_labels=cx)
    assert r.same_class_mass > 0.95 and r.chance == pytest.approx(0.25)
    noise = class_coupling(torch.randn(80, 8), torch.randn(80, 8), x_labels=cx, y_labels=cy)
    assert abs(noise.same_class_mass - noise.chance) < 0.1
    blocks = class_coupling({"b": torch.randn(80, 3, 4)}, {"b": torch.randn(70, 3, 4)},
                            x_labels=cx, y_labels=np.arange(70) % 4)
    assert blocks.plan.shape == (80, 70)
    assert blocks.plan.sum() == pytest.approx(1.0, abs=1e-4)


def test_bad_inputs():
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="x_labels"):
        class_coupling(x, x, x_labels=np.zeros(3), y_labels=np.zeros(10))
    with pytest.raises(ValueError, match="same blocks"):
        class_coupling({"a": x}, {"b": x}, x_labels=np.zeros(10), y_labels=np.zeros(10))


@pytest.mark.keops
def test_keops_matches_dense():
    from featsel.ot import keops_available

    if not keops_available():
        pytest.skip("KeOps not available")
    # D = 3 and 3 classes in float64: the formulas the OT engine's KeOps tests already compile
    x, cx = _clusters(300, k=3, d=3, seed=4)
    y, cy = _clusters(260, k=3, d=3, seed=5)
    kw = dict(x_labels=cx, y_labels=cy, tau=0.1, dtype=torch.float64, keep_plan=False, tol=1e-9)
    dense = class_coupling(x, y, backend="dense", **kw)
    keops = class_coupling(x, y, backend="keops", **kw)
    np.testing.assert_allclose(keops.class_mass, dense.class_mass, atol=1e-9)
