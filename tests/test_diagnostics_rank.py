"""Effective rank and participation ratio against matrices with known spectra."""

import math

import numpy as np
import pytest
import torch

from featsel.diagnostics import block_effective_rank, effective_rank, participation_ratio, spectrum


def _with_spectrum(s, n=200, d=30, seed=0):
    """A centred (n, d) matrix whose singular values are exactly s (len k <= d)."""
    g = torch.Generator().manual_seed(seed)
    k = len(s)
    a = torch.randn(n, k, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(a - a.mean(0))  # columns orthonormal and orthogonal to ones
    v, _ = torch.linalg.qr(torch.randn(d, k, generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.as_tensor(s, dtype=torch.float64)) @ v.T


def test_known_spectrum_closed_form():
    s = np.array([5.0, 3.0, 1.0, 0.5, 0.1])
    h = _with_spectrum(s) + 7.0  # a mean shift must not matter
    p = s / s.sum()
    want = math.exp(-(p * np.log(p)).sum())
    assert effective_rank(h) == pytest.approx(want, rel=1e-10)
    lam = s**2
    assert participation_ratio(h) == pytest.approx(lam.sum() ** 2 / (lam**2).sum(), rel=1e-10)
    np.testing.assert_allclose(spectrum(h)[:5].numpy(), s, rtol=1e-10)


def test_flat_spectrum_gives_its_rank_and_scale_invariance():
    h = _with_spectrum([2.0] * 7)
    assert effective_rank(h) == pytest.approx(7.0, rel=1e-10)
    assert participation_ratio(h) == pytest.approx(7.0, rel=1e-10)
    assert effective_rank(1e3 * h) == pytest.approx(7.0, rel=1e-10)
    assert effective_rank(torch.ones(10, 4)) == 0.0


def test_block_weighting():
    g = torch.Generator().manual_seed(1)
    per_loc = torch.randn(100, 4, 6, generator=g)  # 4 locations
    glob = _with_spectrum([1.0, 1.0, 1.0], n=100, d=6)
    r = block_effective_rank({"k/per_loc": per_loc, "k/global_mean": glob})
    locs = [effective_rank(per_loc[:, i]) for i in range(4)]
    assert r.per_block["k/per_loc"] == pytest.approx(np.mean(locs), rel=1e-10)
    assert r.per_block["k/global_mean"] == pytest.approx(3.0, rel=1e-10)
    # default: each block weighs the same, so 1-d per-location problems cannot dominate
    assert r.weights == {"k/per_loc": 1, "k/global_mean": 1}
    assert r.effective_rank == pytest.approx((np.mean(locs) + 3.0) / 2, rel=1e-10)
    rp = block_effective_rank({"k/per_loc": per_loc, "k/global_mean": glob}, weighting="problems")
    assert rp.weights == {"k/per_loc": 4, "k/global_mean": 1}
    assert rp.effective_rank == pytest.approx((4 * np.mean(locs) + 3.0) / 5, rel=1e-10)
    with pytest.raises(ValueError, match="weighting"):
        block_effective_rank(glob, weighting="count")
    assert sum(r.spectra["k/global_mean"]) == pytest.approx(1.0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="NaN"):
        effective_rank(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="shape"):
        effective_rank(torch.zeros(5))
    with pytest.raises(ValueError, match="at least 2"):
        effective_rank(torch.zeros(1, 3))
