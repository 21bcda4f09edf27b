"""MAE pretraining (generation.pretrain.mae): a few steps on scikit-learn digits (8x8), tiny ViT."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from featsel.features import create_featurizer
from generation.pretrain.mae import MAEConfig, patchify, train_mae

TINY = dict(data="digits", batch_size=32, depth=2, embed_dim=32, num_heads=2, decoder_dim=32,
            patch_size=2, mask_ratio=0.5, lr=2e-3, save_every=1000)


def test_patchify_matches_unfold_order():
    u = torch.randn(2, 3, 8, 8)
    ref = F.unfold(u, 2, stride=2)  # (B, C*p*p, L), channel order (C, p, p), L row-major
    ref = ref.reshape(2, 3, 2, 2, 16).permute(0, 4, 2, 3, 1).reshape(2, 16, 12)
    assert torch.equal(patchify(u, 2), ref)


def test_mae_trains_finetunes_and_loads_through_registry(tmp_path):
    cfg = MAEConfig(**TINY, out=str(tmp_path / "mae"), steps=80, finetune_steps=10, cls_warmup=5)
    res = train_mae(cfg, progress=False)
    losses = torch.tensor(res["losses"])
    assert len(losses) == 90 and res["step"] == 90
    assert losses[70:80].mean() < 0.9 * losses[:10].mean()  # the reconstruction error falls
    feat = create_featurizer(res["featurizer"])
    assert feat.map_names == ["keys.2", "tokens", "pooled"]
    maps = feat(torch.randn(5, 1, 8, 8))
    assert [tuple(m.shape) for m in maps] == [(5, 32, 4, 4), (5, 32, 4, 4), (5, 32)]
    init = create_featurizer(res["spec"], in_shape=(1, 8, 8))  # same spec, untrained weights
    key = "model.patch_embed.proj.weight"
    w, w0 = feat.state_dict()[key], init.state_dict()[key]
    assert w.shape == w0.shape and not torch.allclose(w, w0)
    state = torch.load(tmp_path / "mae" / "state.pt", weights_only=True)
    assert state["step"] == 90


def test_mae_resume_matches_an_uninterrupted_run(tmp_path):
    straight = train_mae(MAEConfig(**TINY, out=str(tmp_path / "a"), steps=20), progress=False)
    cfg = MAEConfig(**TINY, out=str(tmp_path / "b"), steps=10)
    first = train_mae(cfg, progress=False)
    assert first["step"] == 10
    second = train_mae(dataclasses.replace(cfg, steps=20), resume=True, progress=False)
    assert second["step"] == 20 and len(second["losses"]) == 10
    assert torch.allclose(torch.tensor(first["losses"] + second["losses"]),
                          torch.tensor(straight["losses"]), rtol=1e-5, atol=1e-6)
    sa = create_featurizer(straight["featurizer"]).state_dict()
    sb = create_featurizer(second["featurizer"]).state_dict()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-5, atol=1e-6)


def test_mae_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="mask_ratio"):
        train_mae(MAEConfig(**{**TINY, "mask_ratio": 1.0}, out=str(tmp_path / "x")), progress=False)
    with pytest.raises(ValueError, match="patch_size"):
        train_mae(MAEConfig(**{**TINY, "patch_size": 3}, out=str(tmp_path / "y"), steps=1),
                  progress=False)
    with pytest.raises(ValueError, match="num_heads"):
        train_mae(MAEConfig(**{**TINY, "num_heads": 5}, out=str(tmp_path / "z"), steps=1),
                  progress=False)
    cfg = MAEConfig(**TINY, out=str(tmp_path / "run"), steps=2)
    train_mae(cfg, progress=False)
    with pytest.raises(ValueError, match="--resume"):
        train_mae(cfg, progress=False)  # never overwrite a run silently
    with pytest.raises(ValueError, match="depth"):
        train_mae(dataclasses.replace(cfg, depth=3), resume=True, progress=False)
    with pytest.raises(FileNotFoundError):  # no MNIST files under this data root
        train_mae(dataclasses.replace(cfg, data="mnist", out=str(tmp_path / "m"),
                                      data_root=str(tmp_path)), progress=False)
