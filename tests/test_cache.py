"""The on-disk feature cache and `featsel cache` / `featsel featurizers`."""

import json

import pytest
import torch

from featsel.cache import FeatureCache, tensor_sha256
from featsel.cli import main


def test_put_get_ls_clear_atomic(tmp_path):
    cache = FeatureCache(tmp_path / "c")
    assert cache.ls() == [] and cache.get(cache.key(a=1)) is None
    k1 = cache.key(dataset="mnist", split="test", featurizer="pca:dim=3")
    k2 = cache.key(dataset="digits", split="test", featurizer="pca:dim=3")
    assert k1 != k2 and k1 == cache.key(split="test", featurizer="pca:dim=3", dataset="mnist")
    value = {"maps": [torch.arange(6.0).reshape(2, 3)], "names": ["pca"]}
    cache.put(k1, value, {"dataset": "mnist", "split": "test"})
    cache.put(k2, value, {"dataset": "digits", "split": "test"})
    got = cache.get(k1)
    assert torch.equal(got["maps"][0], value["maps"][0]) and got["names"] == ["pca"]
    assert k1 in cache
    assert not [p for p in (tmp_path / "c").iterdir() if ".tmp" in p.name]
    entries = cache.ls()
    assert {e.parts["dataset"] for e in entries} == {"mnist", "digits"}
    assert all(e.bytes > 0 for e in entries)
    assert cache.clear(dataset="mnist") == 1 and cache.get(k1) is None and k2 in cache
    assert cache.clear() == 1 and cache.ls() == []
    with pytest.raises(ValueError, match="hex"):
        cache.get("../etc/passwd")


def test_corrupt_entry_is_a_miss(tmp_path):
    cache = FeatureCache(tmp_path)
    k = cache.key(x=1)
    cache.put(k, {"maps": []})
    (tmp_path / f"{k}.pt").write_bytes(b"not a torch file")
    assert cache.get(k) is None and k not in cache


def test_tensor_sha256_sees_values_shape_dtype():
    x = torch.arange(12.0)
    assert tensor_sha256(x) == tensor_sha256(x.clone())
    assert tensor_sha256(x) != tensor_sha256(x.reshape(3, 4))
    assert tensor_sha256(x) != tensor_sha256(x.double())
    y = x.clone()
    y[7] = 7.0000005
    assert tensor_sha256(x) != tensor_sha256(y)
    assert tensor_sha256(x, chunk_bytes=5) == tensor_sha256(x)
    assert tensor_sha256(x.reshape(3, 4).t()) == tensor_sha256(x.reshape(3, 4).t().contiguous())


def test_cli_cache_and_featurizers(tmp_path, capsys):
    cache = FeatureCache(tmp_path)
    cache.put(
        cache.key(a=1), {"maps": []}, {"dataset": "mnist", "split": "test", "featurizer": "identity", "n": 3}
    )
    assert main(["cache", "ls", "--cache-dir", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [e["dataset"] for e in out["entries"]] == ["mnist"]
    assert main(["cache", "ls", "--cache-dir", str(tmp_path)]) == 0
    assert "mnist/test" in capsys.readouterr().out
    assert main(["cache", "clear", "--cache-dir", str(tmp_path), "--dataset", "digits"]) == 0
    assert "removed: 0" in capsys.readouterr().out
    assert main(["cache", "clear", "--cache-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == 1
    assert main(["featurizers", "--json"]) == 0
    names = [e["name"] for e in json.loads(capsys.readouterr().out)["featurizers"]]
    assert {
        "identity",
        "pca",
        "random-projection",
        "random-vit",
        "vit",
        "dinov2",
        "inception",
        "vae-latent",
        "checkpoint",
    } <= set(names)
    assert main(["featurizers", "vit"]) == 0
    assert "tap_every=3" in capsys.readouterr().out
    assert main(["featurizers", "resnet"]) == 1
    assert "unknown featurizer" in capsys.readouterr().err


def test_an_entry_served_under_another_key_is_a_miss(tmp_path):
    """Issue 15.6: a swapped file (pca features under identity's key) is detected, not served."""
    cache = FeatureCache(tmp_path)
    k_id, k_pca = cache.key(featurizer="identity"), cache.key(featurizer="pca:dim=16")
    cache.put(k_id, {"maps": [torch.zeros(2, 3)]})
    cache.put(k_pca, {"maps": [torch.ones(2, 16)]})
    (tmp_path / f"{k_pca}.pt").replace(tmp_path / f"{k_id}.pt")
    with pytest.warns(UserWarning, match="another entry"):
        assert cache.get(k_id) is None
    assert k_id not in cache


def test_size_cap_removes_least_recently_used(tmp_path, monkeypatch):
    import os
    import time

    cache = FeatureCache(tmp_path, max_bytes=None)
    keys = [cache.key(i=i) for i in range(3)]
    for i, k in enumerate(keys):
        cache.put(k, {"x": torch.zeros(10_000)})
        t = time.time() - 100 + i
        os.utime(tmp_path / f"{k}.pt", (t, t))
    size = cache.ls()[0].bytes
    cache.get(keys[0])  # the oldest write is the most recent use now
    k_new = cache.key(i=3)
    cache.max_bytes = int(2.5 * size)
    cache.put(k_new, {"x": torch.zeros(10_000)})
    assert {e.key for e in cache.ls()} == {keys[0], k_new}
    monkeypatch.setenv("FEATSEL_CACHE_MAX", "1.5K")
    assert FeatureCache(tmp_path).max_bytes == 1536
    monkeypatch.setenv("FEATSEL_CACHE_MAX", "0")
    assert FeatureCache(tmp_path).max_bytes is None
    monkeypatch.setenv("FEATSEL_CACHE_MAX", "lots")
    with pytest.raises(ValueError, match="FEATSEL_CACHE_MAX"):
        FeatureCache(tmp_path)


def test_the_suite_uses_a_temporary_cache():
    from pathlib import Path

    from featsel.cache import default_cache_dir

    assert not str(default_cache_dir()).startswith(str(Path.home() / ".cache"))
