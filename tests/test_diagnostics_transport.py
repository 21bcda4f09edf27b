"""Generation-space criteria: transport fidelity pc_u and target stability, against POT and
closed forms (featsel/diagnostics/transport.py)."""

import numpy as np
import ot
import pytest
import torch

from featsel.diagnostics.transport import (
    perplexity_eps,
    plan_perplexity,
    target_stability,
    transport_fidelity,
)
from featsel.ot import cost_std, sinkhorn


def _clusters(n_per=60, k=3, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(k, d, generator=g)
    u = torch.cat([centres[i] + torch.randn(n_per, d, generator=g) for i in range(k)])
    return u.double(), np.repeat(np.arange(k), n_per)


def test_fidelity_of_u_itself_matches_pot_plan_ratio():
    # unconditional, one repeat, tau rule: pc_u = <P, C_u> / n / mean(C_u) for POT's plan
    u, _ = _clusters()
    n, seed, tau = 40, 3, 0.1
    r = transport_fidelity(u, u, n=n, seed=seed, eps_rule="tau", tau=tau, n_repeats=1,
                           dtype="float64", final_tol=1e-9, max_iter=20000)
    idx = np.random.default_rng(seed).permutation(len(u))[: 2 * n]  # the same draw
    x, y = u[idx[:n]], u[idx[n:]]
    c = torch.cdist(x, y).square().numpy()
    eps = tau * float(cost_std(x, y))
    a = np.full(n, 1.0 / n)
    pi = ot.sinkhorn(a, a, c, reg=eps, method="sinkhorn_log", numItermax=100000, stopThr=1e-12)
    p = pi / pi.sum(1, keepdims=True)
    want = (p * c).sum() / n / c.mean()
    assert r.unconditional == pytest.approx(want, rel=1e-6)
    assert r.mean == pytest.approx(want, rel=1e-6)  # no labels: the mean is the "all" draw
    assert 0 < r.mean < 0.5  # clustered data: the plan pairs within clusters


def test_noise_and_constant_features_carry_no_information():
    u, lab = _clusters()
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(len(u), 4, generator=g)
    rn = transport_fidelity(noise, u, n=20, labels=lab, n_repeats=6, seed=2)
    assert rn.mean == pytest.approx(1.0, abs=0.05)
    rc = transport_fidelity(torch.zeros(len(u), 3), u, n=20, labels=lab, n_repeats=2)
    assert rc.mean == pytest.approx(1.0, abs=1e-6)  # the plan is exactly a b^T
    assert rc.per_class and set(rc.per_class) == {"0", "1", "2"}
    ru = transport_fidelity(u, u, n=20, labels=lab, n_repeats=2)
    assert ru.mean < rn.mean - 0.2


def test_invariant_to_feature_scale_and_perplexity_matched():
    u, lab = _clusters(seed=4)
    phi = u[:, :3] * 1.0
    r1 = transport_fidelity(phi, u, n=20, labels=lab, n_repeats=2, seed=5)
    r2 = transport_fidelity(1e3 * phi, u, n=20, labels=lab, n_repeats=2, seed=5)
    assert r2.mean == pytest.approx(r1.mean, rel=1e-3)
    assert r1.perplexity == pytest.approx(4.0, rel=0.05)
    t1 = transport_fidelity(phi, u, n=20, labels=lab, n_repeats=2, seed=5, eps_rule="tau")
    t2 = transport_fidelity(7 * phi, u, n=20, labels=lab, n_repeats=2, seed=5, eps_rule="tau")
    assert t2.mean == pytest.approx(t1.mean, rel=1e-3)


def test_perplexity_eps_reaches_the_target():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 50, 3, generator=g), torch.randn(6, 50, 3, generator=g)
    for k in (2.0, 4.0, 10.0):
        eps, _ = perplexity_eps(x, y, k, steps=10)
        out = sinkhorn(x, y, eps=eps, max_iter=5000, tol=1e-6)
        assert plan_perplexity(out.coupling()).numpy() == pytest.approx(np.full(6, k), rel=0.03)


def test_blocks_mix_like_the_loss():
    # two blocks: the value is the sub-problem-weighted mean of the blocks' values (linearity)
    u, lab = _clusters(seed=6)
    per_loc = torch.stack([u[:, 0:1], u[:, 1:2], u[:, 2:3]], 1)  # (n, 3, 1)
    glob = u[:, 3:]
    kw = dict(n=20, labels=lab, n_repeats=2, seed=7, eps_rule="tau", final_tol=1e-8,
              max_iter=20000, dtype="float64")
    both = transport_fidelity({"a/per_loc": per_loc, "a/global": glob}, u, **kw)
    only_loc = transport_fidelity({"a/per_loc": per_loc}, u, **kw)
    only_glob = transport_fidelity({"a/global": glob}, u, **kw)
    assert both.mean == pytest.approx((3 * only_loc.mean + only_glob.mean) / 4, rel=1e-9)


def test_target_stability_orders_information_and_is_fooled_by_averaging():
    u, lab = _clusters(seed=8)
    g = torch.Generator().manual_seed(2)
    s_u = target_stability(u, u, n=20, labels=lab, n_repeats=3)
    s_noise = target_stability(torch.randn(len(u), 5, generator=g), u, n=20, labels=lab,
                               n_repeats=3)
    s_const = target_stability(torch.zeros(len(u), 2), u, n=20, labels=lab, n_repeats=3)
    assert s_u.mean < s_noise.mean
    # a constant featurizer's targets are the draws' means: stable, and uninformative
    assert s_const.mean < s_noise.mean
    assert s_u.per_block == {}


def test_small_classes_left_out_with_a_warning_and_bad_input():
    u, lab = _clusters(n_per=60)
    lab = lab.copy()
    lab[:50] = 3  # class 3 gets 50 samples, class 0 keeps 10 (< 2n = 40)
    with pytest.warns(UserWarning, match="left out"):
        r = transport_fidelity(u, u, n=20, labels=lab, n_repeats=1)
    assert r.skipped_classes == {"0": 10}
    assert set(r.per_class) == {"1", "2", "3"}
    with pytest.raises(ValueError, match="eps_rule"):
        transport_fidelity(u, u, n=20, eps_rule="median")
    with pytest.raises(ValueError, match="u: expected"):
        transport_fidelity(u, u[:10], n=20)
    with pytest.raises(ValueError, match="n: every class"):
        transport_fidelity(u, u, n=200, labels=lab, unconditional=False)
    with pytest.raises(ValueError, match="unknown option"):
        transport_fidelity(u, u, n=20, taus=(0.1,))
