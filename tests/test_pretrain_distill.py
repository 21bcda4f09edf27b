"""Teacher (small CNN) and distillation (generation.pretrain.distill/teacher), and the CLI."""

import json

import pytest
import torch

from featsel.cli import main
from featsel.features import create_featurizer
from generation.pretrain.distill import DistillConfig, train_distill
from generation.pretrain.teacher import TeacherConfig, load_teacher, train_teacher

STUDENT = dict(data="digits", batch_size=32, depth=2, embed_dim=32, num_heads=2, patch_size=2,
               lr=2e-3, save_every=1000)


def test_teacher_learns_digits_and_resumes(tmp_path):
    cfg = TeacherConfig(data="digits", out=str(tmp_path / "t"), steps=60, width=16, batch_size=32,
                        lr=1e-2)
    res = train_teacher(cfg, progress=False)
    losses = torch.tensor(res["losses"])
    assert losses[-10:].mean() < 0.6 * losses[:10].mean()
    assert res["train_accuracy"] > 0.6  # 10 classes: chance is 0.1
    net = load_teacher(res["teacher"])
    g, p = net.features(torch.randn(3, 1, 8, 8))
    assert g.shape == (3, 16) and p.shape == (3, 16, 4, 4)
    more = train_teacher(TeacherConfig(**{**cfg.__dict__, "steps": 70}), resume=True, progress=False)
    assert more["step"] == 70 and len(more["losses"]) == 10


def test_distill_from_cnn_teacher_trains_loads_and_resumes(tmp_path):
    cfg = DistillConfig(**STUDENT, out=str(tmp_path / "d"), steps=60, teacher_steps=40)
    res = train_distill(cfg, progress=False)
    losses = torch.tensor(res["losses"])
    assert losses[-10:].mean() < 0.7 * losses[:10].mean()  # cosine loss on global + patch falls
    feat = create_featurizer(res["featurizer"])
    maps = feat(torch.randn(4, 1, 8, 8))
    assert [tuple(m.shape) for m in maps] == [(4, 32, 4, 4), (4, 32, 4, 4), (4, 32)]
    teacher_file = tmp_path / "d" / "teacher" / "teacher.pt"
    stamp = teacher_file.stat().st_mtime_ns
    more = train_distill(DistillConfig(**{**cfg.__dict__, "steps": 70}), resume=True, progress=False)
    assert more["step"] == 70 and len(more["losses"]) == 10
    assert teacher_file.stat().st_mtime_ns == stamp  # the teacher is not retrained on resume


def test_distill_from_a_registry_featurizer(tmp_path):
    cfg = DistillConfig(**STUDENT, out=str(tmp_path / "r"), steps=5,
                        teacher="random-vit:depth=1,tap_every=1,embed_dim=16,num_heads=2,"
                        "patch_size=4")
    res = train_distill(cfg, progress=False)
    assert res["step"] == 5 and torch.isfinite(torch.tensor(res["losses"])).all()
    with pytest.raises(ValueError, match="unknown featurizer"):
        train_distill(DistillConfig(**STUDENT, out=str(tmp_path / "bad"), steps=1,
                                    teacher="no-such-net"), progress=False)
    with pytest.raises(FileNotFoundError):  # offline: no InceptionV3 weights, fails fast
        train_distill(DistillConfig(**STUDENT, out=str(tmp_path / "inc"), steps=1,
                                    teacher="inception"), progress=False)


def test_cli_pretrain_teacher_on_mnist(tmp_path, capsys):
    out = str(tmp_path / "cli")
    args = ["pretrain", "teacher", "--data", "mnist", "--split", "test", "--steps", "3",
            "--out", out, "--set", "width=8", "--set", "n_max=128", "--quiet", "--json"]
    assert main(args) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["step"] == 3 and res["kind"] == "teacher"
    assert load_teacher(res["teacher"]).width == 8
    assert main(args) == 1  # exists and no --resume
    assert "--resume" in capsys.readouterr().err
    assert main([*args[:7], "5", *args[8:], "--resume"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 5
    assert main(["pretrain", "mae", "--out", out + "2", "--set", "nope=1"]) == 1
    assert "unknown option" in capsys.readouterr().err
