"""Every bundled manifest loads (or fails with its clear error); validation; real loaders."""

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from featsel.data import (
    list_manifests,
    load_dataset,
    load_manifest,
    read_idx,
    validate_manifest,
)
from featsel.features import parse_spec
from featsel.features.registry import FEATURIZERS

SHARED = Path(os.environ.get("FEATSEL_DATA_DIR", Path(__file__).parents[2] / "shared" / "data"))
MNIST = SHARED / "mnist" / "t10k-images-idx3-ubyte.gz"
needs_mnist = pytest.mark.skipif(not MNIST.is_file(), reason=f"{MNIST} not present")
EXPECTED = {"digits", "mnist", "lfw-subset", "pbmc68k", "imagenet256", "kang2018", "satimage", "texture",
            "penbased", "letter", "segment", "vehicle", "indian_pines", "magic", "phoneme", "ring",
            "twonorm", "marketing"}


def test_all_manifests_validate_and_name_known_featurizers():
    assert EXPECTED <= set(list_manifests())
    for name in list_manifests():
        m = load_manifest(name)
        assert m.name == name and m.file.name == f"{name}.yaml"
        for spec in m.candidates + m.evaluation:
            assert parse_spec(spec)[0] in FEATURIZERS, (name, spec)


@pytest.mark.parametrize(
    "name, split, shape, n_classes",
    [
        ("digits", "train", (1, 8, 8), 10),
        ("lfw-subset", "test", (1, 25, 25), 2),
        ("pbmc68k", "train", (765,), 10),
    ],
)
def test_bundled_datasets_load(name, split, shape, n_classes):
    ds = load_dataset(name, split=split)
    assert tuple(ds.x.shape[1:]) == shape and ds.x.dtype == torch.float32
    assert ds.labels.dtype == torch.int64 and len(ds.labels) == len(ds)
    assert len(ds.class_names) == n_classes and int(ds.labels.max()) < n_classes
    if ds.manifest.modality == "image":
        assert ds.x.min() >= -1 and ds.x.max() <= 1
    space = ds.generation_space()
    assert space.shape == shape


def test_fraction_splits_partition_the_data():
    from sklearn.datasets import load_digits

    tr, te, al = (load_dataset("digits", split=s) for s in ("train", "test", "all"))
    assert len(tr) + len(te) == len(al) == 1797
    x = load_digits().images.reshape(1797, -1) / 16 * 2 - 1
    # together the two splits are every image exactly once
    rows = torch.cat([tr.x, te.x]).reshape(1797, -1).numpy()
    assert sorted(map(bytes, np.round(rows, 5).astype(np.float32))) == sorted(
        map(bytes, np.round(x, 5).astype(np.float32))
    )
    assert torch.equal(load_dataset("digits", split="train").x, tr.x)  # seeded, stable


def test_pbmc68k_labels_match_scanpy():
    import scanpy as sc

    ds = load_dataset("pbmc68k", split="all")
    a = sc.datasets.pbmc68k_reduced()
    names = np.asarray(ds.class_names)[ds.labels.numpy()]
    assert (names == a.obs["bulk_labels"].astype(str).to_numpy()).all()
    np.testing.assert_allclose(ds.x.numpy(), a.raw.X.toarray(), rtol=1e-6)
    pca = ds.generation_space("pca:dim=50")
    assert pca.shape == (50,)


@needs_mnist
def test_mnist_idx_reader_and_counts():
    assert hashlib.sha256(MNIST.read_bytes()).hexdigest().startswith("8d422c7b0a1c")
    ds = load_dataset("mnist", split="test", data_root=SHARED)
    assert ds.x.shape == (10000, 1, 28, 28)
    counts = torch.bincount(ds.labels).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    raw = read_idx(MNIST)
    assert raw.dtype == np.uint8 and raw.shape == (10000, 28, 28)
    torch.testing.assert_close(ds.x[5, 0], torch.as_tensor(raw[5] / 255 * 2 - 1, dtype=torch.float32))


def test_idx_reader_on_written_file(tmp_path):
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    header = bytes([0, 0, 0x0C, 3]) + np.array(a.shape, ">i4").tobytes()
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(header + a.astype(">i4").tobytes()))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx.gz"), a)
    (tmp_path / "bad").write_bytes(b"\x01\x00\x08\x01")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")


def test_missing_files_name_the_path(tmp_path):
    for name, split, expect in [
        ("mnist", "train", "mnist/train-images-idx3-ubyte.gz"),
        ("imagenet256", "train", "imagenet256-latents/train/index.json"),
        ("kang2018", "train", "kang2018/kang2018.h5ad"),
    ]:
        with pytest.raises(FileNotFoundError) as err:
            load_dataset(name, split=split, data_root=tmp_path)
        msg = str(err.value)
        assert str(tmp_path / expect) in msg and "--data-root" in msg, msg


def test_data_root_argument(tmp_path):
    import argparse

    from featsel.data import add_data_root_argument

    p = argparse.ArgumentParser()
    add_data_root_argument(p)
    args = p.parse_args(["--data-root", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "mnist")):
        load_dataset("mnist", split="test", data_root=args.data_root)
    assert p.parse_args([]).data_root is None


def test_unknown_names_and_splits():
    with pytest.raises(ValueError, match="unknown data set 'cifar'.*digits"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="unknown split 'val'"):
        load_dataset("digits", split="val")


def _base():
    return yaml.safe_load((Path(__file__).parents[1] / "data_manifests" / "digits.yaml").read_text())


@pytest.mark.parametrize(
    "edit, msg",
    [
        (lambda d: d.pop("modality"), "missing required key 'modality'"),
        (lambda d: d.update(modality="audio"), "modality must be one of"),
        (lambda d: d.update(source="torchvision"), "source must be one of"),
        (lambda d: d.update(splits=[0.8]), "key 'splits' must be dict"),
        (lambda d: d.update(split_seed="0"), "key 'split_seed' must be int"),
        (lambda d: d.update(splits={"train": 0.8, "test": 0.4}), "sum to"),
        (lambda d: d.update(colour="blue"), "unknown key 'colour'"),
        (
            lambda d: d.update(featurizers={"candidates": "identity", "evaluation": []}),
            "featurizers.candidates must be a list",
        ),
        (lambda d: d.update(source="idx"), "needs a 'path'"),
    ],
)
def test_validation_errors(edit, msg):
    d = _base()
    edit(d)
    with pytest.raises(ValueError, match=msg):
        validate_manifest(d, "test.yaml")


def test_manifest_by_path_and_yaml_errors(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump({**_base(), "name": "mine"}))
    assert load_dataset(p, split="test").manifest.name == "mine"
    p.write_text("name: [unclosed")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_manifest(p)
    with pytest.raises(FileNotFoundError):
        load_manifest(tmp_path / "none.yaml")
