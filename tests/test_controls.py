"""Controls (noise, constant), their place in the ranking, and the draws' minibatch size."""

import numpy as np
import pytest
import torch
from scipy import stats

from featsel.features import create_featurizer
from featsel.features.controls import is_control
from featsel.ranking import CandidateScores, control_violations, rank_candidates
from featsel.score import choose_n


def test_noise_is_a_deterministic_gaussian_function_of_each_sample():
    g = torch.Generator().manual_seed(0)
    u = torch.randn(3000, 2, 4, 4, generator=g)
    f = create_featurizer("noise:dim=3", in_shape=(2, 4, 4))
    z = f(u)[0]
    assert z.shape == (3000, 3)
    # the same sample gets the same features, whatever the batch around it
    assert torch.equal(f(u[100:200])[0], z[100:200])
    assert torch.equal(f(u.flip(0))[0], z.flip(0))
    # N(0, 1), independent coordinates, independent of the data (Kolmogorov-Smirnov, corr.)
    assert stats.kstest(z.numpy().ravel(), "norm").pvalue > 1e-3
    c = np.corrcoef(np.c_[z.numpy(), u.flatten(1)[:, :4].numpy()].T)
    assert np.abs(c[np.triu_indices_from(c, 1)]).max() < 0.08
    # another seed, other features; equal samples, equal features
    z2 = create_featurizer("noise:dim=3,seed=1", in_shape=(2, 4, 4))(u)[0]
    assert not torch.allclose(z, z2)
    same = f(torch.stack([u[0], u[0]]))[0]
    assert torch.equal(same[0], same[1])
    assert not f.differentiable


def test_constant_and_bad_specs():
    z = create_featurizer("constant:dim=2", in_shape=(5,))(torch.randn(7, 5))[0]
    assert torch.equal(z, torch.zeros(7, 2))
    for spec in ("noise:dim=0", "constant:dim=-1"):
        with pytest.raises(ValueError, match="dim must be >= 1"):
            create_featurizer(spec, in_shape=(5,))
    with pytest.raises(ValueError, match="option dim must be int"):
        create_featurizer("noise:dim=two", in_shape=(5,))
    assert is_control("noise:dim=4") and is_control("constant") and not is_control("pca:dim=4")


def _c(name, v, half=0.01, control=False):
    return CandidateScores(name, {}, criteria={"crit": {"mean": v, "ci_low": v - half,
                                                        "ci_high": v + half}}, control=control)


def test_ranking_never_recommends_a_control():
    good = [_c("pca", 0.4), _c("vit", 0.6), _c("noise:dim=1", 0.99, control=True)]
    r = rank_candidates(good, criterion="crit", lower_is_better=True)
    assert r.valid and r.recommended == "pca" and r.order[-1] == "noise:dim=1"
    assert "control" in r.candidates[-1].explanation
    bad = [_c("pca", 0.4), _c("vit", 0.6), _c("noise:dim=1", 0.1, control=True)]
    r = rank_candidates(bad, criterion="crit", lower_is_better=True)
    assert r.order[0] == "noise:dim=1"  # shown where it lands ...
    assert not r.valid and r.recommended is None  # ... but nothing is recommended
    assert "noise:dim=1 above pca" in r.invalid_reason
    d = r.to_dict()
    assert d["controls"] == ["noise:dim=1"] and d["recommended"] is None
    # higher-is-better criteria are oriented
    assert control_violations({"a": 3.0, "n": 5.0}, ["n"], lower_is_better=False) == [("n", "a")]
    assert control_violations({"a": 3.0, "n": None}, ["n"], lower_is_better=False) == []
    with pytest.raises(ValueError, match="not computed"):
        rank_candidates([_c("a", 0.1), CandidateScores("b", {})], criterion="crit")


def test_choose_n_leaves_small_classes_out():
    pbmc = [240, 129, 95, 68, 54, 43, 31, 19, 13, 8]  # pbmc68k's cell types
    n, left = choose_n(pbmc)
    assert n == 16 and [pbmc[i] for i in left] == [31, 19, 13, 8]  # median 48.5 -> 16
    assert choose_n([180] * 10) == (60, [])
    assert choose_n([10000] * 3) == (64, [])
    n, left = choose_n([40, 12, 12, 12])  # the median allows only 4: N_MIN where one class can
    assert n == 16 and left == [1, 2, 3]
    assert choose_n([10, 9]) == (5, [1])
    assert choose_n([100, 30], n=20) == (20, [1])
    with pytest.raises(ValueError, match="--n: 60 is too large"):
        choose_n([100, 30], n=60)
    with pytest.raises(ValueError, match="too few samples"):
        choose_n([3, 2])
