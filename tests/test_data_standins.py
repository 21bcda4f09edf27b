"""The imagenet256 and kang2018 code paths, on small stand-in files written here."""

import json

import numpy as np
import pytest
import torch
import yaml

from featsel.data import load_dataset
from featsel.latents import LatentPrecomputeConfig, load_latent_shards, precompute_latents
from featsel.spaces import VAESpace


def _manifest(tmp_path, name, **over):
    from pathlib import Path

    d = yaml.safe_load((Path(__file__).parents[1] / "data_manifests" / f"{name}.yaml").read_text())
    d.update(over)
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def test_kang2018_preprocessing_on_standin(tmp_path):
    anndata = pytest.importorskip("anndata")
    import scanpy as sc
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    n, g = 160, 3200
    counts = rng.negative_binomial(2, 0.6, size=(n, g)).astype(np.float32)
    counts[:, :50] *= rng.integers(1, 20, size=(n, 1))  # some genes vary with the cell
    a = anndata.AnnData(sp.csr_matrix(counts))
    a.obs["cell_type"] = rng.choice(["B", "T", "NK", "Mono"], size=n)
    a.obs["label"] = rng.choice(["ctrl", "stim"], size=n)
    a.var_names = [f"g{i}" for i in range(g)]
    (tmp_path / "kang2018").mkdir()
    a.write_h5ad(tmp_path / "kang2018" / "kang2018.h5ad")

    ds = load_dataset("kang2018", split="all", data_root=tmp_path)
    assert ds.x.shape == (n, 3000) and ds.labels.shape == (n,)
    assert ds.class_names == ["B", "Mono", "NK", "T"]
    # the same preprocessing by hand with scanpy
    ref = a.copy()
    sc.pp.normalize_total(ref, target_sum=1e4)
    sc.pp.log1p(ref)
    sc.pp.highly_variable_genes(ref, n_top_genes=3000, flavor="seurat")
    ref = ref[:, ref.var["highly_variable"].to_numpy()]
    np.testing.assert_allclose(ds.x.numpy(), ref.X.toarray(), rtol=1e-5, atol=1e-6)
    train = load_dataset("kang2018", split="train", data_root=tmp_path)
    space = train.generation_space()  # pca:dim=128 fitted on the train split
    assert space.spec == "pca:dim=128" and space.shape == (128,)
    assert train.generation_space("ambient").shape == (3000,)


def _tiny_vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
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


def _image_folder(root, rng):
    from PIL import Image

    for c, n in (("n01", 3), ("n02", 4)):
        (root / c).mkdir(parents=True)
        for i in range(n):
            a = rng.integers(0, 256, size=(20 + i, 24, 3), dtype=np.uint8)
            Image.fromarray(a).save(root / c / f"{i}.png")


def test_imagenet_latents_precompute_resume_and_ranks(tmp_path):
    rng = np.random.default_rng(0)
    _image_folder(tmp_path / "images", rng)
    space = VAESpace(_tiny_vae(), image_shape=(3, 16, 16))
    out = tmp_path / "root" / "imagenet256-latents" / "train"
    cfg = LatentPrecomputeConfig(
        str(tmp_path / "images"),
        str(out),
        image_size=16,
        shard_size=3,
        batch_size=2,
        num_workers=0,
        dtype="float32",
    )
    # on the CPU (also on a GPU host): the shards are compared bit for bit with the space's
    # own CPU encoding below
    stats = precompute_latents(cfg, space=space, rank=0, world_size=1, progress=False,
                               device="cpu")
    assert stats == {"n": 7, "n_shards": 3, "written": 3, "skipped": 0}
    index = json.loads((out / "index.json").read_text())
    assert index["classes"] == ["n01", "n02"] and index["shape"] == [4, 8, 8]
    x, y, classes = load_latent_shards(out)
    assert x.shape == (14, 4, 8, 8) and y.tolist() == [0, 0, 0, 1, 1, 1, 1] * 2
    # shard 1 by hand: centre-crop transform, posterior sample seeded by (seed, shard)
    from torchvision.datasets import ImageFolder

    from featsel.latents import image_transform

    data = ImageFolder(str(tmp_path / "images"), transform=image_transform(16))
    imgs = torch.stack([data[i][0] for i in (3, 4, 5)])
    assert imgs.shape == (3, 3, 16, 16) and imgs.min() >= -1 and imgs.max() <= 1
    g = torch.Generator().manual_seed(1)
    first = space.encode(imgs[:2], generator=g)
    first_flip = space.encode(imgs[:2].flip(-1), generator=g)
    shard = torch.load(out / "shard-00001.pt", weights_only=True)
    torch.testing.assert_close(shard["latents"][:2], first)
    torch.testing.assert_close(shard["flipped"][:2], first_flip)
    # resumable: a lost shard is recomputed identically, the others skipped
    before = torch.load(out / "shard-00002.pt", weights_only=True)
    (out / "shard-00002.pt").unlink()
    stats = precompute_latents(cfg, space=space, rank=0, world_size=1, progress=False,
                               device="cpu")
    assert stats["written"] == 1 and stats["skipped"] == 2
    after = torch.load(out / "shard-00002.pt", weights_only=True)
    torch.testing.assert_close(after["latents"], before["latents"])
    # two ranks (as under torchrun) split the shards and give the same files
    out2 = tmp_path / "ranks"
    cfg2 = LatentPrecomputeConfig(
        cfg.image_root, str(out2), image_size=16, shard_size=3, batch_size=2, num_workers=0, dtype="float32"
    )
    s0 = precompute_latents(cfg2, space=space, rank=0, world_size=2, progress=False, device="cpu")
    s1 = precompute_latents(cfg2, space=space, rank=1, world_size=2, progress=False, device="cpu")
    assert (s0["written"], s1["written"]) == (2, 1)
    x2, y2, _ = load_latent_shards(out2)
    torch.testing.assert_close(x2, x)
    # changed settings in the same directory are refused
    with pytest.raises(ValueError, match="other settings"):
        precompute_latents(
            LatentPrecomputeConfig(
                cfg.image_root, str(out), image_size=16, shard_size=2, num_workers=0, dtype="float32"
            ),
            space=space,
            progress=False,
        )
    # the manifest loads the shards from the data root
    m = _manifest(tmp_path, "imagenet256")
    ds = load_dataset(m, split="train", data_root=tmp_path / "root")
    assert ds.in_generation_space and ds.x.shape == (14, 4, 8, 8)
    assert ds.ambient_shape == (3, 256, 256)
    # an incomplete precompute is reported, not silently loaded
    (out / "shard-00000.pt").unlink()
    with pytest.raises(FileNotFoundError, match="incomplete"):
        load_dataset(m, split="train", data_root=tmp_path / "root")
