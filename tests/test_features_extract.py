"""Batched extraction: equals the direct forward, chunk-invariant, bf16, cached."""

import pytest
import torch

from featsel.cache import FeatureCache
from featsel.features import create_featurizer, extract_features


@pytest.fixture(scope="module")
def feat():
    return create_featurizer("random-vit:depth=2,tap_every=1,embed_dim=16,num_heads=2", in_shape=(1, 8, 8))


def test_extract_equals_forward_and_is_chunk_invariant(feat):
    x = torch.randn(23, 1, 8, 8)
    direct = feat(x)
    for bs in (5, 23, 100):
        maps = extract_features(feat, x, batch_size=bs, device="cpu", progress=False)
        assert [m.shape for m in maps] == [d.shape for d in direct]
        for a, b in zip(maps, direct):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
            assert a.dtype == torch.float32 and a.device.type == "cpu"


def test_bf16_autocast_is_close(feat):
    x = torch.randn(8, 1, 8, 8)
    ref = extract_features(feat, x, batch_size=4)
    low = extract_features(feat, x, batch_size=4, bf16=True)
    assert all(m.dtype == torch.float32 for m in low)
    for a, b in zip(low, ref):
        err = (a - b).norm() / b.norm()
        assert 0 < err < 0.05  # bf16 really ran (not bit-equal) and stayed close


def test_bad_arguments(feat):
    with pytest.raises(ValueError, match="non-empty"):
        extract_features(feat, torch.zeros(0, 1, 8, 8))
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(feat, torch.zeros(2, 1, 8, 8), batch_size=0)


def test_cache_hit_miss_and_invalidation(feat, tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path)
    x = torch.randn(10, 1, 8, 8)
    data_id = {"dataset": "toy", "split": "test", "space": "pixels"}
    calls = []
    orig = type(feat).forward

    def counting(self, u):
        calls.append(len(u))
        return orig(self, u)

    monkeypatch.setattr(type(feat), "forward", counting)
    first = extract_features(feat, x, batch_size=4, cache=cache, data_id=data_id)
    assert sum(calls) == 10 and len(cache.ls()) == 1
    second = extract_features(feat, x, batch_size=7, cache=cache, data_id=data_id)  # hit
    assert sum(calls) == 10
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    # changed input, split, option, weights, or bf16: each a miss and a new entry
    x2 = x.clone()
    x2[3, 0, 2, 2] += 1e-3
    extract_features(feat, x2, cache=cache, data_id=data_id)
    extract_features(feat, x, cache=cache, data_id={**data_id, "split": "train"})
    other = create_featurizer(
        "random-vit:depth=2,tap_every=1,embed_dim=16,num_heads=2,seed=1", in_shape=(1, 8, 8)
    )
    extract_features(other, x, cache=cache, data_id=data_id)
    w = feat.model.blocks[0].attn.qkv.weight
    saved = w.detach().clone()
    with torch.no_grad():
        w[0, 0] += 1.0
    try:
        extract_features(feat, x, cache=cache, data_id=data_id)
    finally:
        with torch.no_grad():
            w.copy_(saved)
    extract_features(feat, x, cache=cache, data_id=data_id, bf16=True)
    assert len(cache.ls()) == 6
    assert sum(calls) == 10 * 6  # the first call and five misses, 10 samples each
    extract_features(feat, x, cache=cache, data_id=data_id)  # the original is still a hit
    assert sum(calls) == 60


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_extract_on_cuda_matches_cpu(feat):
    x = torch.randn(9, 1, 8, 8)
    ref = extract_features(feat.to("cpu"), x, batch_size=4, device="cpu")
    gpu = extract_features(feat, x, batch_size=4, device="cuda")
    low = extract_features(feat, x, batch_size=4, device="cuda", bf16=True)
    feat.to("cpu")
    for a, b, c in zip(gpu, ref, low):
        assert a.device.type == "cpu" and c.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
        assert (c - b).norm() / b.norm() < 0.05
