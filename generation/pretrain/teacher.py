"""A small CNN classifier trained inside the run on pixels: the distillation teacher standing in
for InceptionV3 (whose weights cannot be downloaded here).

Architecture: [conv3x3 -> GroupNorm -> GELU] x `depth` with stride 2 after the first, then mean
pooling and a linear classifier. Features: `patch` = the last conv map (B, width, h, w),
`global` = its spatial mean (B, width). Trained with cross-entropy on (pixels, labels).

Checkpoint (`teacher.pt`, weights_only-loadable): {format, config, step, model, optimizer}.
`SmallCNN` and `TEACHER_FORMAT` live in `featsel.features.cnn`, whose featurizer `cnn-teacher`
loads `teacher.pt` (also as a bare path: `create_featurizer("runs/teacher/teacher.pt")`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from featsel.features.cnn import TEACHER_FORMAT, SmallCNN
from featsel.safeload import torch_load
from generation.pretrain.common import (
    PretrainRun,
    RunConfig,
    check_positive,
    load_space_samples,
    save_atomic,
)

ARCH_KEYS = ("data", "split", "width", "depth", "seed", "n_max")


@dataclass
class TeacherConfig(RunConfig):
    """Options of `train_teacher` (one place for each default)."""

    out: str = "runs/teacher"
    steps: int = 500
    lr: float = 2e-3
    width: int = 32
    depth: int = 3


def load_teacher(path: str | Path) -> SmallCNN:
    """Load a teacher written by `train_teacher` (frozen, eval mode)."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "teacher.pt"
    if not p.is_file():
        raise FileNotFoundError(f"teacher checkpoint {p} does not exist (run `featsel pretrain teacher`)")
    obj = torch_load(p, "teacher checkpoint")
    if not isinstance(obj, dict) or obj.get("format") != TEACHER_FORMAT:
        raise ValueError(f"{p} is not a featsel CNN teacher checkpoint ({TEACHER_FORMAT})")
    a = obj["arch"]
    net = SmallCNN(a["in_chans"], a["n_classes"], a["width"], a["depth"])
    net.load_state_dict(obj["model"])
    return net.eval().requires_grad_(False)


def train_teacher(cfg: TeacherConfig, *, resume: bool = False, force: bool = False,
        progress: bool = True) -> dict:
    """Train (or continue) the CNN classifier on pixels of `cfg.data`. Returns a summary with
    `teacher` (checkpoint path), `step`, `losses`, `train_accuracy` (on the training samples)."""
    check_positive(batch_size=cfg.batch_size, lr=cfg.lr, save_every=cfg.save_every)
    if cfg.steps < 0:
        raise ValueError(f"steps must be >= 0, got {cfg.steps}")
    run = PretrainRun(cfg, resume, ARCH_KEYS, force=force)
    x, labels, _, _ = load_space_samples(cfg.data, cfg.split, cfg.data_root, "pixels", cfg.n_max)
    if labels is None:
        raise ValueError(f"data {cfg.data!r} has no labels: the teacher is a classifier")
    net = SmallCNN(x.shape[1], int(labels.max()) + 1, cfg.width, cfg.depth).to(cfg.device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    start = run.resume({"model": net, "optimizer": opt})
    for step in tqdm(range(start, cfg.steps), desc="teacher", initial=start, total=cfg.steps,
                     disable=not progress):
        idx = torch.randint(len(x), (cfg.batch_size,), generator=run.gen)
        loss = F.cross_entropy(net(x[idx].to(cfg.device)), labels[idx].to(cfg.device))
        run.step(loss, opt, step, cfg.steps)
    run.save(cfg.steps)
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(c.to(cfg.device)).argmax(1).cpu() for c in x.split(512)])
    acc = (pred == labels).float().mean()
    arch = {"in_chans": net.in_chans, "n_classes": net.n_classes, "width": net.width, "depth": net.depth}
    path = run.dir / "teacher.pt"
    save_atomic({"format": TEACHER_FORMAT, "arch": arch, "model": net.state_dict()}, path)
    return {"kind": "teacher", "teacher": str(path), "step": cfg.steps,
            "losses": run.loss_history(), "train_accuracy": float(acc), "out": str(run.dir)}
