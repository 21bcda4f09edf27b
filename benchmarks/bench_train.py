"""Training-step benchmark: featsel's Sinkhorn-CFG step vs a re-implementation of the paper
code's step (Genentech/semantic-transport-generation, `semot/{sinkhorn,loss,features}.py`).

The reference below re-implements, from that code's description, what its step does per
feature block: GEMM squared-Euclidean costs, C_qq with +inf diagonal, eps = tau * std(C_qp)
(one float per block, a host sync), then per tau alternating log-domain updates over a
materialised `(g - C) / eps - log M` tensor (4 cross / 2 symmetric iterations from zero),
row softmax couplings, barycentres, the CFG combination, per-problem RMS normalisation, and
`MSE(h, sg(h + V))`; its cost normalisation divides each block by the mean generated-to-pool
distance / sqrt(C) (self zeros counted). Both steps get the same generator, featurizer, batch
and iteration counts; only the scaling + OT + loss differ.

    python -m benchmarks.bench_train            # CPU, 1 thread; prints a table, writes JSON
    python -m benchmarks.bench_train --quick    # fewer repeats
    python -m benchmarks.bench_train --device cuda --amp --model B/2 --size 32 --classes 8 \
        --n-gen 64 --n-pos 128 --n-unc 32 --out benchmarks/results/bench_train_cuda.json

On a GPU every time stamp follows a `torch.cuda.synchronize()`; `--amp` runs the generator and
the featurizer under bf16 autocast, as training does (the OT part stays float32 in both steps).

Reports per step: OT time (scaling + solves + field), network time (generator + featurizer
forward/backward + optimiser), samples/s, OT share, the ratio paper/featsel of OT time, and the
max relative difference between the two fields (same inputs) as a correctness check.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

DEVICE = torch.device("cpu")  # set by --device
AMP = False  # set by --amp: bf16 autocast for the networks on a GPU


def _now() -> float:
    """A time stamp after the queued GPU work (on a GPU), so stages are timed, not launched."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)
    return time.perf_counter()


def _autocast():
    return torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=AMP)

# ----------------------------------------------------------------- paper-code reference


def _paper_sq_euclidean(a: Tensor, b: Tensor) -> Tensor:
    """(L, N, D), (L, M, D) -> (L, N, M) via GEMM, clamped at 0."""
    an = (a * a).sum(-1, keepdim=True)
    bn = (b * b).sum(-1, keepdim=True).transpose(1, 2)
    return (an + bn - 2.0 * torch.bmm(a, b.transpose(1, 2))).clamp_min(0.0)


def _paper_log_sinkhorn(C: Tensor, eps: float, n: int) -> tuple[Tensor, Tensor]:
    L, N, M = C.shape
    f, g = C.new_zeros(L, N), C.new_zeros(L, M)
    log_n, log_m = math.log(N), math.log(M)
    for _ in range(n):
        f = -eps * ((g[:, None, :] - C) / eps - log_m).logsumexp(dim=2)
        g = -eps * ((f[:, :, None] - C) / eps - log_n).logsumexp(dim=1)
    return f, g


def _paper_log_sinkhorn_sym(C: Tensor, eps: float, n: int) -> Tensor:
    L, N, _ = C.shape
    f = C.new_zeros(L, N)
    log_n = math.log(N)
    for _ in range(n):
        f = 0.5 * (f - eps * ((f[:, None, :] - C) / eps - log_n).logsumexp(dim=2))
    return f


def paper_displacement(h_gen: Tensor, h_pos: Tensor, h_unc: Tensor, w: Tensor,
                       taus=(0.02, 0.05, 0.2), iters=4, iters_sym=2) -> Tensor:
    """h_*: (L, N, D) problems; w: (L,). The paper code's normalised displacement (L, N, D)."""
    with torch.no_grad():
        L, N, D = h_gen.shape
        wb = w[:, None, None]
        C_qp = _paper_sq_euclidean(h_gen, h_pos)
        C_qq = _paper_sq_euclidean(h_gen, h_gen)
        idx = torch.arange(N, device=C_qq.device)
        C_qq[:, idx, idx] = float("inf")
        C_qu = _paper_sq_euclidean(h_gen, h_unc)
        scale = float(C_qp.reshape(-1).float().std(unbiased=False).clamp(min=1e-8).item())
        total = torch.zeros_like(h_gen)
        for tau in taus:
            eps = tau * scale
            f_qp, g_qp = _paper_log_sinkhorn(C_qp, eps, iters)
            f_qq = _paper_log_sinkhorn_sym(C_qq, eps, iters_sym)
            f_qu, g_qu = _paper_log_sinkhorn(C_qu, eps, iters)
            pi_qp = torch.softmax((f_qp[:, :, None] + g_qp[:, None, :] - C_qp) / eps, dim=2)
            pi_qq = torch.softmax((f_qq[:, :, None] + f_qq[:, None, :] - C_qq) / eps, dim=2)
            pi_qu = torch.softmax((f_qu[:, :, None] + g_qu[:, None, :] - C_qu) / eps, dim=2)
            disp = (1 + wb) * (pi_qp @ h_pos) - wb * (pi_qu @ h_unc) - pi_qq @ h_gen
            lam = torch.sqrt(disp.pow(2).mean(dim=(1, 2), keepdim=True) + 1e-8).clamp(min=1e-8)
            total = total + disp / lam
        return total


def paper_cost_normalize(g: Tensor, p: Tensor, u: Tensor):
    """(K, N, L, C) each -> divided by mean distance(gen -> [gen, pos, unc]) / sqrt(C)."""
    K, N, L, C = g.shape
    with torch.no_grad():
        x = g.permute(0, 2, 1, 3).reshape(K * L, N, C)
        y = p.permute(0, 2, 1, 3).reshape(K * L, -1, C)
        z = u.permute(0, 2, 1, 3).reshape(K * L, -1, C)
        s = torch.cdist(x, x).sum() + torch.cdist(x, y).sum() + torch.cdist(x, z).sum()
        s = s / (N * K * L * (N + p.shape[1] + u.shape[1]))
        s = (s / math.sqrt(C)).clamp(min=1e-3)
    return g / s, p / s, u / s


def paper_loss(blocks: dict, w: Tensor) -> Tensor:
    """The paper code's loss over blocks {name: (gen, pos, unc) (K, N, L, C)}."""
    total = 0.0
    for gen, pos, unc in blocks.values():
        g, p, u = paper_cost_normalize(gen, pos, unc)
        K, N, L, C = g.shape
        hg = g.permute(0, 2, 1, 3).reshape(K * L, N, C)
        hp = p.permute(0, 2, 1, 3).reshape(K * L, -1, C)
        hu = u.permute(0, 2, 1, 3).reshape(K * L, -1, C)
        disp = paper_displacement(hg, hp, hu, w.repeat_interleave(L))
        total = total + F.mse_loss(hg, (hg + disp).detach())
    return total / len(blocks)


# ------------------------------------------------------------------------- the two steps


def _setup(args):
    from featsel.features import create_featurizer
    from generation.config import load_config
    from generation.loss import SinkhornCFGLoss
    from generation.models import create_generator

    torch.manual_seed(0)
    shape = (4, args.size, args.size)
    cfg = load_config(None, dict(model=args.model, n_gen=args.n_gen, n_pos=args.n_pos,
                                 n_unc=args.n_unc, n_classes=args.classes))
    model = create_generator(args.model, sample_shape=shape, num_classes=args.classes)
    spec = args.featurizer or f"random-projection:dim={args.feat_dim},spatial=true"
    feat = create_featurizer(spec, in_shape=shape).to(DEVICE).eval().requires_grad_(False)
    loss_fn = SinkhornCFGLoss(cfg.loss, args.classes)
    return cfg, shape, model.to(DEVICE), feat, loss_fn


def _batch(args, shape, seed):
    g = torch.Generator().manual_seed(seed)
    K = args.classes
    b = dict(
        noise=torch.randn(K * args.n_gen, *shape, generator=g),
        labels=torch.arange(K).repeat_interleave(args.n_gen),
        alpha=1 + 3 * torch.rand(K, generator=g),
        pos=torch.randn(K, args.n_pos, *shape, generator=g),
        unc=torch.randn(K, args.n_unc, *shape, generator=g),
        classes=torch.arange(K),
    )
    return {k: v.to(DEVICE) for k, v in b.items()}


def _raw_blocks(feat, x_gen, pos, unc):
    K, N = x_gen.shape[:2]
    with _autocast():
        gb = feat.blocks(x_gen.flatten(0, 1))
        with torch.no_grad():
            rb = feat.blocks(torch.cat([pos.flatten(0, 1), unc.flatten(0, 1)]))
    out = {}
    M = pos.shape[1]
    for k, b in gb.items():
        r = rb[k].x.float()
        out[k] = (b.x.float().unflatten(0, (K, N)), r[: K * M].unflatten(0, (K, M)),
                  r[K * M :].unflatten(0, (K, unc.shape[1])))
    return out


def step_featsel(model, feat, loss_fn, opt, b, args):
    from generation.train import featurize_blocks

    t0 = _now()
    with _autocast():
        x = model(b["noise"], b["labels"], b["alpha"].repeat_interleave(args.n_gen))
        x = x.unflatten(0, (args.classes, args.n_gen))
        t1 = _now()
        blocks = featurize_blocks(feat, x, b["pos"], b["unc"])
    t2 = _now()
    loss, info = loss_fn(blocks, b["alpha"] - 1, b["classes"], log=False)
    t3 = _now()
    opt.zero_grad()
    loss.backward()
    opt.step()
    t4 = _now()
    # OT part = feature scaling + solves + field (the loss call minus its MSE, negligible)
    ot = (t2 - t1) - _feat_time(feat, x, b) + (t3 - t2)
    return t4 - t0, ot


_FEAT_T: dict = {}


def _feat_time(feat, x, b):
    """Featurizer forward time alone (measured once per shape), to separate it from scaling."""
    key = tuple(x.shape)
    if key not in _FEAT_T:
        t = _now()
        _raw_blocks(feat, x.detach(), b["pos"], b["unc"])
        _FEAT_T[key] = _now() - t
    return _FEAT_T[key]


def step_paper(model, feat, opt, b, args):
    t0 = _now()
    with _autocast():
        x = model(b["noise"], b["labels"], b["alpha"].repeat_interleave(args.n_gen))
    x = x.unflatten(0, (args.classes, args.n_gen))
    raw = _raw_blocks(feat, x, b["pos"], b["unc"])
    t2 = _now()
    loss = paper_loss(raw, b["alpha"] - 1)
    t3 = _now()
    opt.zero_grad()
    loss.backward()
    opt.step()
    t4 = _now()
    return t4 - t0, t3 - t2


def field_agreement(args) -> float:
    """max |V_featsel - V_paper| / max |V_paper| on one block with identical scaled inputs."""
    from featsel.ot import cfg_field
    from generation.loss import LossConfig

    g = torch.Generator().manual_seed(1)
    K, L, C = args.classes, 16, args.feat_dim
    q = torch.randn(K, L, args.n_gen, C, generator=g).to(DEVICE)
    p = (torch.randn(K, L, args.n_pos, C, generator=g) + 0.5).to(DEVICE)
    r = torch.randn(K, L, args.n_unc, C, generator=g).to(DEVICE)
    w = (torch.rand(K, generator=g) * 2).to(DEVICE)
    V, _ = cfg_field(q, p, r, w, LossConfig())
    Vp = paper_displacement(q.flatten(0, 1), p.flatten(0, 1), r.flatten(0, 1),
                            w.repeat_interleave(L)).reshape(V.shape)
    return float((V - Vp).abs().max() / Vp.abs().max())


def ot_only(args, repeats):
    """Time of the OT part alone on identical pre-scaled blocks: (featsel, paper) seconds."""
    from featsel.ot import cfg_field
    from generation.loss import LossConfig

    g = torch.Generator().manual_seed(2)
    K = args.classes
    L = args.size // 1 * args.size // 1  # per_loc of the spatial projection: H*W problems
    blocks = [(torch.randn(K, L, args.n_gen, args.feat_dim, generator=g).to(DEVICE),
               torch.randn(K, L, args.n_pos, args.feat_dim, generator=g).to(DEVICE),
               torch.randn(K, L, args.n_unc, args.feat_dim, generator=g).to(DEVICE))]
    w = (torch.rand(K, generator=g) * 2).to(DEVICE)
    cfg = LossConfig()

    def run_featsel():
        for q, p, r in blocks:
            cfg_field(q, p, r, w, cfg, errors=False)

    def run_paper():
        for q, p, r in blocks:
            paper_displacement(q.flatten(0, 1), p.flatten(0, 1), r.flatten(0, 1),
                               w.repeat_interleave(q.shape[1]))

    out = {}
    for name, fn in (("featsel", run_featsel), ("paper", run_paper)):
        fn()
        ts = []
        for _ in range(repeats):
            t = _now()
            fn()
            ts.append(_now() - t)
        out[name] = min(ts)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--n-gen", type=int, default=32)
    ap.add_argument("--n-pos", type=int, default=64)
    ap.add_argument("--n-unc", type=int, default=16)
    ap.add_argument("--size", type=int, default=16, help="latent side (4 x size x size)")
    ap.add_argument("--feat-dim", type=int, default=16)
    ap.add_argument("--featurizer", help="featurizer spec (default: spatial random projection "
                    "to --feat-dim)")
    ap.add_argument("--model", default="tiny/2", help="generator (DiT preset, e.g. B/2)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast for the networks (GPU)")
    ap.add_argument("--out", default="benchmarks/results/bench_train.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    global DEVICE, AMP
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: CUDA is not available")
    AMP = bool(args.amp) and DEVICE.type == "cuda"
    repeats = 3 if args.quick else 8
    cfg, shape, model, feat, loss_fn = _setup(args)
    model_p = type(model)(**_ctor(model, shape, args.classes)).to(DEVICE)
    model_p.load_state_dict(model.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
    opt_p = torch.optim.AdamW(model_p.parameters(), lr=1e-4, betas=(0.9, 0.95))
    res = {"featsel": [], "paper": []}
    for i in range(repeats + 1):  # first = warm-up
        b = _batch(args, shape, i)
        tf = step_featsel(model, feat, loss_fn, opt, b, args)
        tp = step_paper(model_p, feat, opt_p, b, args)
        if i:
            res["featsel"].append(tf)
            res["paper"].append(tp)
    n = args.classes * args.n_gen
    summary = {}
    for k, v in res.items():
        step = sorted(s for s, _ in v)[len(v) // 2]
        ot = sorted(o for _, o in v)[len(v) // 2]
        summary[k] = {"step_s": step, "ot_s": ot, "net_s": step - ot, "samples_per_s": n / step,
                      "ot_share": ot / step}
    only = ot_only(args, repeats)
    out = {
        "device": str(DEVICE), "threads": args.threads, "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else "cpu",
        "amp": AMP,
        "config": {k: getattr(args, k) for k in ("classes", "n_gen", "n_pos", "n_unc", "size",
                                                 "feat_dim", "model", "featurizer")},
        "iterations": "4 cross / 2 self, 3 taus", "step": summary,
        "ot_speedup_in_step": summary["paper"]["ot_s"] / summary["featsel"]["ot_s"],
        "ot_only_s": only, "ot_only_speedup": only["paper"] / only["featsel"],
        "field_max_rel_diff": field_agreement(args),
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, path)
    print(f"device={out['device_name']} amp={AMP} threads={args.threads} model={args.model} "
          f"classes={args.classes} n_gen={args.n_gen} n_pos={args.n_pos} n_unc={args.n_unc} "
          f"latents 4x{args.size}x{args.size}")
    print(f"{'step':8s} {'step ms':>9s} {'OT ms':>8s} {'net ms':>8s} {'samples/s':>10s} "
          f"{'OT share':>9s}")
    for k, s in summary.items():
        print(f"{k:8s} {1e3 * s['step_s']:9.1f} {1e3 * s['ot_s']:8.1f} {1e3 * s['net_s']:8.1f} "
              f"{s['samples_per_s']:10.1f} {s['ot_share']:9.2f}")
    print(f"OT speed-up in the step (paper / featsel): {out['ot_speedup_in_step']:.2f}x")
    print(f"OT only, one per_loc block: featsel {1e3 * only['featsel']:.1f} ms, paper "
          f"{1e3 * only['paper']:.1f} ms, speed-up {out['ot_only_speedup']:.2f}x")
    print(f"field max relative difference: {out['field_max_rel_diff']:.2e}")
    return out


def _ctor(model, shape, k):
    return dict(in_channels=shape[0], img_size=shape[1], num_classes=k,
                patch_size=model.patch_size, hidden=model.pos.shape[-1],
                depth=len(model.blocks), heads=model.blocks[0].attn.heads,
                registers=model.n_registers)


if __name__ == "__main__":
    main()
