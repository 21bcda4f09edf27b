"""The `tensorly-indian-pines` source (the Indian Pines scene from the tensorly wheel) and its
manifest."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from featsel.data import (
    INDIAN_PINES_CLASSES,
    TENSORLY_INSTALL,
    indian_pines_files,
    load_dataset,
    load_manifest,
)

HAVE_TENSORLY = importlib.util.find_spec("tensorly") is not None
needs_tensorly = pytest.mark.skipif(not HAVE_TENSORLY, reason=f"tensorly not installed ({TENSORLY_INSTALL})")
# The scene's documentation (Baumgardner, Biehl and Landgrebe; the usual table of the 16 classes),
# typed from it, not read off the data: labelled pixels per class code 1..16.
DOCUMENTED = [46, 1428, 830, 237, 483, 730, 28, 478, 20, 972, 2455, 593, 205, 1265, 386, 93]
NINE = [2, 3, 5, 6, 8, 10, 11, 12, 14]


def test_manifest_validates():
    m = load_manifest("indian_pines")
    assert (m.source, m.modality, m.path) == ("tensorly-indian-pines", "vector", None)
    assert m.options == {"classes": NINE, "standardize": "train"}
    assert m.generation_space == "ambient" and "ambient" not in m.candidates


@needs_tensorly
def test_the_scene_has_the_documented_counts_and_train_standardisation():
    had = "tensorly" in sys.modules
    al, tr, te = (load_dataset("indian_pines", split=s) for s in ("all", "train", "test"))
    assert had or "tensorly" not in sys.modules  # located, never imported
    assert al.x.shape == (9234, 200) and al.x.dtype == torch.float32
    assert al.class_names == [INDIAN_PINES_CLASSES[c - 1] for c in NINE]
    assert torch.bincount(al.labels).tolist() == [DOCUMENTED[c - 1] for c in NINE]
    assert (len(tr), len(te)) == (7387, 1847)
    # independently of the loader: the raw files, every labelled pixel and the train-split map
    cube_f, gt_f = indian_pines_files(load_manifest("indian_pines"))
    cube, gt = np.load(cube_f), np.load(gt_f)
    assert cube.shape == (145, 145, 200) and gt.shape == (145, 145)
    assert np.bincount(gt.ravel(), minlength=17)[1:].tolist() == DOCUMENTED
    mask = np.isin(gt, NINE)
    raw = cube[mask].astype(np.float64)  # row-major pixel order, as the loader
    from sklearn.preprocessing import StandardScaler

    perm = np.random.default_rng(0).permutation(len(raw))
    train_rows = np.sort(perm[: round(0.8 * len(raw))])
    ref = StandardScaler().fit(raw[train_rows]).transform(raw)
    np.testing.assert_allclose(al.x.numpy(), ref, atol=2e-5, rtol=0)
    np.testing.assert_allclose(tr.x.numpy(), ref[train_rows], atol=2e-5, rtol=0)
    assert [NINE[i] for i in al.labels.tolist()] == gt[mask].tolist()
    assert float(te.x.double().mean(0).abs().max()) > 1e-3  # the train map, not the test's own


def _folder(tmp_path: Path, classes=None) -> Path:
    """A tiny scene of our own: 4 x 5 pixels, 3 bands, codes 0 (unlabelled), 2 and 11."""
    rng = np.random.default_rng(1)
    gt = np.array([[0, 2, 2, 11, 0], [2, 11, 11, 0, 2], [11, 2, 0, 11, 2], [2, 2, 11, 11, 0]])
    np.save(tmp_path / "Indian_pines_corrected.npy", rng.integers(1000, 9000, (4, 5, 3)).astype(np.int16))
    np.save(tmp_path / "Indian_pines_gt.npy", gt.astype(np.uint8))
    raw = yaml.safe_load(load_manifest("indian_pines").file.read_text())
    raw.update(path=str(tmp_path), options={"classes": classes or [11, 2]})
    f = tmp_path / "scene.yaml"
    f.write_text(yaml.safe_dump(raw))
    return f


def test_a_folder_of_ones_own_files_and_the_class_order(tmp_path):
    ds = load_dataset(_folder(tmp_path), split="all")
    gt = np.load(tmp_path / "Indian_pines_gt.npy")
    cube = np.load(tmp_path / "Indian_pines_corrected.npy")
    assert ds.class_names == ["Soybean-mintill", "Corn-notill"]  # the order of options.classes
    assert ds.labels.tolist() == [{11: 0, 2: 1}[c] for c in gt[gt > 0]]
    np.testing.assert_array_equal(ds.x.numpy(), cube[gt > 0].astype(np.float32))


@pytest.mark.parametrize("classes", [[0, 2], [2, 2], [17]])
def test_bad_classes_are_one_clear_line(tmp_path, classes):
    with pytest.raises(ValueError, match=r"options.classes must be distinct ground-truth codes in 1..16"):
        load_dataset(_folder(tmp_path, classes), split="all")


def test_missing_files_and_missing_package(tmp_path, monkeypatch):
    f = _folder(tmp_path)
    (tmp_path / "Indian_pines_gt.npy").unlink()
    with pytest.raises(FileNotFoundError, match="Indian_pines_gt.npy not found"):
        load_dataset(f, split="all")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorly" else real(name, *a))
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("indian_pines", split="train")
    assert "\n" not in str(err.value) and TENSORLY_INSTALL in str(err.value)
