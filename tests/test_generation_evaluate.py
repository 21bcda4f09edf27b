"""generation.evaluate: the conditional FD and the labels of the unconditional set."""

import pytest
import torch

from featsel.diagnostics.frechet import frechet_distance
from generation.evaluate import ClassJudge, conditional_fd, plan_labels, proportional_counts


def _clouds(sizes, dim, shift, seed):
    g = torch.Generator().manual_seed(seed)
    x = [torch.randn(n, dim, generator=g, dtype=torch.float64) * (1 + 0.3 * c) + shift * c
         for c, n in enumerate(sizes)]
    return torch.cat(x), torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


def test_conditional_fd_is_the_mean_of_per_class_frechet_distances():
    dim = 4
    # class 0: both clouds larger than dim (reference route); class 1: 3 generated (feature
    # route); class 2: one real sample (skipped); class 3: generated only (skipped)
    gen, gl = _clouds([10, 3, 6, 5], dim, 0.5, seed=0)
    real, rl = _clouds([12, 30, 1], dim, 0.7, seed=1)
    refs = {}
    out = conditional_fd(gen, gl, real, rl, refs=refs)
    want = {str(c): frechet_distance(gen[gl == c], real[rl == c]) for c in (0, 1)}
    assert set(out["per_class"]) == {"0", "1"}
    for c, v in want.items():
        assert out["per_class"][c] == pytest.approx(v, rel=1e-10, abs=1e-12)
    assert out["cond_fd"] == pytest.approx(sum(want.values()) / 2, rel=1e-10)
    assert out["skipped"] == [{"class": 2, "n_real": 1, "n_generated": 6},
                              {"class": 3, "n_real": 0, "n_generated": 5}]
    # the cached real reference of class 0 serves a second generated set (the next alpha)
    assert ("class", 0) in refs
    gen2 = gen + 0.25
    again = conditional_fd(gen2, gl, real, rl, refs=refs)
    assert again["per_class"]["0"] == pytest.approx(
        frechet_distance(gen2[gl == 0], real[rl == 0]), rel=1e-10)


def test_proportional_counts_largest_remainder():
    # quotas 30 * (50, 30, 15, 4, 1, 0) / 100 = 15, 9, 4.5, 1.2, 0.3, 0: one extra to class 2
    assert proportional_counts([50, 30, 15, 4, 1, 0], 30) == [15, 9, 5, 1, 0, 0]
    assert proportional_counts([1, 1, 1], 2) == [1, 1, 0]          # ties: lower index first
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        n = torch.randint(0, 500, (7,), generator=g).tolist()
        if sum(n) == 0:
            continue
        c = proportional_counts(n, 70)
        assert sum(c) == 70
        assert all(abs(ci - 70 * ni / sum(n)) < 1 for ci, ni in zip(c, n))
    with pytest.raises(ValueError, match="class_counts"):
        proportional_counts([0, 0], 4)


def test_unconditional_labels_follow_class_proportions_and_share_one_generation():
    counts = [50, 30, 15, 4, 1, 0]
    real_labels = torch.repeat_interleave(torch.arange(6), torch.tensor(counts))
    p = plan_labels(real_labels[torch.randperm(100)], 6, 5)
    unc = torch.bincount(p["labels"][p["uncond_index"]], minlength=6).tolist()
    cond = torch.bincount(p["labels"][p["cond_index"]], minlength=6).tolist()
    assert unc == [15, 9, 5, 1, 0, 0] == p["n_uncond"]            # n_per_class * K = 30 in all
    assert cond == [5, 5, 5, 5, 0, 0]                             # classes 4, 5: < 2 real
    assert p["skipped"] == [4, 5] and p["n_real"] == counts
    # one generation: class c gets max(cond, uncond) samples, the two sets overlap
    assert torch.bincount(p["labels"], minlength=6).tolist() == [15, 9, 5, 5, 0, 0]
    assert set(p["cond_index"].tolist()) | set(p["uncond_index"].tolist()) == set(range(34))
    again = plan_labels(real_labels, 6, 5)                        # deterministic
    assert torch.equal(again["labels"], p["labels"])
    assert torch.equal(again["uncond_index"], p["uncond_index"])
    with pytest.raises(ValueError, match="n_per_class"):
        plan_labels(real_labels, 6, 1)
    with pytest.raises(ValueError, match="real labels"):
        plan_labels(torch.tensor([0, 1, 6]), 6, 5)


def test_decoding_featurizers_see_the_real_samples_not_their_reconstructions():
    from featsel.features import create_featurizer
    from featsel.spaces import create_space
    from generation.evaluate import real_feature_vectors

    torch.manual_seed(0)
    x = torch.randn(40, 9) @ torch.randn(9, 9)  # full rank: a PCA-3 round trip loses a lot
    sp = create_space("pca:dim=3", fit_data=x)
    u = sp.encode(x)
    amb = create_featurizer("ambient", space=sp)
    feats, ref = real_feature_vectors(amb, u, x)
    assert ref == "ambient" and torch.equal(feats, x)  # the data itself, bit for bit
    assert amb.pixel_space is sp  # decoding restored for the generated side
    assert torch.allclose(amb(u)[0], sp.decode(u), atol=1e-6)
    # without the raw samples (data stored encoded) it falls back to decode(encode(x))
    feats, ref = real_feature_vectors(amb, u, None)
    assert ref == "generation" and torch.allclose(feats, sp.decode(u), atol=1e-6)
    assert (feats - x).abs().max() > 0.1
    # a featurizer of the generation space itself keeps seeing u
    feats, ref = real_feature_vectors(create_featurizer("identity"), u, x)
    assert ref == "generation" and torch.equal(feats, u)


def test_class_judge_says_when_its_fit_did_not_converge():
    """The judge's fit matches scikit-learn's own pipeline; an unconverged fit is said once in
    describe() instead of a ConvergenceWarning per evaluation."""
    import warnings

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat(60)
    u = torch.randn(180, 40, generator=g) + 0.7 * torch.nn.functional.one_hot(labels, 40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing escapes
        slow = ClassJudge.fit(u, labels, max_iter=2)
        fast = ClassJudge.fit(u, labels)
    assert not slow.converged and "not converged in 2 iterations" in slow.describe()
    assert fast.converged and "converged" not in fast.describe()
    tr, te = train_test_split(torch.arange(180).numpy(), test_size=0.5, random_state=0,
                              stratify=labels.numpy())
    ref = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    ref.fit(u.double().numpy()[tr], labels.numpy()[tr])
    assert fast.real_accuracy == pytest.approx(ref.score(u.double().numpy()[te], labels.numpy()[te]), abs=0)
