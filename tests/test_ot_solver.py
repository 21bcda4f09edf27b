"""featsel.ot against independent references (POT, GeomLoss, closed forms, plain loops).

Tolerances: float64 throughout unless stated; plan 1e-6 relative to its largest entry,
values 1e-8 relative, barycentric maps 1e-6 absolute (data of unit scale).
"""

import math

import numpy as np
import ot
import pytest
import torch

from featsel.ot import (
    choose_backend,
    cost_std,
    descent_field,
    eps_from_tau,
    sinkhorn,
    sinkhorn_divergence,
    sinkhorn_self,
)

F64 = torch.float64


def _clouds(n=40, m=30, d=3, seed=0, batch=(), dtype=F64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*batch, n, d, generator=g, dtype=dtype)
    y = torch.randn(*batch, m, d, generator=g, dtype=dtype) * 0.8 + 0.5
    return x, y


def _weights(n, seed):
    w = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=F64) + 0.1
    return w / w.sum()


def _pot_plan(x, y, a, b, eps):
    c = (torch.cdist(x, y) ** 2).numpy()
    return ot.sinkhorn(
        a.numpy(), b.numpy(), c, eps, method="sinkhorn_log", numItermax=200000, stopThr=1e-15
    ), c


def _reference_loop(x, y, eps, iters, a=None, b=None):
    """The paper code's solver: alternating logsumexp over a materialised (g - C)/eps + log b."""
    c = torch.cdist(x, y) ** 2
    n, m = c.shape[-2:]
    la = torch.full(c.shape[:-1], -math.log(n), dtype=c.dtype) if a is None else a.log()
    lb = torch.full(c.shape[:-2] + (m,), -math.log(m), dtype=c.dtype) if b is None else b.log()
    f = torch.zeros(c.shape[:-1], dtype=c.dtype)
    g = torch.zeros(c.shape[:-2] + (m,), dtype=c.dtype)
    for _ in range(iters):
        f = -eps * torch.logsumexp((g.unsqueeze(-2) - c) / eps + lb.unsqueeze(-2), dim=-1)
        g = -eps * torch.logsumexp((f.unsqueeze(-1) - c) / eps + la.unsqueeze(-1), dim=-2)
    return f, g


@pytest.mark.parametrize("rel_eps", [0.01, 0.1, 1.0])
@pytest.mark.parametrize("backend", ["dense", "blocked"])
def test_matches_pot_converged(rel_eps, backend):
    x, y = _clouds()
    a, b = _weights(40, 1), _weights(30, 2)
    c = torch.cdist(x, y) ** 2
    eps = rel_eps * float(c.median())
    plan, cnp = _pot_plan(x, y, a, b, eps)
    out = sinkhorn(x, y, eps=eps, a=a, b=b, tol=1e-13, max_iter=50000, backend=backend,
                   memory_budget=1 << 14 if backend == "blocked" else None)
    pi = out.coupling().numpy()
    assert out.backend == backend
    assert np.abs(pi - plan).max() <= 1e-6 * plan.max()
    # POT's objective with -eps H(pi) differs by a constant; compare <pi, C> + eps KL(pi | a b)
    kl = (plan * np.log(plan / np.outer(a.numpy(), b.numpy()))).sum()
    value_ref = (plan * cnp).sum() + eps * kl
    assert abs(float(out.value) - value_ref) <= 1e-8 * abs(value_ref)
    t_ref = plan @ y.numpy() / plan.sum(1, keepdims=True)
    assert np.abs(out.barycentric_map().numpy() - t_ref).max() <= 1e-6
    assert float(out.marginal_error) <= 1e-12


def test_paper_recipe_iterations_are_exact():
    """tol=0 runs exactly max_iter iterations, with the same iterates as the plain log loop."""
    x, y = _clouds(batch=(3,))
    for iters in (1, 2, 4, 50):
        out = sinkhorn(x, y, eps=0.05, tol=0, max_iter=iters, backend="dense")
        f, g = _reference_loop(x, y, 0.05, iters)
        assert out.n_iter == iters
        torch.testing.assert_close(out.f, f, rtol=0, atol=1e-10)
        torch.testing.assert_close(out.g, g, rtol=0, atol=1e-10)


def test_batched_equals_loop_and_per_problem_eps():
    x, y = _clouds(n=20, m=25, batch=(2, 3))
    eps = torch.tensor([[0.1, 0.3, 1.0], [0.5, 0.05, 2.0]], dtype=F64)
    out = sinkhorn(x, y, eps=eps, tol=0, max_iter=40)
    assert out.f.shape == (2, 3, 20) and out.g.shape == (2, 3, 25) and out.value.shape == (2, 3)
    assert out.barycentric_map().shape == (2, 3, 20, 3)
    for i in range(2):
        for j in range(3):
            one = sinkhorn(x[i, j], y[i, j], eps=float(eps[i, j]), tol=0, max_iter=40)
            torch.testing.assert_close(out.f[i, j], one.f, rtol=0, atol=1e-11)
            torch.testing.assert_close(out.coupling()[i, j], one.coupling(), rtol=0, atol=1e-13)


def test_float32_chunked_close_to_float64():
    """Float32, many problems in cache-sized chunks, against the float64 solve: 1e-4 absolute."""
    x, y = _clouds(n=64, m=128, d=16, batch=(300,), dtype=torch.float32)
    eps = eps_from_tau(x, y, 0.05)
    o32 = sinkhorn(x, y, eps=eps, tol=0, max_iter=50, backend="dense")
    o64 = sinkhorn(x.double(), y.double(), eps=eps.double(), tol=0, max_iter=50, backend="dense")
    assert o32.f.dtype == torch.float32
    rel = (o32.f.double() - o64.f).abs().max() / o64.f.abs().max()
    assert rel <= 1e-5
    t32, t64 = o32.barycentric_map().double(), o64.barycentric_map()
    assert (t32 - t64).abs().max() <= 1e-4


def test_tolerance_and_warm_start():
    x, y = _clouds()
    out = sinkhorn(x, y, eps=0.1, tol=1e-9, max_iter=10000)
    assert float(out.marginal_error) <= 1e-9
    assert 1 < out.n_iter < 10000
    again = sinkhorn(x, y, eps=0.1, tol=1e-9, max_iter=10000, init=out)
    assert again.n_iter <= 1
    torch.testing.assert_close(again.f, out.f, rtol=0, atol=1e-8)


def test_eps_scaling_reaches_the_same_plan():
    x, y = _clouds(n=60, m=60)
    eps = 0.1 * float((torch.cdist(x, y) ** 2).std())
    plain = sinkhorn(x, y, eps=eps, tol=1e-10, max_iter=100000)
    scaled = sinkhorn(x, y, eps=eps, tol=1e-10, max_iter=100000, eps_scaling=0.7)
    assert scaled.n_iter > 10  # the annealing stages are counted
    assert float(scaled.marginal_error) <= 1e-10 and float(plain.marginal_error) <= 1e-10
    torch.testing.assert_close(scaled.coupling(), plain.coupling(), rtol=0, atol=1e-8)


def test_self_transport_symmetric_and_masked():
    x, _ = _clouds(n=30)
    for mask in (False, True):
        out = sinkhorn_self(x, eps=0.5, mask_diagonal=mask, tol=1e-11, max_iter=20000)
        pi = out.coupling()
        torch.testing.assert_close(pi, pi.T, rtol=0, atol=1e-14)
        torch.testing.assert_close(pi.sum(1), torch.full((30,), 1 / 30, dtype=F64), rtol=0, atol=1e-10)
        assert torch.equal(out.f, out.g)
        assert abs(float(out.value) - 2 * float(out.f.mean())) <= 1e-12
        if mask:
            assert float(pi.diagonal().abs().max()) == 0.0
            blocked = sinkhorn_self(x, eps=0.5, mask_diagonal=True, tol=0, max_iter=30, backend="blocked")
            dense = sinkhorn_self(x, eps=0.5, mask_diagonal=True, tol=0, max_iter=30, backend="dense")
            torch.testing.assert_close(blocked.f, dense.f, rtol=0, atol=1e-10)
    # the unmasked self problem is the general problem with y = x
    gen = sinkhorn(x, x, eps=0.5, tol=1e-12, max_iter=20000)
    sym = sinkhorn_self(x, eps=0.5, tol=1e-12, max_iter=20000)
    torch.testing.assert_close(sym.value, gen.value, rtol=1e-10, atol=0)


@pytest.mark.parametrize("eps", [0.5, 2.0])
def test_divergence_matches_geomloss(eps):
    """GeomLoss: cost |x-y|^2/2 and eps = blur^2, so S_eps[C] = 2 S_{eps/2}[C/2] (docs/science.md)."""
    from geomloss import SamplesLoss

    x, y = _clouds()
    ours = sinkhorn_divergence(x, y, eps=eps, tol=1e-13, max_iter=50000)
    ref = SamplesLoss("sinkhorn", p=2, blur=math.sqrt(eps / 2), scaling=0.9999, debias=True,
                      backend="tensorized")(x, y)
    assert abs(float(ours) - 2 * float(ref)) <= 1e-6 * abs(float(ours))


def test_divergence_zero_on_equal_and_nonnegative():
    x, y = _clouds(batch=(4,))
    # alternating updates on a symmetric problem converge slowly at small eps: eps = 1 here
    s_xx = sinkhorn_divergence(x, x, eps=1.0, tol=1e-13, max_iter=50000)
    assert s_xx.abs().max() <= 1e-10
    s_xy = sinkhorn_divergence(x, y, eps=0.3, tol=1e-12, max_iter=50000)
    assert bool((s_xy > 0).all())


def test_descent_field_is_minus_half_gradient():
    """grad_{x_i} S = 2 a_i (T_xx - T_xy): compare the field with central finite differences."""
    x, y = _clouds(n=12, m=15, d=2)
    eps = 0.4
    field = descent_field(x, y, eps=eps, tol=1e-14, max_iter=100000)
    h = 1e-5
    for i, k in [(0, 0), (5, 1), (11, 0)]:
        xp, xm = x.clone(), x.clone()
        xp[i, k] += h
        xm[i, k] -= h
        sp = sinkhorn_divergence(xp, y, eps=eps, tol=1e-14, max_iter=100000)
        sm = sinkhorn_divergence(xm, y, eps=eps, tol=1e-14, max_iter=100000)
        grad = float(sp - sm) / (2 * h)
        assert abs(-grad / (2 / 12) - float(field[i, k])) <= 1e-6


def test_cost_std_and_eps_from_tau():
    x, y = _clouds(n=17, m=23, d=5, batch=(3,))
    c = torch.cdist(x, y) ** 2
    ref = c.flatten(-2).std(-1, correction=0)
    torch.testing.assert_close(cost_std(x, y), ref, rtol=1e-10, atol=0)
    torch.testing.assert_close(eps_from_tau(x, y, 0.05), 0.05 * ref, rtol=1e-10, atol=0)
    with pytest.raises(ValueError, match="tau"):
        eps_from_tau(x, y, 0.0)


def test_no_gradient_and_autocast():
    x, y = _clouds(dtype=torch.float32)
    x.requires_grad_(True)
    ref = sinkhorn(x, y, eps=0.2, tol=0, max_iter=10)
    assert ref.f.grad_fn is None and ref.barycentric_map().grad_fn is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sinkhorn(x.bfloat16(), y, eps=0.2, tol=0, max_iter=10)
    assert out.f.dtype == torch.float32
    assert (out.f - ref.f).abs().max() <= 0.05  # bf16 inputs are rounded, the solve is float32


def test_backend_choice():
    cpu = torch.device("cpu")
    assert choose_backend(1028, 64, 128, 64, cpu, torch.float32, memory_budget=1 << 32) == "dense"
    assert choose_backend(1, 20000, 20000, 768, cpu, torch.float32, memory_budget=1 << 30) == "blocked"
    assert choose_backend(1, 20000, 20000, 768, cpu, torch.float32, 1 << 30, mask_diagonal=True) == "blocked"
    x, y = _clouds(n=200, m=150)
    small = sinkhorn(x, y, eps=0.3, tol=0, max_iter=20, memory_budget=1000)
    big = sinkhorn(x, y, eps=0.3, tol=0, max_iter=20)
    assert small.backend in ("blocked", "keops") and big.backend == "dense"
    torch.testing.assert_close(small.f, big.f, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=torch.tensor([[float("nan"), 0.0]])), "x contains NaN"),
        (dict(y=torch.ones(5, 3)), "same dimension D"),
        (dict(x=torch.ones(0, 2)), "x is empty"),
        (dict(eps=0.0), "eps must be finite and > 0"),
        (dict(eps=-1.0), "eps must be finite and > 0"),
        (dict(a=torch.tensor([0.5, -0.5, 1.0])), "a must be non-negative"),
        (dict(b=torch.tensor([0.2, 0.2, 0.2, 0.2])), "b must sum to 1"),
        (dict(a=torch.ones(7) / 7), "a must have shape"),
        (dict(backend="gpu"), "backend must be one of"),
        (dict(max_iter=0), "max_iter"),
        (dict(tol=-1.0), "tol"),
        (dict(init=(torch.zeros(2), torch.zeros(4))), "init must be potentials"),
        (dict(x=torch.ones(2, 3, 2), y=torch.ones(3, 4, 2)), "same leading batch shape"),
        (dict(x=torch.ones(3, 2, dtype=torch.int64)), "floating-point"),
    ],
)
def test_bad_input_errors(kwargs, match):
    args = dict(x=torch.randn(3, 2), y=torch.randn(4, 2), eps=0.1)
    args.update(kwargs)
    x, y = args.pop("x"), args.pop("y")
    with pytest.raises(ValueError, match=match):
        sinkhorn(x, y, **args)


def test_masked_self_needs_two_points():
    with pytest.raises(ValueError, match="at least 2 points"):
        sinkhorn_self(torch.randn(1, 3), eps=0.1, mask_diagonal=True)


def test_barycentric_of_other_values():
    x, y = _clouds()
    out = sinkhorn(x, y, eps=0.2, tol=1e-10)
    labels = torch.nn.functional.one_hot(torch.arange(30) % 3, 3).to(F64)
    probs = out.barycentric_map(labels)
    torch.testing.assert_close(probs.sum(-1), torch.ones(40, dtype=F64), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="values must have shape"):
        out.barycentric_map(torch.ones(29, 2, dtype=F64))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_cuda_float32_matches_cpu():
    x, y = _clouds(n=64, m=128, d=32, batch=(50,), dtype=torch.float32)
    cpu = sinkhorn(x, y, eps=0.5, tol=0, max_iter=50)
    gpu = sinkhorn(x.cuda(), y.cuda(), eps=0.5, tol=0, max_iter=50)
    assert gpu.f.is_cuda
    torch.testing.assert_close(gpu.f.cpu(), cpu.f, rtol=0, atol=1e-4)


def test_far_from_origin_float32_is_centred():
    """Points offset by 1e3 (|mu|^2 >> Var): the cost is formed after centring, so float32 keeps
    the plan of the unshifted problem to 1e-5 absolute."""
    x, y = _clouds(n=30, m=40, dtype=torch.float32)
    ref = sinkhorn(x, y, eps=0.5, tol=0, max_iter=30)
    far = sinkhorn(x + 1e3, y + 1e3, eps=0.5, tol=0, max_iter=30)
    torch.testing.assert_close(far.coupling(), ref.coupling(), rtol=0, atol=1e-5)
    torch.testing.assert_close(far.barycentric_map() - 1e3, ref.barycentric_map(), rtol=0, atol=1e-3)


def test_cost_std_high_dimension_route():
    """D^2 > N M takes the Gram route; it must agree with the direct computation too."""
    x, y = _clouds(n=6, m=7, d=50, batch=(2,))
    ref = (torch.cdist(x, y) ** 2).flatten(-2).std(-1, correction=0)
    torch.testing.assert_close(cost_std(x, y), ref, rtol=1e-10, atol=0)


def test_keops_that_crashes_its_test_is_not_used(monkeypatch):
    """A KeOps whose JIT crashes (a segfault on some CUDA toolkits; here a simulated abort) is
    reported unavailable with a warning: `auto` falls back to blocked and an explicit
    backend='keops' is a clear error, not a crashed interpreter."""
    import featsel.ot.keops as geo

    pytest.importorskip("pykeops")
    monkeypatch.delenv("FEATSEL_KEOPS", raising=False)
    monkeypatch.setattr(geo, "_KEOPS_PROBE", "import os; os.abort()")
    geo._keops_probe.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="test reduction on 'cpu' failed"):
            assert not geo.keops_available("cpu")
        cpu = torch.device("cpu")
        assert choose_backend(1, 20000, 20000, 8, cpu, torch.float32, memory_budget=1 << 20) == "blocked"
        x, y = _clouds(n=20, m=30)
        with pytest.raises(ValueError, match="backend='keops' is not usable on 'cpu'"):
            sinkhorn(x, y, eps=0.5, backend="keops")
        monkeypatch.setenv("FEATSEL_KEOPS", "0")  # off without a test
        geo._keops_probe.cache_clear()
        assert not geo.keops_available("cpu") and geo._keops_probe.cache_info().currsize == 0
    finally:
        geo._keops_probe.cache_clear()  # the real test runs again for the other tests


@pytest.mark.parametrize("eps", [1e4, 1e8])
def test_very_large_eps_gives_the_closed_form_limits(eps):
    """Issue 15.7: at eps = 1e8 the convergence test passed before the first iteration and the
    value was 0. As eps -> inf the plan -> a (x) b, so OT_eps -> <C, a (x) b> and the divergence
    -> ||mean x - mean y||^2 (squared-Euclidean cost): both to 1e-6 relative."""
    from featsel.ot import sinkhorn_divergence

    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 3, generator=g, dtype=torch.float64)
    y = torch.randn(25, 3, generator=g, dtype=torch.float64) + 1.0
    cost = ((x[:, None] - y[None]) ** 2).sum(-1)
    out = sinkhorn(x, y, eps=eps)
    assert out.n_iter >= 1
    assert float(out.value) == pytest.approx(float(cost.mean()), rel=1e-6 * max(1, 1e8 / eps))
    div = float(sinkhorn_divergence(x, y, eps=eps))
    assert div == pytest.approx(float(((x.mean(0) - y.mean(0)) ** 2).sum()), rel=1e-3)
