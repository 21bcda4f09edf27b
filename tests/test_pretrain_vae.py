"""Small diffusers AutoencoderKL generation space (generation.pretrain.vae) on digits, loaded
back through featsel.spaces.create_space, and MAE in its latent space."""

import dataclasses

import pytest
import torch

from featsel.data import load_dataset
from featsel.features import create_featurizer
from featsel.spaces import VAESpace, create_space
from generation.pretrain.mae import MAEConfig, train_mae
from generation.pretrain.vae import VAEConfig, train_vae

TINY = dict(data="digits", batch_size=32, block_out_channels=(8, 16), norm_num_groups=4,
            lr=3e-3, save_every=1000)


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vae") / "run"
    cfg = VAEConfig(**TINY, out=str(out), steps=40)
    return cfg, train_vae(cfg, progress=False)


def test_vae_trains_and_loads_as_a_generation_space(vae_run):
    cfg, res = vae_run
    losses = torch.tensor(res["losses"])
    assert losses[-10:].mean() < 0.5 * losses[:10].mean()
    assert res["latent_shape"] == [4, 4, 4]
    space = create_space(res["space"], ambient_shape=(1, 8, 8))
    assert isinstance(space, VAESpace) and space.shape == (4, 4, 4)
    x = load_dataset("digits", split="train").x
    # scaling_factor = 1 / std of the posterior means on the training data: unit-scale latents
    with torch.no_grad():
        mu = space.vae.encode(x).latent_dist.mean
        u = space.encode(x[:16])
        rec = space.decode(u)
    assert space.scaling == pytest.approx(res["scaling_factor"], rel=1e-6)
    assert float((mu * space.scaling).std()) == pytest.approx(1.0, abs=1e-4)
    assert u.shape == (16, 4, 4, 4) and rec.shape == (16, 1, 8, 8)
    feat = create_featurizer("vae-latent", space=space)
    assert feat(u)[0].shape == (16, 64)


def test_vae_resume_and_bad_inputs(vae_run, tmp_path):
    cfg, res = vae_run
    more = train_vae(dataclasses.replace(cfg, steps=45), resume=True, progress=False)
    assert more["step"] == 45 and len(more["losses"]) == 5
    with pytest.raises(ValueError, match="block_out_channels"):
        train_vae(VAEConfig(**{**TINY, "block_out_channels": (6, 16)}, out=str(tmp_path / "a"),
                            steps=1), progress=False)
    with pytest.raises(ValueError, match="latent_channels"):
        train_vae(dataclasses.replace(cfg, latent_channels=3), resume=True, progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        create_space(f"vae:path={tmp_path / 'missing'}", ambient_shape=(1, 8, 8))


def test_mae_in_the_trained_vae_latent_space(vae_run, tmp_path):
    _, res = vae_run
    cfg = MAEConfig(data="digits", space=res["space"], out=str(tmp_path / "mae"), steps=3,
                    batch_size=16, depth=1, tap_every=1, embed_dim=16, num_heads=2,
                    decoder_dim=16, patch_size=1, mask_ratio=0.6)
    out = train_mae(cfg, progress=False)
    feat = create_featurizer(out["featurizer"])
    assert feat.in_shape == (4, 4, 4)
    maps = feat(torch.randn(2, 4, 4, 4))
    assert [tuple(m.shape) for m in maps] == [(2, 16, 4, 4), (2, 16, 4, 4), (2, 16)]
