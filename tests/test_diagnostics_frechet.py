"""Fréchet distance against closed forms and SciPy's sqrtm; statistics I/O; streaming + DDP."""

import os

import numpy as np
import pytest
import scipy.linalg
import torch

from featsel.diagnostics import (
    FrechetReference,
    FrechetStatistics,
    fidelity_metrics,
    frechet_distance,
    frechet_distance_from_statistics,
    gaussian_statistics,
    load_statistics,
    save_statistics,
)


def _scipy_fd(mu1, s1, mu2, s2):
    """pytorch-fid's route: sqrtm of S1 S2 (reference only)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


def _random_spd(d, rng, cond=50.0):
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q * np.geomspace(1.0, 1.0 / cond, d)) @ q.T


def test_diagonal_gaussians_closed_form():
    a, b = np.array([1.0, 4.0, 9.0, 0.0]), np.array([4.0, 1.0, 0.0, 0.0])  # singular on purpose
    mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.zeros(4)
    want = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    got = frechet_distance_from_statistics(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(want, rel=1e-12)
    assert FrechetReference(mu1, np.diag(a)).distance(mu2, np.diag(b)) == pytest.approx(want, rel=1e-12)


def test_matches_scipy_sqrtm_full_rank():
    rng = np.random.default_rng(0)
    d = 64
    s1, s2 = _random_spd(d, rng), 2.0 * _random_spd(d, rng)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    want = _scipy_fd(mu1, s1, mu2, s2)
    assert frechet_distance_from_statistics(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-10)
    ref = FrechetReference(mu1, s1)
    assert ref.distance(mu2, s2) == pytest.approx(want, rel=1e-10)
    # the reference's factor is reused: a second comparison does not recompute it
    factor = ref.factor
    ref.distance(mu1, s1)
    assert ref.factor is factor
    assert ref.distance(mu1, s1) == pytest.approx(0.0, abs=1e-9)


def test_feature_routes_agree_and_match_scipy():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(400, 16))
    b = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 1.0
    want = _scipy_fd(*gaussian_statistics(a), *gaussian_statistics(b))
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(want, rel=1e-10)
    assert frechet_distance(a.astype(np.float32), b.astype(np.float32)) == pytest.approx(want, rel=1e-5)


def test_singular_covariances_are_finite_and_consistent():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(10, 50))  # n < D: rank-9 covariances
    b = rng.normal(size=(12, 50)) + 0.3
    fd_feat = frechet_distance(a, b)  # nuclear-norm route
    fd_cov = frechet_distance_from_statistics(*gaussian_statistics(a), *gaussian_statistics(b))
    assert np.isfinite(fd_feat) and fd_feat > 0
    assert fd_feat == pytest.approx(fd_cov, rel=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # a singular reference against a full-rank covariance: the Cholesky route of the second
    # argument (the singular one takes the general products) agrees with the feature route
    c = rng.normal(size=(200, 50)) * 0.7
    fd_chol = frechet_distance_from_statistics(*gaussian_statistics(a), *gaussian_statistics(c))
    assert fd_chol == pytest.approx(frechet_distance(a, c), rel=1e-9)


def test_statistics_npz_roundtrip(tmp_path):
    rng = np.random.default_rng(3)
    mu, sigma = gaussian_statistics(rng.normal(size=(50, 5)))
    p = save_statistics(tmp_path / "sub" / "ref.npz", mu, sigma)
    with np.load(p) as z:
        assert set(z.files) == {"mu", "sigma"}
    mu2, sigma2 = load_statistics(p)
    np.testing.assert_array_equal(mu, mu2)
    np.testing.assert_array_equal(sigma, sigma2)
    assert not [f for f in os.listdir(p.parent) if f.endswith(".tmp")]
    assert FrechetReference.from_file(p).distance(mu, sigma) == pytest.approx(0.0, abs=1e-12)
    np.savez(tmp_path / "bad.npz", mean=mu)
    with pytest.raises(ValueError, match="mu"):
        load_statistics(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        load_statistics(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match=".npz"):
        save_statistics(tmp_path / "x.txt", mu, sigma)


def test_bad_inputs():
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(x, torch.full((10, 3), float("nan")))
    with pytest.raises(ValueError, match="dimensions"):
        frechet_distance(x, torch.randn(10, 4))
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(x[:1], x)
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(torch.randn(10), x)


def test_streaming_statistics_equal_batch():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(257, 6)) * 100 + 1e4  # large offset: checks there is no cancellation
    st = FrechetStatistics()
    for chunk in np.array_split(x, 7):
        st.update(torch.from_numpy(chunk))
    mu, sigma = st.compute()
    mu_ref, sigma_ref = np.mean(x, 0), np.cov(x, rowvar=False)
    np.testing.assert_allclose(mu, mu_ref, rtol=1e-12)
    np.testing.assert_allclose(sigma, sigma_ref, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="dim"):
        st.update(torch.zeros(3, 5))


def _ddp_worker(rank, world, init_file, chunks, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    st = FrechetStatistics(dim=chunks[0].shape[1])
    st.update(torch.from_numpy(chunks[rank]))
    st.sync()
    mu, sigma = st.compute()
    np.savez(os.path.join(out_dir, f"r{rank}.npz"), mu=mu, sigma=sigma, n=st.count)
    dist.destroy_process_group()


def test_sync_across_ranks(tmp_path):
    import torch.multiprocessing as mp

    rng = np.random.default_rng(5)
    x = rng.normal(size=(90, 4)) + 3.0
    chunks = [x[:30], x[30:]]  # unequal shards
    mp.start_processes(_ddp_worker, args=(2, str(tmp_path / "init"), chunks, str(tmp_path)),
                       nprocs=2, start_method="fork")
    for r in range(2):
        with np.load(tmp_path / f"r{r}.npz") as z:
            assert int(z["n"]) == 90
            np.testing.assert_allclose(z["mu"], x.mean(0), rtol=1e-12)
            np.testing.assert_allclose(z["sigma"], np.cov(x, rowvar=False), rtol=1e-10)


def test_torch_fidelity_feature_metrics():
    g = torch.Generator().manual_seed(6)
    real = torch.randn(300, 8, generator=g, dtype=torch.float64)
    fake = torch.randn(300, 8, generator=g, dtype=torch.float64) * 1.5 + 0.5
    m = fidelity_metrics(fake, real, kid_subset_size=100, kid_subsets=20)
    assert m["fid"] == pytest.approx(frechet_distance(fake, real), rel=1e-8)
    assert set(m) >= {"kid_mean", "kid_std", "precision", "recall", "f_score"}
    same = fidelity_metrics(real, real, kid_subset_size=100, kid_subsets=20)
    assert abs(same["kid_mean"]) < m["kid_mean"]
    assert same["precision"] == 1.0 and same["recall"] == 1.0
