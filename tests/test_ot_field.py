"""The training field lives in featsel.ot: the loss's gradient is featsel.ot's field, the
sync-free fixed-iteration route equals the checked solver and reads nothing back from the
device, and the backends are a registry."""

from __future__ import annotations

import contextlib

import pytest
import torch

import featsel.ot as ot
from featsel.ot import (
    PAPER,
    FieldConfig,
    OTProblem,
    cfg_field,
    descent_field,
    guided_field,
    sinkhorn,
    sinkhorn_self,
    solve,
)
from featsel.ot.backends import GEOMETRIES
from featsel.ot.geometry import Geometry
from generation.loss import LossConfig, SinkhornCFGLoss


@contextlib.contextmanager
def no_host_reads(monkeypatch):
    """Every Python-level read of a tensor's value (bool(), float(), int(), .item(), .tolist(),
    .numpy()) raises: on a GPU each of these is a host sync. Reads inside torch's C++ kernels
    are not reads of the host, so a route that passes here issues no sync of its own."""
    def boom(*_a, **_k):
        raise AssertionError("host read of a tensor value (a sync on a GPU)")

    with monkeypatch.context() as m:
        for name in ("__bool__", "__float__", "__int__", "__index__", "item", "tolist", "numpy"):
            m.setattr(torch.Tensor, name, boom)
        yield


def _problem(seed, k=3, l=2, n=12, m=10, u=14, c=5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(k, l, n, c, generator=g, dtype=dtype)
    p = torch.randn(k, l, m, c, generator=g, dtype=dtype) + 0.5
    r = torch.randn(k, l, u, c, generator=g, dtype=dtype) * 1.3
    w = torch.rand(k, generator=g, dtype=dtype) * 3
    return q, p, r, w


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_gradient_is_the_field_composed_from_the_public_solver(seed):
    """The loss's gradient equals -2 V / numel with V composed here from featsel.ot's public
    descent_field (one per target set) and eps_from_tau-style block eps: to 1e-6."""
    q, p, r, w = _problem(seed, dtype=torch.float32)
    cfg = LossConfig()
    # reference: (1 + w)(T_qp - T_qq) - w (T_qr - T_qq) = (1 + w) T_qp - w T_qr - T_qq
    std = ot.block_cost_std(q, p, "block")  # (K, L), one value
    ref = torch.zeros_like(q)
    for tau in cfg.taus:
        eps = tau * std
        kw = dict(eps=eps, mask_self_diagonal=True, max_iter=PAPER.cross_iters,
                  self_max_iter=PAPER.self_iters, tol=0.0)
        wb = w[:, None, None, None]
        v = (1 + wb) * descent_field(q, p, **kw) - wb * descent_field(q, r, **kw)
        lam = (v.pow(2).mean(dim=(-1, -2)) + 1e-8).sqrt()
        ref += v / lam[..., None, None]
    gen = q.permute(0, 2, 1, 3).clone().requires_grad_(True)  # (K, N, L, C)
    loss, _ = SinkhornCFGLoss(cfg, num_classes=3)(
        {"b": (gen, p.permute(0, 2, 1, 3), r.permute(0, 2, 1, 3))}, w, torch.arange(3))
    loss.backward()
    # one block: loss = L * MSE / L, grad = -2 V / numel
    field = -gen.grad.permute(0, 2, 1, 3) * q.numel() / 2
    torch.testing.assert_close(field, ref, atol=1e-6, rtol=1e-5)


def test_descent_field_is_guided_field_at_w0_and_matches_the_solves():
    q, p, _, _ = _problem(3)
    eps = 0.7
    v = descent_field(q, p, eps=eps, tol=1e-12, max_iter=5000)
    out = guided_field(q, p, eps=eps, w=0.0, tol=1e-12, max_iter=5000)
    cross = sinkhorn(q, p, eps=eps, tol=1e-12, max_iter=5000)
    self_ = sinkhorn_self(q, eps=eps, tol=1e-12, max_iter=5000)
    torch.testing.assert_close(v, out.field, atol=1e-12, rtol=0)
    torch.testing.assert_close(v, cross.barycentric_map() - self_.barycentric_map(),
                               atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="w must be 0 without y_uncond"):
        guided_field(q, p, eps=eps, w=0.5)


@pytest.mark.parametrize("mask", [True, False])
@pytest.mark.parametrize("warm", [False, True])
def test_sync_free_route_equals_the_checked_solver(mask, warm):
    """Fixed iterations: the sync-free route (log domain, always centred, one cost shared by a
    broadcast leading axis) equals the checked solver (kernel domain with absorption) to 1e-6
    in float64, for cross and masked/unmasked self problems, cold and warm."""
    q, p, _, _ = _problem(4)
    q = q + 3.0  # an offset the checked solver centres away and the fixed route always does
    eps = torch.tensor([0.05, 0.3, 2.0], dtype=q.dtype)[:, None, None] * ot.cost_std(q, p)[None]
    qt, pt = q.expand(3, *q.shape), p.expand(3, *p.shape)  # a tau axis, stride 0
    init_c = init_s = None
    if warm:
        prev = sinkhorn(qt, pt, eps=eps, max_iter=3, tol=0)
        init_c = prev.potentials()
        init_s = sinkhorn_self(qt, eps=eps, max_iter=2, tol=0, mask_diagonal=mask).f
    for it in (1, 2, 4, 9):
        a = sinkhorn(qt, pt, eps=eps, max_iter=it, tol=0, init=init_c)
        b = sinkhorn(qt, pt, eps=eps, max_iter=it, tol=0, init=init_c, sync_free=True)
        for x, y in ((a.f, b.f), (a.g, b.g), (a.barycentric_map(), b.barycentric_map()),
                     (a.marginal_error, b.marginal_error), (a.coupling(), b.coupling())):
            torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-6)
        s1 = sinkhorn_self(qt, eps=eps, max_iter=it, tol=0, mask_diagonal=mask, init=init_s)
        s2 = sinkhorn_self(qt, eps=eps, max_iter=it, tol=0, mask_diagonal=mask, init=init_s,
                           sync_free=True)
        torch.testing.assert_close(s1.f, s2.f, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(s1.barycentric_map(), s2.barycentric_map(), atol=1e-6, rtol=1e-6)


def test_sync_free_training_field_equals_the_checked_one_and_reads_nothing(monkeypatch):
    """The whole field of a block (3 taus, cross, unconditional and masked self solves, block
    eps, lambda normalisation) on the sync-free route: equal to the checked route to 1e-5 (the
    field runs in float32; the solves agree to 1e-6 in float64 above) and no Python-level read
    of a tensor value (a host sync on a GPU) anywhere in it."""
    q, p, r, w = _problem(5, dtype=torch.float32)
    ref, _ = cfg_field(q, p, r, w, FieldConfig(sync_free="never"))
    with no_host_reads(monkeypatch):
        v, out = cfg_field(q, p, r, w, FieldConfig(sync_free="always"), errors=False)
    torch.testing.assert_close(v, ref, atol=1e-5, rtol=1e-5)
    # the checked route does read the device (its convergence and absorption checks):
    # the detector is not vacuous
    with pytest.raises(AssertionError, match="host read"), no_host_reads(monkeypatch):
        cfg_field(q, p, r, w, FieldConfig(sync_free="never"), errors=False)


def test_sync_free_is_auto_on_gpus_with_the_paper_recipe_only():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert not FieldConfig().use_sync_free(cpu) and FieldConfig().use_sync_free(gpu)
    assert not FieldConfig(iterations="converged").use_sync_free(gpu)
    assert FieldConfig(sync_free="always").use_sync_free(cpu)
    with pytest.raises(ValueError, match="sync_free=always needs loss.iterations=paper"):
        FieldConfig(iterations="converged", sync_free="always").validate()
    with pytest.raises(ValueError, match="loss.sync_free must be one of"):
        FieldConfig(sync_free="yes").validate()
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="sync_free=True runs a fixed number"):
        sinkhorn(x, x, eps=1.0, tol=1e-5, sync_free=True)
    with pytest.raises(ValueError, match="sync_free=True runs a fixed number"):
        sinkhorn(x, x, eps=1.0, tol=0, max_iter=3, backend="blocked", sync_free=True)


def test_problem_object_and_solve():
    x, y = torch.randn(2, 7, 3, dtype=torch.float64), torch.randn(2, 5, 3, dtype=torch.float64)
    prob = OTProblem.between(x, y, eps=0.5)
    assert prob.batch_shape == (2,) and prob.sizes == (7, 5, 3) and not prob.symmetric
    torch.testing.assert_close(solve(prob, tol=1e-10).value, sinkhorn(x, y, eps=0.5, tol=1e-10).value)
    sp = OTProblem.self_transport(x, eps=0.5, mask_diagonal=True)
    assert sp.symmetric and sp.mask_diagonal and sp.y is sp.x
    with pytest.raises(ValueError, match="eps must be finite and > 0"):
        OTProblem.between(x, y, eps=-1.0)
    with pytest.raises(ValueError, match="solver options are the fields of SolverConfig"):
        solve(prob, max_iters=3)


def test_backends_are_a_registry_and_a_new_one_is_one_entry(monkeypatch):
    """A geometry added to GEOMETRIES is a backend: the solver's log-domain route runs on it
    (here a copy of dense that counts its reductions)."""
    assert ot.BACKENDS == ("auto", *GEOMETRIES) and set(GEOMETRIES) == {"dense", "blocked", "keops"}
    calls = []

    class Counting(GEOMETRIES["dense"]):
        name = "counting"

        def lse(self, h, eps, axis):
            calls.append(axis)
            return super().lse(h, eps, axis)

    assert issubclass(Counting, Geometry)
    monkeypatch.setitem(GEOMETRIES, "counting", Counting)
    monkeypatch.setattr("featsel.ot.solver.BACKENDS", ("auto", *GEOMETRIES))
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.randn(8, 3, dtype=torch.float64)
    out = sinkhorn(x, y, eps=0.3, backend="counting", tol=1e-9)
    ref = sinkhorn(x, y, eps=0.3, backend="dense", tol=1e-9)
    assert calls and out.backend == "counting"
    torch.testing.assert_close(out.value, ref.value, atol=1e-8, rtol=0)
