"""The training loop: a few steps of a tiny model, exact resume after a kill, DDP on two gloo
processes equal to one process, and the CLI path (train -> sample -> evaluate)."""

import os
import socket

import pytest
import torch
from train_helpers import digits_data, projection_featurizer, read_metrics

from generation.checkpoint import load_checkpoint
from generation.config import load_config
from generation.train import TrainData, train

torch.set_num_threads(1)

SMALL = dict(steps=6, model="tiny/4", n_classes=4, n_gen=8, n_pos=16, n_unc=8, queue_size=24,
             uncond_queue_size=48, queue_push=16, ckpt_every=2, log_every=1, progress=False,
             warmup_steps=2, ema_decays=[0.9, 0.99])


def _cfg(out, **kw):
    return load_config(None, {**SMALL, "out": str(out), **kw})


def test_few_steps_write_metrics_checkpoint_and_move_the_model(tmp_path):
    data = digits_data()
    res = train(_cfg(tmp_path / "r"), data=data, featurizer=projection_featurizer())
    assert res["steps_run"] == 6
    rows = read_metrics(tmp_path / "r" / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 7))
    for key in ("loss", "lambda", "grad_norm", "marginal_error/cond", "marginal_error/self",
                "marginal_error/uncond", "time_ot", "samples_per_s", "lr"):
        assert all(torch.isfinite(torch.tensor(r[key])) for r in rows), key
    assert rows[0]["lr"] == pytest.approx(4e-4 / 2)  # linear warmup over 2 steps
    assert 0 < rows[-1]["time_ot"] < rows[-1]["time_step"]
    st = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    assert st["step"] == 6 and set(st["ema"]) == {"0.9", "0.99"}
    fresh = train.__globals__["build_model"](_cfg(tmp_path / "x"), (1, 8, 8), 10)
    moved = [not torch.equal(st["model"][k], v) for k, v in fresh.state_dict().items()]
    assert any(moved)
    with pytest.raises(ValueError, match="already holds this featsel train run"):
        train(_cfg(tmp_path / "r"), data=data, featurizer=projection_featurizer())


class _KilledAt(torch.nn.Module):
    """Featurizer wrapper that dies (like a SIGKILL mid-step) on its n-th `blocks` call."""

    def __init__(self, inner, n):
        super().__init__()
        self.inner, self.n, self.calls = inner, n, 0

    def blocks(self, u):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt("killed")
        return self.inner.blocks(u)


@pytest.mark.parametrize("warm", [False, True])
def test_resume_after_kill_continues_the_same_curve(tmp_path, warm):
    data = digits_data()
    over = {"loss": {"warm_start": warm}}
    train(_cfg(tmp_path / "a", **over), data=data, featurizer=projection_featurizer())
    with pytest.raises(KeyboardInterrupt):  # killed during step 5 (2 blocks calls per step)
        train(_cfg(tmp_path / "b", **over), data=data, featurizer=_KilledAt(projection_featurizer(), 9))
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 4  # lost < 1 interval
    res = train(_cfg(tmp_path / "b", **over), data=data, featurizer=projection_featurizer(), resume=True)
    assert res["resumed_from"] == 4 and res["steps_run"] == 2
    a, b = read_metrics(tmp_path / "a" / "metrics.jsonl"), read_metrics(tmp_path / "b" / "metrics.jsonl")
    assert [r["step"] for r in b] == list(range(1, 7))
    for key in ("loss", "lambda", "grad_norm", "marginal_error/cond"):
        assert [r[key] for r in a] == [r[key] for r in b], key
    sa = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    sb = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    for part in ("model", "queues"):
        for k in sa[part]:
            assert torch.equal(sa[part][k], sb[part][k]), (part, k)
    for d in sa["ema"]:
        for k in sa["ema"][d]:
            assert torch.equal(sa["ema"][d][k], sb["ema"][d][k])


def test_training_in_stages_with_until_equals_training_straight(tmp_path):
    """featsel validate trains to each evaluation step (until=s) and resumes: the stop writes a
    checkpoint and flushes the metrics between log/checkpoint intervals, and the schedule
    follows cfg.steps, so the staged run is the straight run."""
    data = digits_data()
    over = {"ckpt_every": 4, "log_every": 4}
    train(_cfg(tmp_path / "a", **over), data=data, featurizer=projection_featurizer())
    r1 = train(_cfg(tmp_path / "b", **over), data=data, featurizer=projection_featurizer(),
               until=3)
    assert r1["steps_run"] == 3 and r1["stopped_at"] == 3
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 3
    assert [r["step"] for r in read_metrics(tmp_path / "b" / "metrics.jsonl")] == [1, 2, 3]
    r2 = train(_cfg(tmp_path / "b", **over), data=data, featurizer=projection_featurizer(),
               resume=True, until=99)  # capped at cfg.steps
    assert r2["resumed_from"] == 3 and r2["steps_run"] == 3 and r2["stopped_at"] == 6
    a, b = read_metrics(tmp_path / "a" / "metrics.jsonl"), read_metrics(tmp_path / "b" / "metrics.jsonl")
    assert [r["step"] for r in b] == list(range(1, 7))
    for key in ("loss", "lr", "grad_norm"):
        assert [r[key] for r in a] == [r[key] for r in b], key
    sa = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    sb = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    for k in sa["model"]:
        assert torch.equal(sa["model"][k], sb["model"][k]), k
    with pytest.raises(ValueError, match="until"):
        train(_cfg(tmp_path / "c"), data=data, featurizer=projection_featurizer(), until=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out, data, feat):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist

    try:
        # CPU tensors, hence gloo, also on a GPU host
        train(_cfg(out, steps=3, ckpt_every=3, device="cpu"), data=data, featurizer=feat)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_ddp_two_gloo_processes_equal_one_process(tmp_path):
    import torch.multiprocessing as mp

    data, feat = digits_data(), projection_featurizer()
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "ddp"), data, feat), nprocs=2,
             join=True)
    train(_cfg(tmp_path / "one", steps=3, ckpt_every=3, device="cpu"), data=data, featurizer=feat)
    a = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "one" / "checkpoint.pt")
    assert a["step"] == b["step"] == 3
    for k in b["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], atol=1e-5, rtol=1e-4), k
    ma, mb = read_metrics(tmp_path / "ddp" / "metrics.jsonl"), read_metrics(tmp_path / "one" /
                                                                    "metrics.jsonl")
    # rank 0 logs its own half of the classes; the gradient (global) must agree
    assert [r["grad_norm"] for r in ma] == pytest.approx([r["grad_norm"] for r in mb], rel=1e-4)


def test_ddp_rejects_indivisible_classes(tmp_path, monkeypatch):
    import generation.train as gt

    monkeypatch.setattr(gt, "_init_distributed", lambda device: (0, 3))
    with pytest.raises(ValueError, match="divisible by the number of ranks"):
        train(_cfg(tmp_path / "r"), data=digits_data(), featurizer=projection_featurizer())


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="exceeds the number of classes"):
        train(_cfg(tmp_path / "r", n_classes=12), data=digits_data(), featurizer=projection_featurizer())
    with pytest.raises(ValueError, match="TrainData"):
        TrainData(x=torch.zeros(3, 4), y=torch.zeros(2), num_classes=2)


def test_train_refuses_a_featurizer_without_gradient_before_any_work(tmp_path, monkeypatch,
                                                                       capsys):
    """`featsel train` reads `Featurizer.differentiable` from the spec (no weights, no data):
    the controls and inception are refused in one line naming --featurizer; a config file's
    featurizer too; --allow-no-gradient trains with it anyway (validate's control runs)."""
    import generation.train as gt
    from featsel.cli import main
    from featsel.features import create_featurizer, save_featurizer

    def no_work(*a, **k):
        raise AssertionError("data loaded or training started")

    real_load = gt.load_training_data
    monkeypatch.setattr(gt, "load_training_data", no_work)
    monkeypatch.setattr(gt, "train", no_work)
    noise_pt = save_featurizer(create_featurizer("noise:dim=2"), tmp_path / "noise.pt")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: digits\nfeaturizer: constant:dim=3\n")
    for args in (["--featurizer", "noise:dim=4"], ["--featurizer", "inception"],
                 ["--featurizer", str(noise_pt)], ["--config", str(cfg)]):
        assert main(["train", "--data", "digits", "--out", str(tmp_path / "r"), *args]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("featsel train: error: --featurizer ")
        assert "not differentiable" in err[0] and "gradient to the generator" in err[0]
        assert not (tmp_path / "r").exists()
    seen = []
    # past the refusal, the CPU preset may load the data to size its classes per step
    monkeypatch.setattr(gt, "load_training_data", real_load)
    monkeypatch.setattr(gt, "train", lambda cfg, **kw: seen.append(cfg.featurizer) or {})
    assert main(["train", "--data", "digits", "--out", str(tmp_path / "r"), "--featurizer",
                 "noise:dim=4", "--allow-no-gradient"]) == 0
    assert main(["train", "--data", "digits", "--out", str(tmp_path / "r"), "--featurizer",
                 "pca:dim=4"]) == 0
    assert seen == ["noise:dim=4", "pca:dim=4"]


def test_manifest_data_then_sample_and_evaluate(tmp_path, monkeypatch):
    """The CLI path on the bundled digits manifest: train 3 steps, sample a grid, evaluate."""
    monkeypatch.setenv("FEATSEL_CACHE_DIR", str(tmp_path / "cache"))
    from featsel.cli import main
    from generation.evaluate import evaluate_run, proportional_counts
    from generation.sample import sample_run

    out = tmp_path / "run"
    rc = main(["train", "--data", "digits", "--featurizer", "identity", "--model", "tiny/4",
               "--steps", "3", "--out", str(out), "--set", "n_classes=10", "--set", "n_gen=4",
               "--set", "n_pos=8", "--set", "n_unc=4", "--set", "progress=false",
               "--set", "queue_size=16", "--set", "uncond_queue_size=32"])
    assert rc == 0 and (out / "checkpoint.pt").exists()
    res = sample_run(out, classes=[0, 3], alphas=[1.0, 2.0], n=3, out=tmp_path / "g.png")
    assert res["n"] == 12 and (tmp_path / "g.png").stat().st_size > 0
    ev = evaluate_run(out, n_per_class=6, alphas=(1.0,), featurizers=["pca:dim=8"], kid=False)
    e = ev["alphas"]["1"]["pca:dim=8"]
    assert e["fd"] > 0 and (out / "eval.json").exists()
    # support: k-NN precision of the 60 samples against half of the real split, beside the
    # other half's own (a 3-step generator is off the data)
    sup = e["support"]
    assert 0 <= sup["precision"] < sup["precision_real"] <= 1 and sup["k"] == 3
    # conditional FD: the mean of the per-class FDs; unconditional labels in class proportions
    assert len(e["cond_fd_per_class"]) == 10 - len(ev["cond_classes_skipped"]) > 0
    assert e["cond_fd"] == pytest.approx(
        sum(e["cond_fd_per_class"].values()) / len(e["cond_fd_per_class"]), rel=1e-12)
    assert sum(ev["n_real_per_class"]) == ev["n_real"]
    assert ev["n_uncond_per_class"] == proportional_counts(ev["n_real_per_class"], 60)
    assert main(["train", "--data", "digits", "--out", str(out), "--set", "steps=0"]) == 1
    with pytest.raises(ValueError, match="alphas >= 1"):
        sample_run(out, alphas=[0.5], n=1, out=tmp_path / "h.png")
