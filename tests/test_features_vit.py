"""ViT featurizers: hooked keys equal keys recomputed by hand, taps, facets, checkpoints,
pixel inputs, and fast offline errors."""

import time

import pytest
import torch

from featsel.features import create_featurizer, load_featurizer, save_featurizer
from featsel.hub import WeightsUnavailableError

SPEC = "random-vit:depth=4,tap_every=2,embed_dim=32,num_heads=4,qk_norm=true,seed=3"


@pytest.fixture(scope="module")
def vit():
    return create_featurizer(SPEC, in_shape=(4, 8, 8))


def _keys_by_hand(block, x):
    """norm1 -> qkv -> key slice -> k_norm, from the block's input tokens x: (B, N, D)."""
    attn = block.attn
    b, n, _ = x.shape
    qkv = attn.qkv(block.norm1(x)).reshape(b, n, 3, attn.num_heads, attn.head_dim)
    k = qkv[:, :, 1].permute(0, 2, 1, 3)  # (B, heads, N, head_dim)
    return attn.k_norm(k)


def test_hooked_keys_equal_keys_by_hand(vit):
    model = vit.model
    assert vit.taps == [1, 3] and vit.map_names == ["keys.2", "keys.4", "tokens", "pooled"]
    assert not isinstance(model.blocks[1].attn.k_norm, torch.nn.Identity)  # qk_norm is live
    inputs = {}
    hooks = [
        model.blocks[i].register_forward_pre_hook(lambda m, a, i=i: inputs.__setitem__(i, a[0]))
        for i in vit.taps
    ]
    u = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    try:
        maps = vit(u)
    finally:
        for h in hooks:
            h.remove()
    grid = (8 // vit.patch[0], 8 // vit.patch[1])
    assert vit.prefix == 1  # the class token is dropped from the spatial map
    for j, i in enumerate(vit.taps):
        k = _keys_by_hand(model.blocks[i], inputs[i])  # (B, heads, 1 + HW, head_dim)
        heads, hd = k.shape[1], k.shape[3]
        expected = k[:, :, 1:].permute(0, 1, 3, 2).reshape(3, heads * hd, *grid)
        torch.testing.assert_close(maps[j], expected, rtol=1e-5, atol=1e-6)
        # channel c = head * head_dim + d at position (h, w) = token 1 + h * W + w
        torch.testing.assert_close(maps[j][:, 1 * hd + 2, 1, 0], k[:, 1, 1 + grid[1], 2])
    assert maps[2].shape == (3, 32, *grid) and maps[3].shape == (3, 32)
    feats = model.forward_features(u)
    torch.testing.assert_close(maps[2], feats[:, 1:].transpose(1, 2).reshape(3, 32, *grid))
    blocks = vit.blocks(u)
    assert blocks["keys.2/per_loc"].n_sub == grid[0] * grid[1]
    assert blocks["input/rms"].x.shape == (3, 1, 4)


def test_keys_only_stops_early_and_matches(vit):
    keys_only = create_featurizer(SPEC + ",facets=keys", in_shape=(4, 8, 8))
    u = torch.randn(2, 4, 8, 8)
    full = vit(u)
    short = keys_only(u)
    assert len(short) == 2
    for a, b in zip(short, full[:2]):
        torch.testing.assert_close(a, b)


def test_differentiable_in_u_and_frozen(vit):
    u = torch.randn(2, 4, 8, 8, requires_grad=True)
    assert not any(p.requires_grad for p in vit.parameters())
    sum(m.sum() for m in vit(u)).backward()
    assert u.grad is not None and u.grad.abs().sum() > 0


def test_seed_and_fingerprint(vit):
    same = create_featurizer(SPEC, in_shape=(4, 8, 8))
    other = create_featurizer(SPEC.replace("seed=3", "seed=4"), in_shape=(4, 8, 8))
    assert same.fingerprint() == vit.fingerprint()
    assert other.fingerprint() != vit.fingerprint()
    u = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(same(u)[0], vit(u)[0])


def test_checkpoint_round_trip(vit, tmp_path):
    path = save_featurizer(vit, tmp_path / "feat.pt")
    assert not list(tmp_path.glob(".*tmp*"))
    for loaded in (
        load_featurizer(path),
        create_featurizer(str(path)),
        create_featurizer(f"checkpoint:path={path}"),
    ):
        assert loaded.map_names == vit.map_names
        u = torch.randn(2, 4, 8, 8)
        for a, b in zip(loaded(u), vit(u)):
            torch.testing.assert_close(a, b)
        assert loaded.weights_hash() == vit.weights_hash()
    # a featsel checkpoint also serves as vit's `weights=` file
    via_weights = create_featurizer(
        f"vit:model=vit_tiny_patch16_224,depth=4,tap_every=2,embed_dim=32,num_heads=4,"
        f"qk_norm=true,patch_size=1,weights={path}",
        in_shape=(4, 8, 8),
    )
    assert via_weights.weights_hash() == vit.weights_hash()
    with pytest.raises(ValueError, match="not a featsel featurizer checkpoint"):
        torch.save({"x": torch.zeros(1)}, tmp_path / "other.pt")
        load_featurizer(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_featurizer(tmp_path / "missing.pt")


def test_timm_weights_file_loads_exactly(vit, tmp_path):
    # a plain timm state dict given as `weights=` reproduces the saved weights exactly
    sd = {k[len("model.") :]: v for k, v in vit.state_dict().items() if k.startswith("model.")}
    torch.save(sd, tmp_path / "timm.pth")
    feat = create_featurizer(
        "vit:model=vit_tiny_patch16_224,depth=4,tap_every=2,embed_dim=32,num_heads=4,"
        f"qk_norm=true,patch_size={vit.patch[0]},weights={tmp_path / 'timm.pth'}",
        in_shape=(4, 8, 8),
    )
    assert feat.weights_hash() == vit.weights_hash()


def test_weights_file_wrapped_with_head_safetensors_and_mismatch(vit, tmp_path):
    """Training checkpoints wrap the state dict and carry a classifier head; safetensors files
    load the same; a file of another architecture is a clear error, not random weights."""
    from safetensors.torch import save_file

    sd = {k[len("model.") :]: v for k, v in vit.state_dict().items() if k.startswith("model.")}
    spec = ("vit:model=vit_tiny_patch16_224,depth=4,tap_every=2,embed_dim=32,num_heads=4,"
            f"qk_norm=true,patch_size={vit.patch[0]},weights=")
    head = {"head.weight": torch.zeros(10, 32), "head.bias": torch.zeros(10)}
    torch.save({"model": {**sd, **head}, "epoch": 3}, tmp_path / "ckpt.pth")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "w.safetensors"))
    for name in ("ckpt.pth", "w.safetensors"):
        feat = create_featurizer(spec + str(tmp_path / name), in_shape=(4, 8, 8))
        assert feat.weights_hash() == vit.weights_hash(), name
    del sd["blocks.3.mlp.fc2.weight"]
    torch.save(sd, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="does not fit 'vit_tiny_patch16_224'.*blocks.3.mlp.fc2"):
        create_featurizer(spec + str(tmp_path / "partial.pth"), in_shape=(4, 8, 8))
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="does not hold a state dict"):
        create_featurizer(spec + str(tmp_path / "list.pth"), in_shape=(4, 8, 8))


def test_pixel_input_resizes_and_normalises():
    from featsel.spaces import PixelSpace

    feat = create_featurizer(
        "random-vit:depth=2,tap_every=1,embed_dim=16,num_heads=2,img_size=16,patch_size=4,"
        "input=pixels,facets=keys+cls",
        space=PixelSpace((1, 8, 8)),
    )
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    prepared = feat.prepare(x)
    assert prepared.shape == (2, 3, 16, 16)
    # grey -> 3 channels, [-1, 1] -> [0, 1] -> (v - 0.5) / 0.5 = back to [-1, 1] after resizing
    up = torch.nn.functional.interpolate(
        ((x + 1) / 2).expand(-1, 3, -1, -1), size=(16, 16), mode="bicubic", antialias=True
    )
    torch.testing.assert_close(prepared, (up - 0.5) / 0.5)
    maps = feat(x)
    assert [tuple(m.shape) for m in maps] == [(2, 16, 4, 4), (2, 16, 4, 4), (2, 16)]


def test_option_errors():
    with pytest.raises(ValueError, match="facets"):
        create_featurizer("random-vit:depth=2,facets=keys+logits", in_shape=(4, 8, 8))
    with pytest.raises(ValueError, match="tap_every=5 > depth=2"):
        create_featurizer("random-vit:depth=2,tap_every=5,facets=keys", in_shape=(4, 8, 8))
    with pytest.raises(ValueError, match="input=generation needs"):
        create_featurizer("random-vit:depth=2", in_shape=(16,))
    with pytest.raises(ValueError, match="Unknown model"):
        create_featurizer("random-vit:model=no_such_vit", in_shape=(4, 8, 8))


@pytest.mark.parametrize(
    "spec", ["vit", "dinov2", "vit:model=hf-hub:someone/some-vit", "vit:model=vit_base_patch16_224"]
)
def test_offline_pretrained_fails_fast_and_clearly(spec, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    t = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="weights=") as err:
        create_featurizer(spec, in_shape=(3, 32, 32))
    assert time.perf_counter() - t < 5
    assert "HF_HUB_OFFLINE" in str(err.value)


def test_missing_weights_file():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        create_featurizer(
            "vit:model=vit_tiny_patch16_224,weights=/nonexistent/w.safetensors", in_shape=(3, 32, 32)
        )
