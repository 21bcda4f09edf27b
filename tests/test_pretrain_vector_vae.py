"""The MLP Gaussian VAE on vectors (featsel.features.mlpvae, generation.pretrain.mlp_vae):
closed-form KL, training on a low-rank set, the featurizer checkpoint (ambient and PCA generation
spaces), resume, bad inputs, and `featsel pretrain vae` on pbmc68k."""

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from featsel.cli import main
from featsel.data import load_dataset
from featsel.features import create_featurizer, list_featurizers
from featsel.spaces import create_space
from generation.pretrain.mlp_vae import gaussian_kl, train_mlp_vae
from generation.pretrain.vae import VAEConfig

G, RANK = 24, 3
TINY = dict(data="synthetic", latent_dim=RANK, hidden=32, depth=1, batch_size=64, lr=3e-3,
            save_every=1000)


def _low_rank(n: int = 400, seed: int = 0) -> torch.Tensor:
    """x = z A + b + 0.05 noise: (n, G), rank-3 signal of per-feature variance about 1."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, RANK, generator=g)
    a = torch.randn(RANK, G, generator=g) / RANK**0.5
    return z @ a + torch.randn(G, generator=g) + 0.05 * torch.randn(n, G, generator=g)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    x = _low_rank()
    cfg = VAEConfig(**TINY, out=str(tmp_path_factory.mktemp("mlpvae") / "run"), steps=300)
    return x, cfg, train_mlp_vae(cfg, x, progress=False)


def _encoder_mean_by_hand(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """Linear -> GELU -> Linear of the saved weights, first latent_dim outputs: (B, RANK)."""
    h = F.gelu(F.linear(x, sd["net.encoder.0.weight"], sd["net.encoder.0.bias"]))
    return F.linear(h, sd["net.encoder.2.weight"], sd["net.encoder.2.bias"])[:, :RANK]


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(7, 5, generator=g, dtype=torch.float64) * 2
    logvar = torch.randn(7, 5, generator=g, dtype=torch.float64)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), ref, rtol=0, atol=1e-6)
    assert float(gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max()) == 0.0


def test_training_lowers_the_loss_and_reconstructs_a_low_rank_set(run):
    x, _, res = run
    losses = torch.tensor(res["losses"])
    assert res["step"] == 300 and len(losses) == 300
    assert losses[-20:].mean() < 0.5 * losses[:20].mean()
    f = create_featurizer(res["featurizer"])
    with torch.no_grad():
        rec = f.net.decode(f(x)[0])
    mse = float((rec - x).square().mean())
    mse_mean = float((x - x.mean(0)).square().mean())  # predicting the mean of each feature
    assert mse < 0.2 * mse_mean, (mse, mse_mean)


def test_checkpoint_by_path_is_the_encoder_mean(run):
    x, _, res = run
    f = create_featurizer(res["featurizer"])
    assert f.map_names == ["mu"] and f.name == "mlp-vae"
    assert not any(p.requires_grad for p in f.parameters())
    (mu,) = f(x[:16])
    assert mu.shape == (16, RANK)
    sd = torch.load(res["featurizer"], weights_only=True)["state_dict"]
    torch.testing.assert_close(mu, _encoder_mean_by_hand(sd, x[:16]), rtol=1e-5, atol=1e-5)
    assert "mlp-vae" in {e["name"] for e in list_featurizers()}


def test_in_a_pca_space_it_decodes_first_and_passes_gradients(run):
    x, _, res = run
    space = create_space("pca:dim=5", fit_data=x)
    f = create_featurizer(res["featurizer"], space=space)
    sd = torch.load(res["featurizer"], weights_only=True)["state_dict"]
    u = space.encode(x[:8]).clone().requires_grad_(True)
    (mu,) = f(u)
    ref = _encoder_mean_by_hand(sd, space.decode(u))
    torch.testing.assert_close(mu, ref, rtol=1e-5, atol=1e-5)
    mu.square().sum().backward()
    assert u.grad is not None and float(u.grad.abs().sum()) > 0
    assert all(p.grad is None for p in f.parameters())
    with pytest.raises(ValueError, match="u must decode to vectors"):
        create_featurizer(res["featurizer"])(u.detach())  # 5 PCA coordinates, not 24 features


def test_resume_gives_the_weights_of_one_uninterrupted_run(run, tmp_path):
    x, cfg, _ = run
    short = dataclasses.replace(cfg, steps=30, save_every=7)
    whole = train_mlp_vae(dataclasses.replace(short, out=str(tmp_path / "a")), x, progress=False)
    half = dataclasses.replace(short, out=str(tmp_path / "b"), steps=16)
    first = train_mlp_vae(half, x, progress=False)
    rest = train_mlp_vae(dataclasses.replace(half, steps=30), x, resume=True, progress=False)
    assert first["losses"] + rest["losses"] == whole["losses"]
    a = torch.load(whole["featurizer"], weights_only=True)["state_dict"]
    b = torch.load(rest["featurizer"], weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="latent_dim"):
        train_mlp_vae(dataclasses.replace(half, latent_dim=4), x, resume=True, progress=False)


def test_bad_inputs(run, tmp_path):
    x, cfg, res = run
    f = create_featurizer(res["featurizer"])
    with pytest.raises(ValueError, match=f"u must decode to vectors \\(B, {G}\\)"):
        f(torch.zeros(2, G + 1))
    bad = x.clone()
    bad[3, 5] = float("nan")
    with pytest.raises(ValueError, match="x: .*NaN"):
        train_mlp_vae(dataclasses.replace(cfg, out=str(tmp_path / "nan")), bad, progress=False)
    for k in ("latent_dim", "hidden", "depth"):
        with pytest.raises(ValueError, match=k):
            train_mlp_vae(dataclasses.replace(cfg, out=str(tmp_path / k), **{k: 0}), x,
                          progress=False)
    with pytest.raises(ValueError, match="latent_dim"):
        create_featurizer("mlp-vae:latent_dim=0", in_shape=(G,))
    with pytest.raises(ValueError, match="kl_weight"):
        train_mlp_vae(dataclasses.replace(cfg, out=str(tmp_path / "kl"), kl_weight=-1.0), x,
                      progress=False)
    assert not (tmp_path / "nan").exists()  # checked before the run folder is made


def test_pretrain_vae_cli_on_pbmc68k_train_split(tmp_path, capsys):
    out = tmp_path / "pbmc_vae"
    rc = main(["pretrain", "vae", "--data", "pbmc68k", "--split", "train", "--steps", "20",
               "--out", str(out), "--quiet", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["model"] == "mlp-vae" and res["featurizer"] == str(out / "featurizer.pt")
    assert res["step"] == 20 and res["loss_last"] < res["loss_first"]
    test = load_dataset("pbmc68k", split="test")
    space = create_space("pca:dim=50", fit_data=test.x)
    for sp, u in ((None, test.x), (space, space.encode(test.x))):
        (mu,) = create_featurizer(res["featurizer"], space=sp)(u)
        assert mu.shape == (len(test.x), 10) and bool(torch.isfinite(mu).all())
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["data"], cfg["split"], cfg["latent_dim"]) == ("pbmc68k", "train", 10)
