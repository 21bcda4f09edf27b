"""CUDA paths, skipped without a GPU: the OT backends on the GPU against a float64 CPU solve,
KeOps on the GPU, the training step's block scaling and OT in float32 under bf16 autocast,
training with AMP + resume + sampling + evaluation on the GPU, the distributed backend per
device and a Fréchet-statistics sync through NCCL, and
featurizer pretraining on the GPU with checkpoints that load on a CPU.

`FEATSEL_CUDA_TEST_DEVICE=cpu` runs the same tests on the CPU (a dry run of their logic on a
machine without a GPU; CI skips them).
"""

import os
import socket

import pytest
import torch
from train_helpers import digits_data, projection_featurizer, read_metrics

from featsel.ot import keops_available, sinkhorn
from generation.checkpoint import load_checkpoint
from generation.config import load_config
from generation.train import train

DEV = torch.device(os.environ.get("FEATSEL_CUDA_TEST_DEVICE", "cuda"))
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(DEV.type == "cuda" and not torch.cuda.is_available(), reason="needs a GPU"),
]
F64 = torch.float64


def _clouds(b=3, n=200, m=150, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, d, generator=g, dtype=F64)
    y = torch.randn(b, m, d, generator=g, dtype=F64) * 0.8 + 0.3
    return x, y


@pytest.mark.parametrize("backend", ["dense", "blocked", "keops"])
def test_float32_backends_on_the_device_match_a_float64_cpu_solve(backend):
    """Same problem, 300 iterations at eps = 0.5 (about 0.03 of the mean cost): the float32
    potentials on the device agree with float64 on the CPU to 2e-4 absolute (costs are O(16)),
    the barycentric maps to 1e-4."""
    if backend == "keops" and not keops_available(DEV.type):
        pytest.skip("KeOps not usable on this device (not installed or failed its test)")
    x, y = _clouds()
    ref = sinkhorn(x, y, eps=0.5, tol=0, max_iter=300, backend="dense")
    out = sinkhorn(x.float().to(DEV), y.float().to(DEV), eps=0.5, tol=0, max_iter=300,
                   backend=backend, memory_budget=2**16 if backend == "blocked" else None)
    assert out.backend == backend and out.f.device.type == DEV.type
    assert out.f.dtype == torch.float32
    torch.testing.assert_close(out.f.cpu().double(), ref.f, rtol=0, atol=2e-4)
    torch.testing.assert_close(out.g.cpu().double(), ref.g, rtol=0, atol=2e-4)
    torch.testing.assert_close(out.barycentric_map().cpu().double(), ref.barycentric_map(),
                               rtol=0, atol=1e-4)


def test_auto_backend_past_the_memory_budget_is_keops_or_blocked_on_the_device():
    x, y = _clouds(b=1, n=300, m=300, d=32)
    out = sinkhorn(x.float().to(DEV), y.float().to(DEV), eps=2.0, tol=0, max_iter=50,
                   memory_budget=1024)
    # KeOps on a GPU when it passed its test there; D = 32 > 16: blocked on a CPU
    want = "keops" if DEV.type == "cuda" and keops_available("cuda") else "blocked"
    assert out.backend == want
    ref = sinkhorn(x, y, eps=2.0, tol=0, max_iter=50, backend="dense")
    torch.testing.assert_close(out.f.cpu().double(), ref.f, rtol=0, atol=1e-3)


def test_block_scaling_and_field_stay_float32_under_bf16_autocast():
    """featurize_blocks and the loss run inside the training step's bf16 autocast; with a
    featurizer that does no arithmetic (identity), the block scale (cdist) and the OT field
    must come out as without autocast (float32, relative 1e-6 / 1e-5; bf16 would miss by 1e-2)."""
    from featsel.features import create_featurizer
    from featsel.ot import cfg_field
    from generation.loss import LossConfig
    from generation.train import featurize_blocks

    g = torch.Generator().manual_seed(1)
    feat = create_featurizer("identity", in_shape=(4, 8, 8)).to(DEV).eval()
    x_gen = torch.randn(2, 16, 4, 8, 8, generator=g).to(DEV)
    x_pos = torch.randn(2, 24, 4, 8, 8, generator=g).to(DEV)
    x_unc = torch.randn(2, 8, 4, 8, 8, generator=g).to(DEV)
    w = torch.tensor([0.5, 1.0], device=DEV)

    def step():
        out = []
        for q, p, r in featurize_blocks(feat, x_gen, x_pos, x_unc).values():
            # (K, N, L, C) -> (K, L, N, C): the loss solves per (class, location)
            qt, pt, rt = (t.transpose(1, 2) for t in (q, p, r))
            out += [qt, pt, rt, cfg_field(qt, pt, rt, w, LossConfig())[0]]
        return out

    ref = step()
    with torch.autocast(DEV.type, dtype=torch.bfloat16):
        cast = step()
    assert all(t.dtype == torch.float32 for t in cast)
    for i, (a, b) in enumerate(zip(ref, cast)):
        tol = 1e-5 if i % 4 == 3 else 1e-6  # the field: three solves deep
        torch.testing.assert_close(b, a, rtol=tol, atol=tol)


SMALL = dict(steps=4, model="tiny/4", n_classes=4, n_gen=8, n_pos=16, n_unc=8, queue_size=24,
             uncond_queue_size=48, queue_push=16, ckpt_every=2, log_every=1, progress=False,
             warmup_steps=2, ema_decays=[0.9], device=str(DEV), amp=True)


def test_train_with_amp_resume_sample_and_evaluate_on_the_device(tmp_path, monkeypatch):
    from featsel.spaces import PixelSpace
    from generation.evaluate import evaluate_run
    from generation.sample import load_run, sample_run

    monkeypatch.setenv("FEATSEL_CACHE_DIR", str(tmp_path / "cache"))
    data = digits_data()
    cfg = load_config(None, {**SMALL, "out": str(tmp_path / "run")})
    res = train(cfg, data=data, featurizer=projection_featurizer())
    assert res["steps_run"] == 4
    st = load_checkpoint(tmp_path / "run" / "checkpoint.pt")  # map_location cpu
    assert all(v.device.type == "cpu" for v in st["model"].values())
    cfg6 = load_config(None, {**SMALL, "steps": 6, "out": str(tmp_path / "run")})
    res = train(cfg6, data=data, featurizer=projection_featurizer(), resume=True)
    assert res["resumed_from"] == 4 and res["steps_run"] == 2
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 7))
    for key in ("loss", "grad_norm", "marginal_error/cond", "lambda"):
        assert all(torch.isfinite(torch.tensor(r[key])) for r in rows), key
    model, _, meta = load_run(tmp_path / "run", device=DEV)
    assert meta["step"] == 6 and next(model.parameters()).device.type == DEV.type
    space = PixelSpace((1, 8, 8))
    sample_run(tmp_path / "run", classes=[0, 1], n=2, out=tmp_path / "g.png", device=str(DEV),
               space=space)
    assert (tmp_path / "g.png").stat().st_size > 0
    u, y = data.x, data.y
    ev = evaluate_run(tmp_path / "run", n_per_class=8, alphas=(1.0,), featurizers=["pca:dim=8"],
                      kid=False, device=str(DEV), data=(u, y, space, u))
    e = ev["alphas"]["1"]["pca:dim=8"]
    assert e["fd"] > 0 and e["cond_fd"] > 0
    # the same checkpoint evaluated on the CPU: the real side is the same, the generated noise
    # comes from another device's generator, so only the order of magnitude is shared
    ev_cpu = evaluate_run(tmp_path / "run", n_per_class=8, alphas=(1.0,),
                          featurizers=["pca:dim=8"], kid=False, device="cpu",
                          data=(u, y, space, u))
    assert 0.5 < e["fd"] / ev_cpu["alphas"]["1"]["pca:dim=8"]["fd"] < 2.0


def test_distributed_backend_follows_the_training_device(monkeypatch):
    """NCCL for a CUDA run, gloo for a CPU run, also on a GPU host (where NCCL would fail on
    CPU tensors)."""
    import generation.train as gt

    seen = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(gt.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(gt.dist, "init_process_group", lambda backend: seen.append(backend))
    gt._init_distributed(torch.device("cpu"))
    gt._init_distributed(DEV)
    assert seen == ["gloo", "nccl" if DEV.type == "cuda" else "gloo"]
    # "cuda" without an index is this rank's GPU (torchrun's LOCAL_RANK)
    if DEV.type == "cuda":
        assert gt._resolve_device("cuda", 0) == torch.device("cuda", 0)
        assert gt._resolve_device("auto", 0) == torch.device("cuda", 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _frechet_sync_worker(rank, port, x, out):
    """One rank of an NCCL group (one GPU here): the sync's all-reduces run on CUDA tensors."""
    import torch.distributed as dist

    from featsel.diagnostics import FrechetStatistics

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if DEV.type == "cuda":
        torch.cuda.set_device(0)
    dist.init_process_group("nccl" if DEV.type == "cuda" else "gloo", rank=0, world_size=1)
    try:
        st = FrechetStatistics()
        for chunk in x.split(7):
            st.update(chunk.to(DEV))
        st.sync()
        mu, sigma = st.compute()
        torch.save({"mu": torch.as_tensor(mu), "sigma": torch.as_tensor(sigma), "n": st.count},
                   out)
    finally:
        dist.destroy_process_group()


def test_frechet_statistics_sync_through_nccl(tmp_path):
    import numpy as np
    import torch.multiprocessing as mp

    x = torch.randn(50, 5, generator=torch.Generator().manual_seed(3), dtype=F64) + 100.0
    mp.start_processes(_frechet_sync_worker, args=(_free_port(), x, str(tmp_path / "s.pt")),
                       nprocs=1, start_method="spawn", join=True)
    got = torch.load(tmp_path / "s.pt", weights_only=True)
    assert got["n"] == 50
    np.testing.assert_allclose(got["mu"].numpy(), x.mean(0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(got["sigma"].numpy(), np.cov(x.numpy(), rowvar=False), rtol=1e-9)


def test_pretraining_on_the_device_writes_checkpoints_that_load_on_a_cpu(tmp_path):
    from featsel.features import create_featurizer
    from generation.pretrain.mae import MAEConfig, train_mae
    from generation.pretrain.mlp_vae import train_mlp_vae
    from generation.pretrain.vae import VAEConfig, train_vae

    mae = train_mae(MAEConfig(data="digits", batch_size=32, depth=2, embed_dim=32, num_heads=2,
                              decoder_dim=32, patch_size=2, steps=30, finetune_steps=5,
                              cls_warmup=2, lr=2e-3, out=str(tmp_path / "mae"),
                              device=str(DEV)), progress=False)
    losses = torch.tensor(mae["losses"])
    assert torch.isfinite(losses).all() and losses[20:30].mean() < losses[:10].mean()
    feat = create_featurizer(mae["featurizer"])
    assert [tuple(m.shape) for m in feat(torch.randn(3, 1, 8, 8))][-1] == (3, 32)

    vae = train_vae(VAEConfig(data="digits", batch_size=32, block_out_channels=(8, 16),
                              norm_num_groups=4, lr=3e-3, steps=20, out=str(tmp_path / "vae"),
                              device=str(DEV)), progress=False)
    assert torch.isfinite(torch.tensor(vae["losses"])).all()
    assert vae["latent_shape"] == [4, 4, 4]

    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 3, generator=g) @ torch.randn(3, 12, generator=g)
    vec = train_mlp_vae(VAEConfig(data="synthetic", latent_dim=3, hidden=16, batch_size=64,
                                  lr=3e-3, steps=60, out=str(tmp_path / "mlpvae"),
                                  device=str(DEV)), x, progress=False)
    losses = torch.tensor(vec["losses"])
    assert torch.isfinite(losses).all() and losses[-10:].mean() < losses[:10].mean()
    enc = create_featurizer(vec["featurizer"], in_shape=(12,))
    assert tuple(enc(x[:5])[0].shape) == (5, 3)


@pytest.mark.skipif(DEV.type != "cuda", reason="CUDA graphs need a GPU")
def test_sync_free_field_is_captured_in_a_cuda_graph_and_replays_to_the_same_field():
    """The paper recipe's field on the sync-free route (featsel.ot.fixed) has no host sync, so a
    CUDA graph captures it; replaying after copying new points into the static inputs gives the
    eager field of those points (1e-5: same kernels, float32)."""
    from featsel.ot import FieldConfig, cfg_field

    cfg = FieldConfig(sync_free="always")
    g = torch.Generator().manual_seed(3)

    def draw():
        return (torch.randn(3, 4, 32, 16, generator=g).to(DEV),
                torch.randn(3, 4, 48, 16, generator=g).to(DEV) + 0.3,
                torch.randn(3, 4, 40, 16, generator=g).to(DEV), torch.rand(3, generator=g).to(DEV))

    q, p, r, w = draw()
    static = [t.clone() for t in (q, p, r, w)]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as torch.cuda.graphs asks
        for _ in range(2):
            cfg_field(*static, cfg, errors=False)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out, _ = cfg_field(*static, cfg, errors=False)
    for _ in range(2):
        new = draw()
        for s, t in zip(static, new):
            s.copy_(t)
        graph.replay()
        ref, _ = cfg_field(*new, cfg, errors=False)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
