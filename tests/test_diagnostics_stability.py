"""Delta_OT: against POT barycentric maps, limiting cases, blocks, classes and bad inputs."""

import numpy as np
import ot
import pytest
import torch

from featsel.diagnostics import (
    barycentric_disagreement,
    bootstrap_interval,
    ot_stability,
    ot_stability_report,
    stability_curve,
)


def _pool(dim_intrinsic, n=300, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, dim_intrinsic, generator=g)
    w = torch.linalg.qr(torch.randn(d, dim_intrinsic, generator=g))[0].T  # orthonormal rows
    return z @ w


def test_disagreement_matches_pot():
    g = torch.Generator().manual_seed(0)
    x, y1, y2 = (torch.randn(k, 5, generator=g, dtype=torch.float64) for k in (30, 40, 40))
    eps = 2.0
    d, info = barycentric_disagreement(x, y1, y2, sigma2=1.7, eps=eps, max_iter=5000, tol=1e-10)
    maps = []
    for y in (y1, y2):
        c = (torch.cdist(x, y) ** 2).numpy()
        p = ot.sinkhorn(np.full(30, 1 / 30), np.full(40, 1 / 40), c, eps, method="sinkhorn_log",
                        stopThr=1e-13, numItermax=20000)
        maps.append(p @ y.numpy() / p.sum(1, keepdims=True))
    want = ((maps[0] - maps[1]) ** 2).sum(1).mean() / (2 * 1.7)
    assert float(d) == pytest.approx(want, rel=1e-7)


def test_zero_when_targets_cover_the_pool():
    pool = _pool(4, n=120)
    # source set aside first (60), targets drawn from the other 60: Y1 = Y2 as sets
    assert ot_stability(pool, n=60, n_repeats=2) == pytest.approx(0.0, abs=1e-6)
    assert ot_stability(pool, n=20, n_repeats=2) > 0.01


def test_higher_intrinsic_dimension_is_less_stable():
    lo = ot_stability(_pool(2), n=48, n_repeats=3, seed=1)
    hi = ot_stability(_pool(16), n=48, n_repeats=3, seed=1)
    assert 0 < lo < hi < 1.2


def test_report_taus_classes_interval_and_determinism():
    pool = _pool(6, n=240)
    labels = np.repeat(["a", "b", "c"], 80)
    r = ot_stability_report(pool, n=24, labels=labels, n_repeats=4, seed=3)
    assert sorted(r.per_tau) == [0.02, 0.05, 0.2]
    t = r.per_tau[0.05]
    assert set(t.per_class) == {"a", "b", "c"}
    assert t.ci_low <= t.mean <= t.ci_high
    assert t.mean == pytest.approx(np.mean(list(t.per_class.values())), rel=1e-9)
    again = ot_stability(pool, n=24, labels=labels, n_repeats=4, seed=3, tau=0.05)
    assert again == pytest.approx(t.mean, rel=1e-6)
    # larger eps smooths the maps towards the target mean: more stable
    assert r.per_tau[0.2].mean < r.per_tau[0.02].mean
    d = r.to_dict()
    assert set(d["per_tau"]) == {"0.02", "0.05", "0.2"}


def test_blocks_are_batched_locations_and_block_weighting():
    g = torch.Generator().manual_seed(4)
    per_loc = torch.randn(150, 3, 4, generator=g)
    glob = torch.randn(150, 6, generator=g)
    kw = dict(n=30, n_repeats=2, seed=5, taus=(0.05,), dtype="float64", tol=1e-7)
    r = ot_stability_report({"m/per_loc": per_loc, "m/global_mean": glob}, **kw)
    singles = [ot_stability_report(per_loc[:, i], **kw).value() for i in range(3)]
    t = r.per_tau[0.05]
    assert t.per_block["m/per_loc"] == pytest.approx(np.mean(singles), rel=1e-6)
    g_only = ot_stability_report(glob, **kw).value()
    assert t.per_block["m/global_mean"] == pytest.approx(g_only, rel=1e-6)
    # each block weighs the same by default; "problems" weighs a block by its sub-problems
    assert t.mean == pytest.approx((np.mean(singles) + g_only) / 2, rel=1e-6)
    assert r.weights == {"m/per_loc": 1, "m/global_mean": 1}
    rp = ot_stability_report({"m/per_loc": per_loc, "m/global_mean": glob},
                             block_weighting="problems", **kw)
    assert rp.per_tau[0.05].mean == pytest.approx((3 * np.mean(singles) + g_only) / 4, rel=1e-6)
    assert rp.weights == {"m/per_loc": 3, "m/global_mean": 1}
    with pytest.raises(ValueError, match="block_weighting"):
        ot_stability_report(glob, block_weighting="count", **kw)


def test_paper_recipe_and_user_source():
    pool = _pool(6, n=200)
    r = ot_stability_report(pool, n=32, recipe="paper", n_repeats=2, taus=(0.05,))
    assert r.per_tau[0.05].max_iterations == 4
    src = torch.randn(50, 16)
    labels = np.arange(200) % 2
    v = ot_stability(pool, n=32, source=src, labels=labels, source_labels=np.arange(50) % 2,
                     n_source=20, n_repeats=2)
    assert 0 < v < 2


def test_curve_slope_is_negative():
    c = stability_curve(_pool(3, n=400), tau=0.05, n_repeats=2)
    assert c.ns[0] == 8 and len(c.ns) >= 4
    assert c.slope < 0 and c.dim_hint > 0
    assert c.mean[0] > c.mean[-1]


def test_bad_inputs():
    pool = _pool(4, n=100)
    with pytest.raises(ValueError, match="too few samples"):
        ot_stability(pool, n=60)
    with pytest.raises(ValueError, match="class '1.0'"):
        ot_stability(pool, n=20, labels=np.r_[np.zeros(90), np.ones(10)])
    with pytest.raises(ValueError, match="NaN"):
        ot_stability(torch.full((100, 3), float("nan")), n=10)
    with pytest.raises(ValueError, match="source_labels"):
        ot_stability(pool, n=10, labels=np.arange(100) % 2, source=torch.randn(30, 16))
    with pytest.raises(ValueError, match="recipe"):
        ot_stability(pool, n=10, recipe="fast")
    with pytest.raises(ValueError, match="ns: expected at least one"):
        stability_curve(pool, ns=[])
    with pytest.raises(ValueError, match="labels"):
        ot_stability(pool, n=10, labels=np.zeros(7))


def test_bootstrap_interval():
    lo, hi = bootstrap_interval([1.0, 2.0, 3.0, 4.0], n_boot=2000)
    assert 1.0 <= lo < 2.5 < hi <= 4.0
    assert bootstrap_interval([0.3]) == (0.3, 0.3)


def test_curve_at_the_ranking_n_is_the_rankings_value():
    """Per-location blocks with a seeded subset of locations: the curve's point at n is the
    Delta_OT the ranking computed there (same seed: same locations, same draws)."""
    pool = {"loc": _pool(3, n=240).reshape(240, 4, 4), "glob": _pool(2, n=240, seed=1)}
    labels = np.arange(240) % 2
    kw = {"labels": labels, "seed": 3, "n_repeats": 2, "max_sub_problems": 2}
    table = ot_stability_report(pool, n=16, taus=(0.05,), **kw)
    recomputed = stability_curve(pool, ns=[8, 16], tau=0.05, **kw)
    assert recomputed.mean[1] == pytest.approx(table.per_tau[0.05].mean, rel=1e-6)
    c = stability_curve(pool, ns=[8, 16], tau=0.05, known={16: table}, **{**kw, "n_repeats": 1})
    assert c.mean[1] == table.per_tau[0.05].mean and c.draws == [1, 2]
    assert (c.ci_low[1], c.ci_high[1]) == (table.per_tau[0.05].ci_low, table.per_tau[0.05].ci_high)
    with pytest.raises(ValueError, match="no Delta_OT at tau=0.2"):
        stability_curve(pool, ns=[16], tau=0.2, known={16: table}, **kw)
