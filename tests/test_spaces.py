"""Generation spaces: pixels, a tiny AutoencoderKL built from a config, PCA with inverse."""

import time

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from featsel.hub import WeightsUnavailableError
from featsel.spaces import PCASpace, PixelSpace, VAESpace, create_space


def tiny_vae(seed=0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=16,
    )


def test_pixels_identity_and_shape_checks():
    s = create_space("pixels", ambient_shape=(1, 8, 8))
    x = torch.randn(2, 1, 8, 8)
    assert s.shape == (1, 8, 8) and s.is_spatial
    assert s.decode(s.encode(x)) is x
    with pytest.raises(ValueError, match=r"shape \(B, \(1, 8, 8\)\)"):
        s.encode(torch.zeros(2, 1, 8, 9))
    assert create_space("ambient", fit_data=torch.zeros(3, 5)).shape == (5,)
    with pytest.raises(ValueError, match="needs ambient_shape"):
        create_space("pixels")
    with pytest.raises(ValueError, match="one of pixels"):
        create_space("jpeg")
    with pytest.raises(ValueError, match="unknown option"):
        create_space("pca:dims=3", fit_data=torch.zeros(5, 4))


def test_vae_encode_decode_against_diffusers(tmp_path):
    vae = tiny_vae()
    space = VAESpace(vae, image_shape=(3, 16, 16))
    assert space.shape == (4, 8, 8) and space.scaling == pytest.approx(0.18215)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    u = space.encode(x, generator=torch.Generator().manual_seed(1))
    # posterior sample by hand: (mean + std * eps) * scaling with the same noise
    post = vae.encode(x).latent_dist
    eps = torch.randn(post.mean.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(u, (post.mean + post.std * eps) * 0.18215, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(u, post.mean * 0.18215)  # a sample, not the mode
    x_hat = space.decode(u)
    assert x_hat.shape == x.shape
    torch.testing.assert_close(x_hat, vae.decode(u / 0.18215).sample)
    # round trip through a local diffusers directory gives the same space
    vae.save_pretrained(tmp_path / "vae")
    loaded = create_space(f"vae:path={tmp_path / 'vae'}", ambient_shape=(3, 16, 16))
    assert loaded.spec == f"vae:path={tmp_path / 'vae'},scaling=0.18215"
    for (k, a), (k2, b) in zip(loaded.state_dict().items(), space.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    torch.testing.assert_close(loaded.decode(u), x_hat)
    u2 = loaded.encode(x, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(u2, u)
    with pytest.raises(ValueError, match="does not fit the VAE"):
        VAESpace(vae, image_shape=(3, 15, 16))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        create_space("vae:path=/nonexistent/vae", ambient_shape=(3, 16, 16))


def test_vae_latent_round_trip_is_seeded():
    """u -> decode -> encode: shapes kept; the posterior sample is reproducible from the
    generator's seed and changes with it (an untrained VAE does not reconstruct, so the
    values themselves are not compared with u)."""
    vae = tiny_vae(1)
    space = VAESpace(vae, image_shape=(3, 16, 16), scaling=0.5)
    u = torch.randn(2, 4, 8, 8)
    x = space.decode(u)
    torch.testing.assert_close(x, vae.decode(u / 0.5).sample)
    back = space.encode(x, generator=torch.Generator().manual_seed(3))
    assert back.shape == u.shape and torch.isfinite(back).all()
    torch.testing.assert_close(space.encode(x, generator=torch.Generator().manual_seed(3)), back)
    assert not torch.equal(space.encode(x, generator=torch.Generator().manual_seed(4)), back)


def test_vae_offline_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    t = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="vae:path=") as err:
        create_space("vae", ambient_shape=(3, 256, 256))
    assert time.perf_counter() - t < 5
    assert "stabilityai/sd-vae-ft-mse" in str(err.value)


def test_vae_foreign_directory_is_one_line_and_diffusers_stays_quiet(tmp_path, capfd):
    from diffusers.utils import logging as dlog

    bad = tmp_path / "badvae"
    bad.mkdir()
    (bad / "config.json").write_text('{"_class_name": "AutoencoderKL"}')
    (bad / "diffusion_pytorch_model.bin").write_bytes(b"not a checkpoint")
    before = dlog.get_verbosity()
    with pytest.raises(ValueError, match="could not load the VAE"):
        VAESpace.from_pretrained(str(bad))
    assert dlog.get_verbosity() == before  # restored after the failed load
    assert "An error occurred" not in capfd.readouterr().err  # diffusers' own log is silenced


def test_pca_space_inverse_and_sklearn():
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(100, 12)) @ rng.normal(size=(12, 12)), dtype=torch.float32)
    space = create_space("pca:dim=5", fit_data=x)
    assert isinstance(space, PCASpace) and space.shape == (5,)
    ref = PCA(n_components=5, random_state=0).fit(x.double().numpy())
    u = space.encode(x)
    np.testing.assert_allclose(u.numpy(), ref.transform(x.numpy()), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        space.decode(u).numpy(), ref.inverse_transform(u.numpy()), rtol=1e-4, atol=1e-4
    )
    full = PCASpace.fit(x, 12)
    torch.testing.assert_close(full.decode(full.encode(x)), x, rtol=1e-4, atol=1e-4)
    img = torch.randn(30, 1, 4, 4)
    s2 = create_space("pca:dim=16", fit_data=img)
    torch.testing.assert_close(s2.decode(s2.encode(img)), img, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="needs fit_data"):
        create_space("pca:dim=3")
    with pytest.raises(ValueError, match="dim must be in"):
        create_space("pca:dim=13", fit_data=x)


def test_space_fingerprints_differ():
    a = PixelSpace((1, 8, 8))
    b = PixelSpace((1, 8, 9))
    assert a.fingerprint() != b.fingerprint()


def test_vectors_are_in_the_ambient_space_not_pixels():
    """Gene vectors have no pixels: the identity space of vector data is named "ambient" (the
    score report's settings and the cache keys show it); images keep "pixels"."""
    assert create_space("pixels", ambient_shape=(765,)).spec == "ambient"
    assert create_space("ambient", ambient_shape=(1, 8, 8)).spec == "pixels"
    assert create_space(create_space("ambient", ambient_shape=(5,)).spec,
                        ambient_shape=(5,)).spec == "ambient"  # the spec recreates the space


def test_the_space_says_whether_to_decode():
    """`ambient_decoder`: None for the ambient space (decode is the identity), else the space."""
    x = torch.randn(20, 5)
    assert create_space("ambient", fit_data=x).ambient_decoder is None
    assert create_space("pixels", ambient_shape=(1, 4, 4)).ambient_decoder is None
    pca = create_space("pca:dim=2", fit_data=x)
    assert pca.ambient_decoder is pca
