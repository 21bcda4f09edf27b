"""Kernel-ridge alignment R^2 against scikit-learn's KernelRidge and r2_score."""

import numpy as np
import pytest
import torch
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics import r2_score

from featsel.diagnostics import alignment, alignment_r2, fit_kernel_ridge
from featsel.diagnostics.alignment import _loo_select


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_torch_solve_matches_sklearn_kernel_ridge():
    rng = np.random.default_rng(0)
    x = _unit(rng.normal(size=(300, 12)))
    y = _unit(rng.normal(size=(300, 5)) + x[:, :5])
    ybar = y[:200].mean(0)
    ref = KernelRidge(kernel="rbf", gamma=0.8, alpha=0.05).fit(x[:200], y[:200] - ybar)
    want = ref.predict(x[200:]) + ybar
    got = fit_kernel_ridge(torch.from_numpy(x[:200]), torch.from_numpy(y[:200]),
                           torch.from_numpy(x[200:]), gamma=0.8, ridge=0.05).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def test_heldout_r2_matches_sklearn_pipeline():
    rng = np.random.default_rng(1)
    phi = rng.normal(size=(250, 10))
    psi = np.tanh(phi @ rng.normal(size=(10, 6)))
    res = alignment(torch.from_numpy(phi), torch.from_numpy(psi), n_train=180, gamma=1.3,
                    ridge=0.01, seed=3)
    perm = torch.randperm(250, generator=torch.Generator().manual_seed(3)).numpy()
    tr, te = perm[:180], perm[180:]
    x, y = _unit(phi), _unit(psi)
    ybar = y[tr].mean(0)
    pred = KernelRidge(kernel="rbf", gamma=1.3, alpha=0.01).fit(x[tr], y[tr] - ybar).predict(x[te])
    want = r2_score(y[te], pred + ybar, multioutput="variance_weighted")
    assert res.r2 == pytest.approx(want, abs=1e-10)
    assert (res.n_train, res.n_test) == (180, 70)


def test_closed_form_loo_equals_brute_force():
    rng = np.random.default_rng(2)
    x = torch.from_numpy(_unit(rng.normal(size=(40, 4))))
    y = torch.from_numpy(rng.normal(size=(40, 3)))
    _, _, table = _loo_select(x, y, [0.7], [0.1])
    yc = (y - y.mean(0)).numpy()
    errs = []
    for i in range(40):
        keep = np.arange(40) != i
        m = KernelRidge(kernel="rbf", gamma=0.7, alpha=0.1).fit(x.numpy()[keep], yc[keep])
        errs.append((m.predict(x.numpy()[i : i + 1])[0] - yc[i]) ** 2)
    assert table["gamma=0.7,ridge=0.1"] == pytest.approx(np.mean(errs), rel=1e-9)


def test_linear_map_near_one_independent_near_zero():
    g = torch.Generator().manual_seed(3)
    phi = torch.randn(500, 10, generator=g)
    assert alignment_r2(phi, phi @ torch.randn(10, 20, generator=g)) > 0.95
    assert abs(alignment_r2(phi, torch.randn(500, 20, generator=g))) < 0.1


def test_bad_inputs():
    x = torch.randn(100, 4)
    with pytest.raises(ValueError, match="same samples"):
        alignment_r2(x, torch.randn(90, 3))
    with pytest.raises(ValueError, match="NaN"):
        alignment_r2(x, torch.full((100, 3), float("nan")))
    with pytest.raises(ValueError, match="all zero"):
        alignment_r2(x, torch.zeros(100, 3))
    with pytest.raises(ValueError, match="at least"):
        alignment_r2(x[:20], x[:20])
    with pytest.raises(ValueError, match="unknown option"):
        alignment_r2(x, x, bandwidth=2.0)


def test_table_shares_eigendecompositions_and_matches_single_fits():
    from featsel.diagnostics import alignment_table

    g = torch.Generator().manual_seed(4)
    phi = torch.randn(200, 6, generator=g, dtype=torch.float64)
    psis = {"lin": phi @ torch.randn(6, 4, generator=g, dtype=torch.float64),
            "noise": torch.randn(200, 3, generator=g, dtype=torch.float64)}
    table = alignment_table(phi, psis, seed=2)
    for name, psi in psis.items():
        single = alignment(phi, psi, seed=2)
        assert (table[name].gamma, table[name].ridge) == (single.gamma, single.ridge)
        assert table[name].r2 == pytest.approx(single.r2, abs=1e-8)
