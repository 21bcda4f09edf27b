"""The inversion share (featsel/diagnostics/inversion.py): its closed form for linear
featurizers (the share of the pairs' differences in the null space, from SciPy's null_space),
0 for an injective featurizer, exactly 1 for the controls, invariance to the features' scale,
and one clear error per bad input."""

import dataclasses

import numpy as np
import pytest
import scipy.linalg
import torch
from diagnostics_helpers import LinearFeaturizer as _Linear
from diagnostics_helpers import clusters
from torch import Tensor

from featsel.diagnostics.candidate import CandidateData
from featsel.diagnostics.criteria import CRITERIA
from featsel.diagnostics.inversion import inversion_share
from featsel.features import create_featurizer
from featsel.features.base import Featurizer


def _clusters():
    return clusters(n_per=48, k=3, d=6)


class _Detached(Featurizer):
    """Claims to be differentiable but passes no gradient (a hash-like featurizer)."""

    def __init__(self):
        super().__init__(None, ["det"])

    def forward(self, u: Tensor) -> list[Tensor]:
        return [u.detach() ** 2]


def _pairs(u: Tensor, lab: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The module's draw, restated: per class a permutation, its first n sources, next n targets."""
    rng = np.random.default_rng(seed)
    src, tgt = [], []
    for c in np.unique(lab):
        p = rng.permutation(np.flatnonzero(lab == c))[: 2 * n]
        src.append(p[:n])
        tgt.append(p[n:])
    return np.concatenate(src), np.concatenate(tgt)


def test_linear_featurizer_matches_the_null_space_closed_form():
    # the L-BFGS iterates stay in y' + row(W): x = y + P_null(W) (y' - y) at convergence
    u, lab = _clusters()
    w = torch.randn(2, 6, generator=torch.Generator().manual_seed(3))
    r = inversion_share(_Linear(w), u, n=16, labels=lab, seed=5)
    src, tgt = _pairs(u, lab, 16, 5)
    null = scipy.linalg.null_space(w.double().numpy())  # (6, 4), orthonormal
    diff = (u[src] - u[tgt]).double().numpy()
    for k in range(3):
        dk = diff[16 * k:16 * (k + 1)]
        want = float(((dk @ null) ** 2).sum() / (dk ** 2).sum())
        assert r.per_class[str(k)] == pytest.approx(want, abs=2e-4), k
    assert r.mean == round(float(np.mean(list(r.per_class.values()))), 3)
    assert r.moved and r.final_loss < 1e-6
    assert r.ci_low <= r.mean <= r.ci_high


def test_injective_featurizer_reaches_the_targets():
    u, lab = _clusters()
    r = inversion_share(create_featurizer("identity", in_shape=(6,)), u, n=16, labels=lab)
    assert r.mean == pytest.approx(0.0, abs=1e-6)
    # a nonlinear injective map (an invertible mix, then an increasing elementwise function)
    w = torch.randn(6, 6, generator=torch.Generator().manual_seed(1)) + 3 * torch.eye(6)

    class _Bent(_Linear):
        def forward(self, u: Tensor) -> list[Tensor]:
            v = u @ self.w.T
            return [v + 2 * torch.tanh(v)]

    r = inversion_share(_Bent(w), u, n=16, labels=lab)
    assert r.mean <= 1e-3 and r.final_loss < 1e-4  # float32, 50 iterations


def test_feature_scale_does_not_matter():
    u, lab = _clusters()
    w = torch.randn(3, 6, generator=torch.Generator().manual_seed(2))
    a = inversion_share(_Linear(w), u, n=16, labels=lab, seed=1)
    b = inversion_share(_Linear(1000 * w), u, n=16, labels=lab, seed=1)
    assert a.mean == pytest.approx(b.mean, abs=1e-4)


def test_controls_and_gradient_free_featurizers_are_exactly_one():
    u, lab = _clusters()
    for f in (create_featurizer("noise:dim=1", in_shape=(6,)),
              create_featurizer("constant", in_shape=(6,)), _Detached()):
        ticks: list[int] = []
        r = inversion_share(f, u, n=16, labels=lab, steps=3,
                            on_draw=lambda i, n, t=ticks: t.append(i))
        assert not r.moved and r.mean == 1.0 and r.ci_low == r.ci_high == 1.0
        assert ticks == [1, 2, 3, 4, 5, 6]


def test_without_labels_one_group_and_small_classes_left_out():
    u, lab = _clusters()
    f = create_featurizer("identity", in_shape=(6,))
    r = inversion_share(f, u, n=16, steps=5)
    assert set(r.per_class) == {"all"}
    lab = lab.copy()
    lab[:40] = 1  # class 0 keeps 8 samples < 2n
    with pytest.warns(UserWarning, match="left out"):
        r = inversion_share(f, u, n=16, labels=lab, steps=5)
    assert r.skipped_classes == {"0": 8} and set(r.per_class) == {"1", "2"}


def test_bad_input_is_one_clear_error():
    u, lab = _clusters()
    f = create_featurizer("identity", in_shape=(6,))
    with pytest.raises(ValueError, match="n: expected >= 1"):
        inversion_share(f, u, n=0)
    with pytest.raises(ValueError, match="inversion steps: expected >= 1"):
        inversion_share(f, u, n=4, steps=0)
    with pytest.raises(ValueError, match="inversion history"):
        inversion_share(f, u, n=4, history=0)
    with pytest.raises(ValueError, match=r"labels: expected shape \(144,\), got \(5,\)"):
        inversion_share(f, u, n=4, labels=lab[:5])
    with pytest.raises(ValueError, match="every class has fewer than 200 samples"):
        inversion_share(f, u, n=100, labels=lab)


def test_criterion_computed_when_it_ranks_or_asked_and_needs_the_featurizer():
    from featsel.scoring.config import ScoreConfig, check_config

    crit = CRITERIA["inversion_share"]
    # the default criterion since addendum 13, so on by default; under another, off unless asked
    assert crit.lower_is_better and crit.enabled(ScoreConfig())
    assert not crit.enabled(ScoreConfig(criterion="null_share"))
    cfg = dataclasses.replace(ScoreConfig(criterion="null_share"), inversion=True,
                              inversion_steps=4)
    assert crit.enabled(cfg) and crit.draws(cfg) == 8
    # the criterion that ranks is always computed, asked for or not
    assert crit.enabled(dataclasses.replace(ScoreConfig(), criterion="inversion_share"))
    assert CRITERIA["flow_fidelity"].enabled(ScoreConfig(criterion="flow_fidelity"))
    u, lab = _clusters()
    data = CandidateData(spec="identity", blocks={}, vector=u, u=u, labels=lab, n=16, seed=0,
                         settings=cfg)
    assert crit.compute(data) is None
    with pytest.raises(ValueError, match="inversion_steps: expected >= 1"):
        check_config(dataclasses.replace(cfg, inversion_steps=0))
