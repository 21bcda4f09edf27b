"""Sinkhorn-CFG training of a one-step generator (paper Appendix C.1): one short loop.

Per step (all ranks draw the same global batch composition from a per-step seed, then each
rank keeps its shard of the classes, so a run is a pure function of (config, step) and
`--resume` continues it exactly):

1. classes (n_classes of K) and alpha_c ~ alpha^-power on [alpha_min, alpha_max], w = alpha - 1;
2. push `queue_push` fresh real samples into the queues; generate n_gen samples per class;
   draw n_pos class-real samples per class and n_unc unconditional ones from the queues;
3. frozen featurizer -> blocks (B, L, C) -> per block scaled by s / sqrt(C) (featsel);
4. Sinkhorn-CFG loss (`generation.loss`), backward, gradient clipping, AdamW (betas 0.9, 0.95)
   with linear warmup (+ linear decay), then the multi-decay EMA;
5. metrics to `metrics.jsonl` every `log_every` steps (one host sync per flush), tqdm bar;
   checkpoint every `ckpt_every` steps (atomic; rank 0).

Multi-GPU / multi-node: launch with `torchrun --nproc_per_node G -m featsel.cli train ...`;
DDP averages gradients; the per-block feature scale and the block-wide eps are averaged across
ranks, so G ranks compute the same update as one process holding all classes.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from featsel.device import check_device
from featsel.features.scaled import featurize_blocks
from featsel.memory import keep_freed_memory
from featsel.rundir import atomic_write, claim_dir
from generation.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from generation.config import TrainConfig, save_config
from generation.ema import MultiEMA
from generation.loss import SinkhornCFGLoss
from generation.models import create_generator
from generation.queues import RealQueues

__all__ = ["TrainData", "train", "check_out", "load_training_data", "sample_alpha",
           "featurize_blocks"]


@dataclass
class TrainData:
    """Training set in the generation space: x (N, *shape) float32, y (N,) int64 labels in
    [0, num_classes); `space` (a featsel GenerationSpace or None) decodes samples for viewing."""

    x: Tensor
    y: Tensor
    num_classes: int
    space: Any = None
    name: str = ""

    def __post_init__(self):
        if self.x.ndim < 2 or self.y.shape != self.x.shape[:1]:
            raise ValueError(f"TrainData: x (N, ...) and y (N,) expected, got "
                             f"{tuple(self.x.shape)} and {tuple(self.y.shape)}")


def load_training_data(cfg: TrainConfig, split: str | None = None) -> TrainData:
    """Split `cfg.data_split` of the data manifest `cfg.data`, encoded into its generation
    space (`cfg.space`, default the manifest's first) in chunks without gradient."""
    from featsel.data import load_dataset

    ds = load_dataset(cfg.data, split=split or cfg.data_split)
    if ds.labels is None:
        raise ValueError(f"data set {cfg.data!r} has no labels; class-conditional training "
                         f"needs them (manifest key 'label')")
    space = ds.generation_space(cfg.space or None)
    if ds.in_generation_space:
        u = ds.x
    else:
        with torch.no_grad():
            u = torch.cat([space.encode(c) for c in ds.x.split(256)])
    k = len(ds.class_names) if ds.class_names else int(ds.labels.max()) + 1
    return TrainData(x=u.float(), y=ds.labels.long(), num_classes=k, space=space,
                     name=ds.manifest.name)


def sample_alpha(n: int, lo: float, hi: float, power: float, g: torch.Generator) -> Tensor:
    """n draws of alpha with density ~ alpha^-power on [lo, hi] by inverse CDF: (n,)."""
    u = torch.rand(n, generator=g, device=g.device)
    if hi == lo:
        return torch.full_like(u, lo)
    if power == 1.0:
        return lo * (hi / lo) ** u
    e = 1.0 - power
    return (lo**e + u * (hi**e - lo**e)) ** (1.0 / e)


def _lr_lambda(cfg: TrainConfig):
    def f(step: int) -> float:  # step = number of optimiser steps done so far
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "constant":
            return 1.0
        span = max(cfg.steps - cfg.warmup_steps, 1)
        return max(0.0, 1.0 - (step - cfg.warmup_steps) / span)

    return f


def _step_generators(seed: int, step: int, device: torch.device):
    s = (seed * 1_000_003 + step) % (2**63 - 1)
    g_dev = torch.Generator(device=device).manual_seed(s)
    g_cpu = torch.Generator().manual_seed(s) if device.type != "cpu" else g_dev
    return g_dev, g_cpu


def _resolve_device(name: str, local_rank: int) -> torch.device:
    """"auto" -> this rank's GPU if there is one, else the CPU; "cuda" -> this rank's GPU
    (torchrun's LOCAL_RANK), "cuda:i" as given."""
    dev = check_device(name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    return dev


def _init_distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world) under torchrun (WORLD_SIZE > 1), else (0, 1). The backend follows the
    training device, not the machine: NCCL for CUDA, gloo for a CPU run (also on a GPU host)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":  # NCCL talks to the current device
            torch.cuda.set_device(device.index if device.index is not None else 0)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


# settings a resumed run may change: how long, where, and how it reports; not what it learns
MAY_CHANGE = ("steps", "out", "device", "progress", "log_every", "ckpt_every",
              "eval_n_per_class", "eval_alphas", "eval_decay")


def _recorded_config(run: Path) -> dict | None:
    """A run folder written before markers existed: its config.yaml when it has a checkpoint."""
    import yaml

    if not (run / CHECKPOINT_NAME).is_file() or not (run / "config.yaml").is_file():
        return None
    try:
        d = yaml.safe_load((run / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    return d if isinstance(d, dict) else None


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Keep only metric lines of steps <= last_step (work after the checkpoint is redone).
    A torn last line -- what a kill during a flush leaves -- is dropped; a bad line elsewhere
    is an error naming the file and line."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    keep = []
    for i, ln in enumerate(lines):
        try:
            rec = json.loads(ln)
        except ValueError:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}: line {i + 1} is not JSON; fix or remove it, or start "
                             f"a new run") from None
        if isinstance(rec, dict) and rec.get("step", 0) <= last_step:
            keep.append(ln)
    atomic_write(path, "".join(ln + "\n" for ln in keep))


def require_differentiable(spec: str) -> None:
    """Refuse a training featurizer whose features pass no gradient back to their input
    (`Featurizer.differentiable` False: the noise/constant controls, inception's uint8 input):
    the generator could learn nothing from them. Read from the spec, before any work (no data,
    weights or hub). `featsel train` calls this; `featsel validate` trains controls on purpose,
    as the baseline of features that carry no information."""
    from featsel.features.registry import is_differentiable

    if not is_differentiable(spec):
        raise ValueError(f"--featurizer {spec} is not differentiable: its features cannot "
                         "pass a gradient to the generator (--allow-no-gradient trains with it "
                         "anyway, e.g. as a control's baseline)")


def build_model(cfg: TrainConfig, sample_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The generator of a run (preset + overrides)."""
    try:
        return create_generator(cfg.model, sample_shape=tuple(sample_shape),
                                num_classes=num_classes, **cfg.model_args)
    except TypeError as err:  # an unknown or mistyped constructor option
        raise ValueError(f"model_args: {dict(cfg.model_args)} do not fit generator preset "
                         f"{cfg.model!r} ({err})") from None


def check_out(cfg: TrainConfig, *, resume: bool, force: bool, write: bool = False,
              also_may_change: tuple[str, ...] = ()) -> None:
    """The folder rule (`featsel.rundir.claim_dir`) for ``cfg.out``: a non-empty folder that is
    not this run without ``force``, or this run without ``resume``, raises the one-line error.
    write=False only checks (nothing is created); write=True claims the folder (creates it, or
    with force empties it, and writes the marker). also_may_change: settings not final yet (the
    CLI's CPU preset sets ``n_classes`` after the data is loaded; `train` checks them again)."""
    claim_dir(Path(cfg.out), "train", cfg.to_dict(), write=write, force=force, resume=resume,
              may_change=(*MAY_CHANGE, *also_may_change), recorded=_recorded_config)


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    force: bool = False,
    data: TrainData | None = None,
    featurizer: nn.Module | None = None,
    until: int | None = None,
) -> dict[str, Any]:
    """Train per `cfg` into `cfg.out`; returns a summary dict. `data` / `featurizer` replace
    `cfg.data` / `cfg.featurizer` (tests, notebooks). With `resume`, continue from
    `cfg.out/checkpoint.pt` if present (else start fresh); a resume whose settings differ from
    the run's (other than `MAY_CHANGE`) is refused, listing the keys. `cfg.out` follows the
    folder rule of `featsel.rundir`: a non-empty folder that is not this run is refused unless
    `force` (which replaces it).

    until: stop after this step (1 <= until; capped at `cfg.steps`) with a checkpoint and the
    metrics flushed there, e.g. to evaluate an intermediate model. The schedule still follows
    `cfg.steps`, so training to `until` and then resuming to `cfg.steps` gives the same run as
    training straight through (the run is a pure function of (config, step))."""
    cfg.validate()
    keep_freed_memory()  # featsel.memory: a step's freed tensors serve the next step
    if until is not None and until < 1:
        raise ValueError(f"until: expected a step >= 1, got {until}")
    stop = cfg.steps if until is None else min(int(until), cfg.steps)
    device = _resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    rank, world = _init_distributed(device)
    out = Path(cfg.out)
    ckpt_path = out / CHECKPOINT_NAME
    # the folder rule (featsel.rundir): checked on every rank before any work; the folder is
    # created (or, with force, emptied) by rank 0 only once data, featurizer and model exist,
    # so a run that fails on its inputs leaves nothing behind
    check_out(cfg, resume=resume, force=force)
    torch.manual_seed(cfg.seed)
    if data is None:
        data = load_training_data(cfg)
    K = data.num_classes
    n_cls = cfg.n_classes or K
    if n_cls > K:
        raise ValueError(f"n_classes ({n_cls}) exceeds the number of classes ({K})")
    if n_cls % world:
        raise ValueError(f"n_classes ({n_cls}) must be divisible by the number of ranks ({world})")
    if featurizer is None:
        from featsel.features import create_featurizer

        featurizer = create_featurizer(cfg.featurizer, space=data.space, fit_data=data.x,
                                       in_shape=tuple(data.x.shape[1:]))
    featurizer = featurizer.to(device).eval().requires_grad_(False)
    shape = tuple(data.x.shape[1:])
    model = build_model(cfg, shape, K).to(device)
    ema = MultiEMA(model, cfg.ema_decays).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas),
                            weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))
    queues = RealQueues(K, shape, cfg.queue_size, cfg.uncond_queue_size, device=device)
    queues.prefill(data.x, data.y, torch.Generator().manual_seed(cfg.seed))
    metrics_path = out / "metrics.jsonl"
    step0, st = 0, None
    if resume and not force and ckpt_path.exists():  # force replaces the folder: a new run
        st = load_checkpoint(ckpt_path, map_location=device)
        model.load_state_dict(st["model"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        queues.load_state_dict(st["queues"])
        set_rng_state(st["rng"])
        step0 = int(st["step"])
    if rank == 0:
        check_out(cfg, resume=resume, force=force, write=True)
        save_config(cfg, out / "config.yaml")
        _truncate_metrics(metrics_path, step0)
    net = model
    reduce_mean = None
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

        def reduce_mean(t: Tensor) -> Tensor:
            t = t.clone()
            dist.all_reduce(t)
            return t / world

    loss_fn = SinkhornCFGLoss(cfg.loss, K, reduce_mean=reduce_mean)
    if st is not None:
        loss_fn.load_state_dict(st.get("loss_state", {}))
    amp = cfg.amp and device.type == "cuda"
    shard = slice(rank, None, world)
    pending: list[dict[str, Any]] = []
    t_start, done_steps = time.perf_counter(), 0
    last: dict[str, float] = {}

    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.steps, initial=step0, disable=not (cfg.progress and rank == 0),
               desc="train", dynamic_ncols=True)
    warned_no_grad = False
    for step in range(step0 + 1, stop + 1):
        t0 = time.perf_counter()
        g, g_cpu = _step_generators(cfg.seed, step, device)
        if cfg.queue_push:
            idx = torch.randint(len(data.y), (cfg.queue_push,), generator=g_cpu)
            queues.push(data.x[idx], data.y[idx])
        classes_all = torch.randperm(K, generator=g, device=device)[:n_cls]
        alpha_all = sample_alpha(n_cls, cfg.alpha_min, cfg.alpha_max, cfg.alpha_power, g)
        noise_all = torch.randn(n_cls, cfg.n_gen, *model.noise_shape, generator=g, device=device)
        pos_all = queues.sample_class(classes_all, cfg.n_pos, g)
        unc_all = queues.sample_uncond(n_cls, cfg.n_unc, g) if cfg.n_unc else None
        classes, alpha, noise = classes_all[shard], alpha_all[shard], noise_all[shard]
        x_pos = pos_all[shard]
        x_unc = unc_all[shard] if unc_all is not None else None
        k_loc = classes.shape[0]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            x_gen = net(noise.flatten(0, 1), classes.repeat_interleave(cfg.n_gen),
                        alpha.repeat_interleave(cfg.n_gen))
            blocks = featurize_blocks(featurizer, x_gen.unflatten(0, (k_loc, cfg.n_gen)),
                                      x_pos, x_unc, reduce_mean)
        log_step = step % cfg.log_every == 0 or step == stop  # nothing pending at a stop
        loss, info = loss_fn(blocks, alpha - 1.0, classes, sync=log_step, log=log_step)
        opt.zero_grad(set_to_none=True)
        if loss.requires_grad:
            loss.backward()
        elif not warned_no_grad:
            # features without a gradient (the noise/constant controls on vector data): the
            # generator receives nothing from them and keeps its initial weights (up to weight
            # decay): the outcome of training on features that carry no information
            warnings.warn("the featurizer gives no gradient to the generator (a control?): "
                          "the generator receives nothing from the features", stacklevel=1)
            warned_no_grad = True
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        ema.update(model)
        if device.type == "cuda" and log_step:
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        done_steps += 1
        pending.append({"step": step, "loss": loss.detach(), "grad_norm": gnorm.detach(),
                        "lr": lr, "time_step": dt,
                        "time_ot": info.pop("time_ot"),
                        "samples_per_s": n_cls * cfg.n_gen / dt, **info})
        if rank == 0 and log_step:
            last = _flush_metrics(pending, metrics_path)
            bar.set_postfix(loss=f"{last['loss']:.4g}", lam=f"{last['lambda']:.3g}",
                            sps=f"{last['samples_per_s']:.0f}", refresh=False)
        if log_step:
            pending = []
        bar.update(1)
        if step % cfg.ckpt_every == 0 or step == stop:
            if rank == 0:
                save_checkpoint({
                    "step": step, "config": cfg.to_dict(), "model": model.state_dict(),
                    "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "queues": queues.state_dict(),
                    "loss_state": loss_fn.state_dict(), "rng": rng_state(),
                    "data": {"name": data.name, "num_classes": K, "shape": list(shape)},
                }, ckpt_path)
            if world > 1:
                dist.barrier()
    bar.close()
    elapsed = time.perf_counter() - t_start
    return {"out": str(out), "steps": cfg.steps, "stopped_at": max(stop, step0),
            "resumed_from": step0,
            "steps_run": done_steps, "time_s": round(elapsed, 3),
            "final_loss": last.get("loss"), "final_lambda": last.get("lambda")}


def _flush_metrics(pending: list[dict[str, Any]], path: Path) -> dict[str, float]:
    """Append pending per-step metrics (tensors synced here, once) as JSON lines."""
    if not pending:
        return {}
    cells = [(i, k) for i, r in enumerate(pending) for k, v in r.items() if isinstance(v, Tensor)]
    vals = torch.stack([pending[i][k].float() for i, k in cells]).cpu().tolist()
    rows = [{k: v for k, v in r.items() if not isinstance(v, Tensor)} for r in pending]
    for (i, k), v in zip(cells, vals):
        rows[i][k] = v
    with open(path, "a") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return rows[-1]
