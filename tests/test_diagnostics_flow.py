"""The particle-flow criterion (featsel/diagnostics/flow.py): the energy distance against SciPy
and its closed form, and the flow's exact properties (null space never moves, controls give
exactly 1, invariance to the features' scale)."""

import numpy as np
import pytest
import scipy.spatial.distance as ssd
import scipy.stats
import torch
from diagnostics_helpers import LinearFeaturizer as _Linear
from diagnostics_helpers import clusters as _clusters

from featsel.diagnostics.candidate import CandidateData
from featsel.diagnostics.criteria import CRITERIA
from featsel.diagnostics.flow import energy_distance, particle_flow
from featsel.features import create_featurizer


def test_energy_distance_matches_scipy_in_1d():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=37), rng.normal(0.5, 2.0, size=53)
    want = scipy.stats.energy_distance(x, y) ** 2  # scipy: sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|)
    got = energy_distance(torch.tensor(x)[:, None], torch.tensor(y)[:, None])
    assert float(got) == pytest.approx(want, rel=1e-10)


def test_energy_distance_matches_pairwise_formula():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(20, 5)), rng.normal(size=(30, 5)) + 1
    want = (2 * ssd.cdist(x, y).mean() - ssd.cdist(x, x).mean() - ssd.cdist(y, y).mean())
    got = energy_distance(torch.tensor(x), torch.tensor(y))
    assert float(got) == pytest.approx(want, rel=1e-12)
    assert float(energy_distance(torch.tensor(x), torch.tensor(x))) == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError, match="energy_distance"):
        energy_distance(torch.zeros(3, 2), torch.zeros(3, 4))


def test_identity_flow_gets_much_closer():
    u, lab = _clusters()
    f = create_featurizer("identity", in_shape=(4,))
    r = particle_flow(f, u, n=16, labels=lab, seed=0, steps=60)
    assert r.moved and set(r.per_class) == {"0", "1"}
    assert r.mean < 0.3, r.per_class
    assert r.ci_low <= r.mean <= r.ci_high
    assert all(r.end[c] < r.start[c] for c in r.per_class)


def test_null_space_never_moves():
    # features see only coordinates 0 and 1: the particles' coordinates 2 and 3 keep their start
    u, lab = _clusters()
    w = torch.zeros(2, 4)
    w[0, 0] = w[1, 1] = 1.0
    r = particle_flow(_Linear(w), u, n=16, labels=lab, seed=0, steps=30, keep_particles=True)
    x0, xk = r.particles
    assert torch.equal(xk[..., 2:], x0[..., 2:])
    assert (xk[..., :2] - x0[..., :2]).abs().max() > 0.5
    full = particle_flow(create_featurizer("identity", in_shape=(4,)), u, n=16, labels=lab,
                         seed=0, steps=30)
    assert full.mean < r.mean  # what the features do not see stays noise


def test_feature_scale_does_not_matter():
    # block_scale divides the features' scale out, Adam the gradient's: same particles
    u, lab = _clusters()
    w = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    a = particle_flow(_Linear(w), u, n=16, labels=lab, seed=1, steps=20, keep_particles=True)
    b = particle_flow(_Linear(100 * w), u, n=16, labels=lab, seed=1, steps=20,
                      keep_particles=True)
    torch.testing.assert_close(a.particles[1], b.particles[1], rtol=0, atol=1e-4)
    assert a.mean == pytest.approx(b.mean, abs=1e-4)


def test_controls_are_exactly_one():
    u, lab = _clusters()
    for spec in ("noise:dim=1", "noise:dim=4", "constant"):
        f = create_featurizer(spec, in_shape=(4,))
        r = particle_flow(f, u, n=16, labels=lab, seed=0)
        assert not r.moved and r.mean == 1.0 and r.ci_low == r.ci_high == 1.0


def test_small_classes_left_out_and_bad_input():
    u, lab = _clusters()
    lab = lab.copy()
    lab[:50] = 2  # class 0 keeps 14 samples < 2n
    f = create_featurizer("identity", in_shape=(4,))
    with pytest.warns(UserWarning, match="left out"):
        r = particle_flow(f, u, n=16, labels=lab, steps=2)
    assert r.skipped_classes == {"0": 14} and set(r.per_class) == {"1", "2"}
    with pytest.raises(ValueError, match="n: expected"):
        particle_flow(f, u, n=1)
    with pytest.raises(ValueError, match="flow steps"):
        particle_flow(f, u, n=4, steps=0)
    with pytest.raises(ValueError, match=r"labels: expected shape \(128,\), got \(5,\)"):
        particle_flow(f, u, n=4, labels=lab[:5])
    with pytest.raises(ValueError, match="every class has fewer than 200 samples"):
        particle_flow(f, u, n=100, labels=lab)


def test_criterion_needs_the_featurizer():
    u, lab = _clusters()
    data = CandidateData(spec="identity", blocks={}, vector=u, u=u, labels=lab, n=16, seed=0,
                         settings=None)
    assert CRITERIA["flow_fidelity"].compute(data) is None
    assert CRITERIA["flow_fidelity"].lower_is_better


def test_each_criterion_reports_the_draws_it_declares():
    # the score's progress bar is sized by Criterion.draws: every criterion must report exactly
    # that many draws through data.on_draw (none for the cheap ones)
    import dataclasses

    from featsel.scoring.config import ScoreConfig

    u, lab = _clusters()
    cfg = dataclasses.replace(ScoreConfig(), n_repeats=2, transport_repeats=3, flow=True,
                              flow_steps=4)
    f = create_featurizer("identity", in_shape=(4,))
    for name, crit in CRITERIA.items():
        ticks: list[str] = []
        data = CandidateData(spec="identity", blocks={"identity/global": u.unsqueeze(1)},
                             vector=u, u=u, labels=lab, n=16, seed=0, settings=cfg, featurizer=f,
                             draw_hook=lambda stage, t=ticks: (lambda i, n: t.append(stage)))
        crit.compute(data)
        assert len(ticks) == crit.draws(cfg), name
