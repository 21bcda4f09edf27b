"""Generators, queues, EMA, checkpoints and config of the training backend."""

import copy

import pytest
import torch
import torch.nn.functional as F
import yaml

from generation.checkpoint import load_checkpoint, save_checkpoint
from generation.config import TrainConfig, load_config, save_config
from generation.ema import MultiEMA
from generation.models import DiTGenerator, MLPGenerator, create_generator, fourier_features
from generation.queues import RealQueues
from generation.train import sample_alpha

torch.set_num_threads(1)


# ------------------------------------------------------------------------------- models
def test_dit_shapes_conditioning_and_adaln_zero():
    torch.manual_seed(0)
    m = create_generator("tiny/4", sample_shape=(1, 28, 28), num_classes=10)
    assert isinstance(m, DiTGenerator) and m.noise_shape == (1, 28, 28) and m.grid == 7
    z = torch.randn(4, 1, 28, 28)
    lab = torch.tensor([0, 1, 2, 3])
    out = m(z, lab, torch.full((4,), 1.5))
    assert out.shape == z.shape
    # adaLN-Zero: at init every block is the identity, so class and alpha change nothing
    out2 = m(z, torch.tensor([9, 8, 7, 6]), torch.full((4,), 3.0))
    assert torch.allclose(out, out2, atol=1e-6)
    for p in m.parameters():  # open the gates
        p.data.add_(0.05 * torch.randn_like(p))
    a = m(z, lab, torch.full((4,), 1.5))
    assert not torch.allclose(a, m(z, torch.tensor([9, 8, 7, 6]), torch.full((4,), 1.5)))
    assert not torch.allclose(a, m(z, lab, torch.full((4,), 3.0)))
    a.sum().backward()  # differentiable end to end
    assert m.patch.weight.grad is not None


def test_dit_class_embedding_is_not_swamped_by_alpha():
    """Regression (issue 5, digits/MNIST at chance accuracy): with DiT's std-0.02 class
    embedding, |e_y| ~ 0.15 against |MLP(fourier(alpha))| ~ 4 at hidden 64, so adaLN learned
    alpha only and all classes shared one sample distribution. Class rows must differ from
    one another by at least as much as the alpha embedding varies over [1, 4]."""
    torch.manual_seed(0)
    m = create_generator("tiny/2", sample_shape=(1, 8, 8), num_classes=10)
    e = m.class_embed.weight[:10].detach()
    a = m.alpha_embed(torch.linspace(1.0, 4.0, 16)).detach()
    class_spread = torch.cdist(e, e).sum() / (10 * 9)
    alpha_spread = torch.cdist(a, a).max()
    assert class_spread > alpha_spread
    assert class_spread > 0.5 * a.norm(dim=1).mean()


def test_unpatchify_inverts_patch_layout():
    """A generator whose blocks are skipped maps each patch's pixels to the same place."""
    m = create_generator("tiny/2", sample_shape=(2, 8, 8), num_classes=2, depth=0)
    C, p = 2, 2
    # make final(patch(x)) the identity per patch: patch conv = identity on p*p*C, final = id
    hidden = m.pos.shape[-1]
    with torch.no_grad():
        m.patch.weight.zero_()
        m.pos.zero_()
        for c in range(C):
            for i in range(p):
                for j in range(p):
                    m.patch.weight[(c * p + i) * p + j, c, i, j] = 1.0
        m.final.weight.zero_()
        for c in range(C):
            for i in range(p):
                for j in range(p):  # final output layout is (p, p, C)
                    m.final.weight[(i * p + j) * C + c, (c * p + i) * p + j] = 1.0
        m.final_norm = torch.nn.Identity()
    assert hidden >= C * p * p
    x = torch.randn(3, C, 8, 8)
    assert torch.allclose(m(x, torch.zeros(3, dtype=torch.long), torch.ones(3)), x, atol=1e-6)


def test_presets_and_mlp_generator():
    b2 = create_generator("B/2", sample_shape=(4, 32, 32), num_classes=1000)
    assert (b2.grid, len(b2.blocks), b2.blocks[0].attn.heads) == (16, 12, 12)
    mlp = create_generator("mlp-tiny", sample_shape=(50,), num_classes=7)
    y = mlp(torch.randn(5, 50), torch.arange(5), torch.linspace(1, 4, 5))
    assert y.shape == (5, 50)
    with pytest.raises(ValueError, match="model must be one of"):
        create_generator("huge", sample_shape=(4, 32, 32), num_classes=3)
    # a spatial sample shape is generated flat and reshaped: row b of the head's output is sample b
    sp = create_generator("mlp-tiny", sample_shape=(4, 7, 7), num_classes=3)
    z, lab, a = torch.randn(2, 196), torch.tensor([0, 2]), torch.ones(2)
    y = sp(z, lab, a)
    assert y.shape == (2, 4, 7, 7) and sp.noise_shape == (196,)
    x = sp.stem(torch.cat([z, F.one_hot(lab, 4).float(), fourier_features(a, sp.n_freq)], 1))
    for blk in sp.blocks:
        x = x + blk(x)
    assert torch.equal(y.flatten(1), sp.head(x))
    with pytest.raises(ValueError, match="out_shape"):
        MLPGenerator(out_dim=10, num_classes=2, out_shape=(3, 3))
    with pytest.raises(ValueError, match="divisible by patch_size"):
        create_generator("tiny/3", sample_shape=(1, 8, 8), num_classes=3)


def test_fourier_features_and_alpha_power_law():
    f = fourier_features(torch.tensor([0.0, 1.0]), 8)
    assert f.shape == (2, 8) and torch.allclose(f[0, :4], torch.ones(4))
    g = torch.Generator().manual_seed(0)
    a = sample_alpha(200_000, 1.0, 4.0, 5.0, g)
    assert a.min() >= 1.0 and a.max() <= 4.0
    # CDF of alpha^-5 on [1, 4]: F(t) = (1 - t^-4) / (1 - 4^-4)
    for t in (1.1, 1.3, 2.0):
        assert (a <= t).float().mean().item() == pytest.approx((1 - t**-4) / (1 - 4**-4), abs=4e-3)


# ------------------------------------------------------------------------------- queues
def test_queues_are_prefilled_fifo_and_vectorised():
    x = torch.arange(60, dtype=torch.float32)[:, None]
    y = torch.arange(60) % 3
    q = RealQueues(3, (1,), class_size=4, uncond_size=10)
    q.prefill(x, y, torch.Generator().manual_seed(0))
    assert q.cls_fill.tolist() == [4, 4, 4] and int(q.unc_fill) == 10
    for c in range(3):  # class queues hold only their class
        assert torch.all(q.cls[c, :, 0] % 3 == c)
    # push 6 new samples of class 1 (and none of the others): only the newest 4 survive
    new = torch.tensor([100.0, 103, 106, 109, 112, 115])[:, None]
    q.push(new, torch.ones(6, dtype=torch.long))
    assert sorted(q.cls[1, :, 0].tolist()) == [106, 109, 112, 115]
    assert set(new[:, 0].tolist()) <= set(q.unc[:, 0].tolist())
    g = torch.Generator().manual_seed(1)
    s = q.sample_class(torch.tensor([1, 0]), 4, g)
    assert s.shape == (2, 4, 1)
    assert sorted(s[0, :, 0].tolist()) == [106, 109, 112, 115]  # without replacement
    assert torch.all(s[1, :, 0] % 3 == 0)
    big = q.sample_class(torch.tensor([2]), 9, g)  # more than the queue: with replacement
    assert big.shape == (1, 9, 1) and torch.all(big % 3 == 2)
    u = q.sample_uncond(5, 3, g)
    assert u.shape == (5, 3, 1) and set(u.flatten().tolist()) <= set(q.unc[:, 0].tolist())


def test_queue_errors_and_state_roundtrip():
    q = RealQueues(3, (2,), class_size=4, uncond_size=8)
    with pytest.raises(RuntimeError, match="prefill"):
        q.sample_class(torch.tensor([0]), 2, torch.Generator())
    with pytest.raises(ValueError, match="class"):
        q.prefill(torch.zeros(4, 2), torch.tensor([0, 0, 1, 1]), torch.Generator())
    with pytest.raises(ValueError, match="push expects"):
        q.push(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    q.prefill(torch.randn(30, 2), torch.arange(30) % 3, torch.Generator().manual_seed(0))
    q2 = RealQueues(3, (2,), class_size=4, uncond_size=8)
    q2.load_state_dict(copy.deepcopy(q.state_dict()))
    a = q.sample_class(torch.tensor([0, 2]), 3, torch.Generator().manual_seed(5))
    b = q2.sample_class(torch.tensor([0, 2]), 3, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="shape"):
        RealQueues(3, (2,), 5, 8).load_state_dict(q.state_dict())


# ---------------------------------------------------------------------------------- EMA
def test_multi_ema_update_formula():
    torch.manual_seed(0)
    m = torch.nn.Linear(3, 2)
    ema = MultiEMA(m, (0.9, 0.5))
    w0 = m.weight.detach().clone()
    m.weight.data.add_(1.0)
    ema.update(m)
    for d in (0.9, 0.5):
        assert torch.allclose(ema.shadow(d).weight, d * w0 + (1 - d) * (w0 + 1))
    assert not ema.shadow().weight.requires_grad
    st = ema.state_dict()
    ema2 = MultiEMA(torch.nn.Linear(3, 2), (0.9, 0.5))
    ema2.load_state_dict(st)
    assert torch.equal(ema2.shadow(0.5).weight, ema.shadow(0.5).weight)
    with pytest.raises(ValueError, match="decays"):
        MultiEMA(m, (1.5,))
    with pytest.raises(ValueError, match="not tracked"):
        ema.shadow(0.3)


# --------------------------------------------------------------------------- checkpoints
def _state():
    return {"step": 3, "config": {"a": 1}, "model": {"w": torch.ones(2)}, "ema": {},
            "optimizer": {}, "queues": {}, "rng": {"cpu": torch.get_rng_state()}}


def test_checkpoint_atomic_roundtrip_and_corruption(tmp_path):
    p = tmp_path / "run" / "checkpoint.pt"
    save_checkpoint(_state(), p)
    assert not p.with_name("checkpoint.pt.tmp").exists()
    st = load_checkpoint(p)
    assert st["step"] == 3 and torch.equal(st["model"]["w"], torch.ones(2))
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])  # truncated by a crash of a non-atomic writer
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(p)
    p.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(p)
    torch.save({"weights": torch.ones(1)}, p)
    with pytest.raises(ValueError, match="not a featsel training checkpoint"):
        load_checkpoint(p)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_refuses_pickled_objects(tmp_path):
    p = tmp_path / "c.pt"
    st = _state()
    st["config"] = TrainConfig()  # an arbitrary object: weights_only loading must refuse it
    torch.save(st, p)
    with pytest.raises(ValueError, match="corrupt or unreadable"):
        load_checkpoint(p)


# -------------------------------------------------------------------------------- config
def test_config_yaml_overrides_and_roundtrip(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"steps": 50, "model": "tiny/4", "loss": {"taus": [0.05]}}))
    cfg = load_config(f, ["lr=1e-3", "loss.iterations=converged", "betas=[0.8, 0.9]"])
    assert (cfg.steps, cfg.model, cfg.lr, cfg.betas) == (50, "tiny/4", 1e-3, (0.8, 0.9))
    assert cfg.loss.taus == (0.05,) and cfg.loss.iterations == "converged"
    save_config(cfg, tmp_path / "out.yaml")
    assert load_config(tmp_path / "out.yaml") == cfg


@pytest.mark.parametrize("over,msg", [
    (["stepz=3"], "unknown config key"),
    (["loss.tauz=[1]"], "loss.tauz"),
    (["steps=abc"], "expects an integer"),
    (["steps=0"], "steps must be >= 1"),
    (["lr=-1"], "lr must be > 0"),
    (["alpha_min=0.5"], "alpha_min"),
    (["amp=3"], "true/false"),
    (["loss.field=unit"], "loss.field"),
    (["n_unc=2000"], "n_unc"),
    (["eval_decay=0.5"], "eval_decay"),
    (["nokeyvalue"], "key=value"),
    (["steps=[1"], "not valid YAML"),
    (["out=!!python/object/apply:os.system [ls]"], "not valid YAML"),
])
def test_bad_config_errors(over, msg):
    with pytest.raises(ValueError, match=msg):
        load_config(None, over)


def test_typed_flags_are_not_reparsed_as_yaml(tmp_path):
    # `featsel train --out "runs/a #1" --data no`: YAML would make these "runs/a" and False
    cfg = load_config(None, ["steps=3"], typed={"out": str(tmp_path / "a #1"), "data": "no"})
    assert cfg.out == str(tmp_path / "a #1") and cfg.data == "no" and cfg.steps == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1\n")
    with pytest.raises(ValueError, match="bad.yaml' is not valid YAML"):
        load_config(bad)


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "nope.yaml")


def test_shipped_configs_load():
    from pathlib import Path

    files = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert files
    for f in files:
        load_config(f)
