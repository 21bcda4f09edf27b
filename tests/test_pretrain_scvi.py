"""`featsel pretrain scvi` (generation.pretrain.scvi, featsel.features.scvi_encoder): the
missing-extra error and the scvi-encoder featurizer always; with scvi-tools installed (the extra
`featsel[scvi]`), a few epochs on pbmc68k's train split: featsel's copy of the encoder equals
scvi-tools' `get_latent_representation(give_mean=True)`, it loads without scvi-tools, decodes
through a PCA generation space with gradients, and resume gives the uninterrupted run."""

import dataclasses
import json
import sys

import pytest
import torch

from featsel.cli import main
from featsel.data import load_dataset
from featsel.features import create_featurizer, save_featurizer
from featsel.spaces import create_space
from generation.pretrain.scvi import ScviConfig, scvi_input, train_scvi

EPOCHS = 4


def test_missing_extra_is_one_clear_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "scvi", None)  # `import scvi` -> ImportError
    out = tmp_path / "run"
    rc = main(["pretrain", "scvi", "--data", "pbmc68k", "--epochs", "2", "--out", str(out),
               "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1, err
    assert "scvi-tools" in err and "featsel[scvi]" in err
    assert "featsel pretrain vae --data pbmc68k" in err  # the fallback command
    assert not out.exists()


def test_scvi_encoder_featurizer_needs_no_scvi(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "scvi", None)
    x = torch.rand(6, 24)
    f = create_featurizer("scvi-encoder:latent_dim=3,hidden=16,depth=2", in_shape=(24,))
    (mu,) = f(x)
    assert mu.shape == (6, 3) and f.map_names == ["mu"]
    g = create_featurizer(str(save_featurizer(f, tmp_path / "featurizer.pt")))
    assert g.spec == f.spec == "scvi-encoder:n_features=24,latent_dim=3,hidden=16,depth=2,seed=0"
    torch.testing.assert_close(g(x)[0], mu, rtol=0, atol=0)
    with pytest.raises(ValueError, match="featurizer scvi-encoder: u must decode to vectors"):
        g(torch.zeros(2, 25))


def test_what_scvi_is_given():
    x = torch.tensor([[0.0, 1.0], [2.0, 0.5]])
    torch.testing.assert_close(scvi_input(x, "zinb"), torch.expm1(x))
    assert scvi_input(x, "normal") is not None and torch.equal(scvi_input(x, "normal"), x)
    with pytest.raises(ValueError, match="negative values"):
        scvi_input(x - 1, "nb")
    with pytest.raises(ValueError, match="no expression"):
        scvi_input(torch.tensor([[0.0, 0.0], [1.0, 0.0]]), "poisson")
    with pytest.raises(ValueError, match="gene_likelihood"):
        scvi_input(x, "gaussian")
    with pytest.raises(ValueError, match="NaN"):
        scvi_input(torch.tensor([[float("nan"), 1.0], [1.0, 1.0]]), "zinb")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    pytest.importorskip("scvi")
    out = tmp_path_factory.mktemp("scvi") / "pbmc_scvi"
    argv = ["pretrain", "scvi", "--data", "pbmc68k", "--split", "train", "--epochs", str(EPOCHS),
            "--latent", "10", "--seed", "0", "--out", str(out), "--quiet", "--json"]
    return out, argv


@pytest.fixture(scope="module")
def res(run):
    out, argv = run
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    return json.loads(buf.getvalue())


def test_cli_writes_the_featurizer_and_the_scvi_model(run, res):
    out, _ = run
    assert res["model"] == "scvi-encoder" and res["featurizer"] == str(out / "featurizer.pt")
    assert res["epochs"] == EPOCHS and res["loss_last"] < res["loss_first"]
    assert res["latent_max_abs_diff"] <= 1e-5
    assert (out / "scvi_model" / "model.pt").is_file() and (out / "lightning.ckpt").is_file()
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["data"], cfg["split"], cfg["epochs"], cfg["gene_likelihood"]) == (
        "pbmc68k", "train", EPOCHS, "zinb")


def test_featurizer_is_scvi_tools_latent_mean_on_unseen_cells(run, res):
    import anndata
    import scvi

    out, _ = run
    x = load_dataset("pbmc68k", split="test").x  # cells the model was not trained on
    adata = anndata.AnnData(torch.expm1(x).numpy())  # what scVI was given (pseudo-counts)
    model = scvi.model.SCVI.load(str(out / "scvi_model"), adata=adata, accelerator="cpu")
    ref = torch.as_tensor(model.get_latent_representation(adata, give_mean=True))
    f = create_featurizer(res["featurizer"])
    assert f.name == "scvi-encoder" and not any(p.requires_grad for p in f.parameters())
    (mu,) = f(x)
    assert mu.shape == (len(x), 10)
    torch.testing.assert_close(mu, ref, rtol=0, atol=1e-5)
    assert float(ref.std(0).min()) > 1e-3  # a non-degenerate latent


def test_in_a_pca_space_it_decodes_first_and_passes_gradients(res):
    x = load_dataset("pbmc68k", split="test").x
    space = create_space("pca:dim=50", fit_data=x)
    f = create_featurizer(res["featurizer"], space=space)
    u = space.encode(x[:16]).clone().requires_grad_(True)
    (mu,) = f(u)
    torch.testing.assert_close(mu, f.net(space.decode(u)), rtol=0, atol=0)
    mu.square().sum().backward()
    assert u.grad is not None and float(u.grad.abs().sum()) > 0
    assert all(p.grad is None for p in f.parameters())


def test_loading_needs_no_scvi_tools(res, monkeypatch):
    monkeypatch.setitem(sys.modules, "scvi", None)
    x = load_dataset("pbmc68k", split="test").x[:8]
    (mu,) = create_featurizer(res["featurizer"])(x)
    assert mu.shape == (8, 10) and bool(torch.isfinite(mu).all())


def test_resume_gives_the_uninterrupted_run(res, tmp_path):
    cfg = ScviConfig(data="pbmc68k", split="train", epochs=EPOCHS // 2, out=str(tmp_path / "b"))
    train_scvi(cfg, progress=False)
    with pytest.raises(ValueError, match="already holds this featsel"):
        train_scvi(cfg, progress=False)
    with pytest.raises(ValueError, match="latent_dim"):
        train_scvi(dataclasses.replace(cfg, latent_dim=4), resume=True, progress=False)
    rest = train_scvi(dataclasses.replace(cfg, epochs=EPOCHS), resume=True, progress=False)
    a = torch.load(res["featurizer"], weights_only=True)["state_dict"]
    b = torch.load(rest["featurizer"], weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_normal_likelihood_on_the_log_normalised_values(tmp_path):
    pytest.importorskip("scvi")
    x = load_dataset("pbmc68k", split="train").x
    cfg = ScviConfig(epochs=2, gene_likelihood="normal", out=str(tmp_path / "normal"))
    res = train_scvi(cfg, progress=False, x=x)
    assert res["gene_likelihood"] == "normal" and res["latent_max_abs_diff"] <= 1e-5
    assert bool(torch.isfinite(create_featurizer(res["featurizer"])(x[:8])[0]).all())
