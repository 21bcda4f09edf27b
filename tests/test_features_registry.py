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


# ------------------------------------------------------------- the table and the import graph
def _implementation_modules() -> list[str]:
    import pkgutil

    import featsel.features as pkg

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name != "registry")


def test_every_featurizer_class_is_built_by_a_line_of_the_table():
    """A module that defines a Featurizer subclass without a line in FEATURIZERS fails here."""
    import importlib
    import inspect

    from featsel.features.base import Featurizer
    from featsel.features.registry import FEATURIZERS

    built = {c for e in FEATURIZERS.values() for c in e.classes}
    assert all(issubclass(c, Featurizer) for c in built), built
    defined = set()
    for mod in _implementation_modules():
        m = importlib.import_module(f"featsel.features.{mod}")
        defined |= {c for _, c in inspect.getmembers(m, inspect.isclass)
                    if issubclass(c, Featurizer) and c is not Featurizer
                    and c.__module__ == m.__name__}
    assert defined and defined <= built, f"no line in FEATURIZERS builds {defined - built}"
    names = [e["name"] for e in list_featurizers()]
    assert names == [*FEATURIZERS, "checkpoint"]


def test_implementations_do_not_import_the_registry():
    """No import cycle: each implementation module imports (in a fresh interpreter) without
    pulling in featsel.features.registry, and none names it in its source."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    import featsel.features as pkg

    root = Path(pkg.__file__).parent
    for mod in _implementation_modules():
        tree = ast.parse((root / f"{mod}.py").read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {f"{n.module}.{a.name}" if n.module == "featsel.features" else n.module
                     for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        assert "featsel.features.registry" not in imported, mod
    # one fresh interpreter imports them one by one (what a module imports stays imported, so
    # this sees everything each one pulls in) and names the first that brought the registry
    code = ("import importlib, sys\n"
            "for m in sys.argv[1:]:\n"
            "    importlib.import_module('featsel.features.' + m)\n"
            "    if 'featsel.features.registry' in sys.modules:\n"
            "        sys.exit(m)\n")
    done = subprocess.run([sys.executable, "-c", code, *_implementation_modules()],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"importing {done.stderr.strip()} imported the registry"


def test_differentiable_is_read_from_the_classes_without_building(tmp_path, monkeypatch):
    from featsel.features.registry import FEATURIZERS, is_differentiable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    flat = {n: e.differentiable for n, e in FEATURIZERS.items()}
    assert {n for n, d in flat.items() if not d} == {"noise", "constant", "inception"}
    assert not is_differentiable("noise:dim=3") and not is_differentiable("inception")
    assert is_differentiable("dinov2") and is_differentiable("pca:dim=4")  # nothing is built
    for spec, kw in [("noise:dim=3", {}), ("constant:dim=2", {}), ("identity", {}),
                     ("ambient", {}), ("vae-latent", {}),
                     ("pca:dim=2", {"fit_data": torch.randn(8, 5)}),
                     ("random-projection:dim=3", {"in_shape": (5,)}),
                     ("random-projection:dim=3,spatial=true", {"in_shape": (2, 4, 4)}),
                     ("mlp-vae", {"in_shape": (6,)}), ("scvi-encoder", {"in_shape": (6,)})]:
        f = create_featurizer(spec, **kw)
        entry = FEATURIZERS[parse_spec(spec)[0]]
        assert isinstance(f, entry.classes) and f.differentiable == entry.differentiable, spec
    noise = save_featurizer(create_featurizer("noise:dim=2"), tmp_path / "noise.pt")
    pca = save_featurizer(create_featurizer("pca:dim=2", fit_data=torch.randn(8, 5)),
                          tmp_path / "pca.pt")
    assert not is_differentiable(str(noise)) and not is_differentiable(f"checkpoint:path={noise}")
    assert is_differentiable(str(pca))
    with pytest.raises(ValueError, match="unknown featurizer 'resnet'"):
        is_differentiable("resnet")


def test_decoding_follows_the_space_not_its_name():
    """Featurizers on the ambient form decode through `space.ambient_decoder`: a space named
    "pixels" that is not the identity still decodes, and the state dict keeps the caller's space
    under `pixel_space.`, which checkpoints leave out."""
    from featsel.spaces import PCASpace, create_space

    torch.manual_seed(0)
    x = torch.randn(30, 6)
    pca = create_space("pca:dim=3", fit_data=x)
    renamed = PCASpace(pca.mean, pca.components, (6,))
    renamed.name = "pixels"  # a name is not what decides
    u = pca.encode(x).requires_grad_(True)
    for space in (pca, renamed):
        for spec in ("ambient", "mlp-vae"):
            f = create_featurizer(spec, space=space)
            assert f.pixel_space is space and any(k.startswith("pixel_space.")
                                                  for k in f.state_dict())
            x_hat = space.decode(u)
            want = x_hat.flatten(1) if spec == "ambient" else f.net(x_hat)
            torch.testing.assert_close(f(u)[0], want)
    (grad,) = torch.autograd.grad(create_featurizer("ambient", space=pca)(u)[0].sum(), u)
    torch.testing.assert_close(grad, pca.components.sum(1).expand_as(u))  # through decode
    pixels = create_space("ambient", ambient_shape=(6,))
    assert create_featurizer("ambient", space=pixels).pixel_space is None
    assert create_featurizer("vit:input=pixels,pretrained=false,model=vit_tiny_patch16_224,"
                             "img_size=8,patch_size=4,in_chans=1,depth=1,tap_every=1",
                             space=create_space("pixels", ambient_shape=(1, 8, 8))
                             ).pixel_space is None
