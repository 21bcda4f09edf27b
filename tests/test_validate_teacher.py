"""The trained CNN teacher (teacher.pt) as a registry featurizer, without importing generation."""

import subprocess
import sys

import pytest
import torch

from featsel.features import create_featurizer, list_featurizers, save_featurizer
from featsel.features.cnn import TEACHER_FORMAT, SmallCNN, is_teacher_checkpoint


def _write_teacher(path, in_chans=1, width=8, depth=2):
    torch.manual_seed(0)
    net = SmallCNN(in_chans, 10, width, depth)
    arch = {"in_chans": in_chans, "n_classes": 10, "width": width, "depth": depth}
    torch.save({"format": TEACHER_FORMAT, "arch": arch, "model": net.state_dict()}, path)
    return net.eval()


def test_teacher_path_is_a_featurizer(tmp_path):
    path = tmp_path / "teacher.pt"
    net = _write_teacher(path)
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    for spec in (str(path), f"cnn-teacher:path={path}"):
        f = create_featurizer(spec, in_shape=(1, 8, 8))
        patch, pooled = f(x)
        ref_pooled, ref_patch = net.features(x)
        assert f.map_names == ["patch", "pooled"]
        assert patch.shape == (5, 8, 4, 4) and pooled.shape == (5, 8)
        torch.testing.assert_close(patch, ref_patch, rtol=0, atol=0)
        torch.testing.assert_close(pooled, patch.mean((2, 3)), rtol=1e-6, atol=1e-6)
        assert not any(p.requires_grad for p in f.parameters())
    assert "cnn-teacher" in {e["name"] for e in list_featurizers()}
    # a featsel featurizer checkpoint of it round-trips too
    saved = save_featurizer(f, tmp_path / "feat.pt")
    g = create_featurizer(str(saved))
    torch.testing.assert_close(g(x)[1], f(x)[1], rtol=0, atol=0)


def test_teacher_bad_inputs(tmp_path):
    path = tmp_path / "teacher.pt"
    _write_teacher(path, in_chans=3)
    f = create_featurizer(str(path))
    with pytest.raises(ValueError, match="needs images"):
        f(torch.zeros(2, 1, 8, 8))
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    assert not is_teacher_checkpoint(other)
    with pytest.raises(ValueError, match="not a featsel"):
        create_featurizer(str(other))
    with pytest.raises(ValueError, match="CNN teacher"):
        create_featurizer(f"cnn-teacher:path={other}")
    with pytest.raises(FileNotFoundError):
        create_featurizer(f"cnn-teacher:path={tmp_path / 'missing.pt'}")


def test_trained_teacher_loads_the_same_in_featsel(tmp_path):
    from generation.pretrain.teacher import TeacherConfig, load_teacher, train_teacher

    res = train_teacher(TeacherConfig(data="digits", out=str(tmp_path / "t"), steps=3,
                                      batch_size=16, width=8, depth=2), progress=False)
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    ref = load_teacher(res["teacher"]).features(x)
    f = create_featurizer(res["teacher"])
    torch.testing.assert_close(f(x)[1], ref[0], rtol=0, atol=0)
    torch.testing.assert_close(f(x)[0], ref[1], rtol=0, atol=0)


def test_featsel_features_do_not_import_generation():
    code = ("import sys, featsel.features.registry; "
            "sys.exit(any(m.startswith('generation') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
