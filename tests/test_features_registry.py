"""Spec parsing, the registry, and the network-free featurizers against scikit-learn."""

import time

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.random_projection import GaussianRandomProjection

from featsel.features import create_featurizer, list_featurizers, parse_spec, save_featurizer
from featsel.features.registry import load_featurizer
from featsel.hub import WeightsUnavailableError

REQUIRED = [
    "identity",
    "pca",
    "random-projection",
    "random-vit",
    "vit",
    "dinov2",
    "inception",
    "vae-latent",
    "checkpoint",
]


def test_registry_lists_required_names():
    names = [e["name"] for e in list_featurizers()]
    assert names[: len(REQUIRED) - 1] == REQUIRED[:-1] and "checkpoint" in names
    vit = next(e for e in list_featurizers() if e["name"] == "random-vit")
    assert vit["options"]["pretrained"] is False and vit["options"]["tap_every"] == 3


def test_parse_spec_and_errors():
    assert parse_spec("vit:depth=4, facets=keys+pooled") == ("vit", {"depth": "4", "facets": "keys+pooled"})
    assert parse_spec("identity") == ("identity", {})
    for bad, msg in [("", "non-empty"), ("pca:dim", "key=value"), ("pca:dim=1,dim=2", "twice")]:
        with pytest.raises(ValueError, match=msg):
            parse_spec(bad)
    with pytest.raises(ValueError, match="unknown featurizer 'resnet'"):
        create_featurizer("resnet")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['dims'\]"):
        create_featurizer("pca:dims=3", fit_data=torch.zeros(4, 5))
    with pytest.raises(ValueError, match="option dim must be int"):
        create_featurizer("pca:dim=three", fit_data=torch.zeros(4, 5))
    with pytest.raises(ValueError, match="option spatial must be bool"):
        create_featurizer("random-projection:spatial=maybe", in_shape=(5,))
    with pytest.raises(ValueError, match="needs fit_data"):
        create_featurizer("pca:dim=2")
    with pytest.raises(ValueError, match="input shape"):
        create_featurizer("random-projection")


def test_identity_and_vae_latent():
    u = torch.randn(3, 4, 5, 5)
    (m,) = create_featurizer("identity")(u)
    assert m is u
    (v,) = create_featurizer("identity")(torch.randn(3, 7))
    assert v.shape == (3, 7)
    (flat,) = create_featurizer("vae-latent")(u)
    assert torch.equal(flat, u.reshape(3, 100))
    blocks = create_featurizer("identity").blocks(u)
    assert blocks["identity/per_loc"].x.shape == (3, 25, 4)


def test_ambient_decodes_through_the_generation_space():
    from sklearn.decomposition import PCA

    from featsel.spaces import create_space

    torch.manual_seed(0)
    x = torch.randn(60, 12) @ torch.randn(12, 12)
    sp = create_space("pca:dim=5", fit_data=x)  # the space holds float32: 1e-4 tolerance
    u = torch.cat([sp.encode(c) for c in x.split(20)]).requires_grad_(True)
    (a,) = create_featurizer("ambient", space=sp)(u)
    ref = PCA(n_components=5).fit(x.numpy())  # independent inverse: sklearn's
    want = ref.inverse_transform(ref.transform(x.double().numpy()))
    np.testing.assert_allclose(a.detach().double().numpy(), want, rtol=1e-4, atol=1e-4)
    a.sum().backward()
    assert u.grad is not None and u.grad.abs().sum() > 0
    img = torch.randn(3, 1, 4, 4)
    (p,) = create_featurizer("ambient", space=create_space("pixels", ambient_shape=(1, 4, 4)))(img)
    assert torch.equal(p, img.reshape(3, 16))


def test_pca_matches_sklearn(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3, 4, 4)) * np.linspace(0.1, 3, 48).reshape(1, 3, 4, 4)
    x = torch.as_tensor(x, dtype=torch.float32)
    feat = create_featurizer("pca:dim=5", fit_data=x)
    ref = PCA(n_components=5, random_state=0).fit(x.reshape(200, -1).double().numpy())
    (z,) = feat(x[:10])
    np.testing.assert_allclose(z.numpy(), ref.transform(x[:10].reshape(10, -1).numpy()), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="dim must be in"):
        create_featurizer("pca:dim=100", fit_data=x[:20])
    with pytest.raises(ValueError, match="fitted on 48"):
        feat(torch.zeros(2, 47))
    loaded = load_featurizer(save_featurizer(feat, tmp_path / "pca.pt"))
    torch.testing.assert_close(loaded(x[:10])[0], z)


def test_random_projection_matches_sklearn():
    x = torch.randn(6, 2, 3, 3)
    feat = create_featurizer("random-projection:dim=7,seed=5", in_shape=(2, 3, 3))
    ref = GaussianRandomProjection(n_components=7, random_state=5).fit(np.zeros((2, 18)))
    np.testing.assert_allclose(
        feat(x)[0].numpy(), ref.transform(x.reshape(6, -1).numpy()), rtol=1e-4, atol=1e-5
    )
    sp = create_featurizer("random-projection:dim=4,spatial=true", in_shape=(2, 3, 3))
    (m,) = sp(x)
    assert m.shape == (6, 4, 3, 3)
    torch.testing.assert_close(m[:, :, 1, 2], x[:, :, 1, 2] @ sp.weight.T)
    assert (
        sp.fingerprint()
        != create_featurizer("random-projection:dim=4,spatial=true,seed=1", in_shape=(2, 3, 3)).fingerprint()
    )


def test_inception_offline_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    t = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="inception:weights="):
        create_featurizer("inception")
    assert time.perf_counter() - t < 5
    with pytest.raises(FileNotFoundError, match="does not exist"):
        create_featurizer(f"inception:weights={tmp_path}/none.pth")


@pytest.mark.slow
def test_inception_runs_from_local_weights_file(monkeypatch, tmp_path):
    """torch-fidelity's network with random weights saved to a file (the real ones cannot be
    downloaded here): pool3 features of grey [-1, 1] images decoded by the space."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    monkeypatch.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
    monkeypatch.setattr(
        "torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url", lambda *a, **k: {}
    )
    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(net.state_dict(), tmp_path / "w.pth")
    monkeypatch.undo()
    feat = create_featurizer(f"inception:weights={tmp_path / 'w.pth'}")
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    (pool3,) = feat(x)
    assert pool3.shape == (2, 2048) and torch.isfinite(pool3).all()
    x8 = ((x + 1) * 127.5).round().to(torch.uint8).expand(-1, 3, -1, -1)
    (ref,) = feat.net(x8.contiguous())
    torch.testing.assert_close(pool3, ref)
