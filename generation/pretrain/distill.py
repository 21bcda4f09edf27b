"""Feature distillation: a ViT student on generation-space samples matches a frozen teacher's
features with a cosine loss on the global vector and on the patch tokens.

For a batch with generation-space samples u: (B, C, H, W) and ambient pixels x:
teacher -> global t_g: (B, Cg), patch t_p: (B, Cp, h, w) (None when the teacher has no map);
student (timm ViT of the featurizer) -> pooled s: (B, D), patch tokens S: (B, D, h', w');
linear heads P_g: D -> Cg, P_p: D -> Cp (S resized bilinearly to (h, w) when the grids differ):

    L = mean_b (1 - cos(P_g s_b, t_g,b)) + patch_weight * mean_{b,l} (1 - cos(P_p S_b,l, t_p,b,l)).

Teachers (`teacher`): "cnn" trains a small CNN classifier on the pixels inside the run
(`teacher.py`, stored in <out>/teacher/; the stand-in for InceptionV3), a path to a `teacher.pt`,
or any featurizer spec of the registry, e.g. "inception" or "dinov2" (needs their weights; fails
fast offline), fed u through the generation space: its last global map is t_g, its last spatial
map t_p. The student is saved as a `random-vit` featurizer checkpoint (`featurizer.pt`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from generation.pretrain.common import PretrainRun, check_positive, load_space_samples
from generation.pretrain.student import StudentConfig, make_student, save_student

ARCH_KEYS = ("data", "split", "space", "teacher", "patch_size", "depth", "embed_dim",
             "num_heads", "seed", "n_max")


@dataclass
class DistillConfig(StudentConfig):
    """Options of `train_distill` (one place for each default; the student's: `StudentConfig`)."""

    out: str = "runs/distill"
    teacher: str = "cnn"  # cnn | path to teacher.pt | featurizer spec (inception, dinov2, ...)
    teacher_steps: int = 500  # for teacher=cnn
    patch_weight: float = 1.0


class Teacher(nn.Module):
    """Frozen teacher: (x: (B, C, H, W) pixels, u: generation samples) -> (global, patch | None)."""

    def __init__(self, net: nn.Module, on_pixels: bool):
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.on_pixels = on_pixels

    @torch.no_grad()
    def forward(self, x: Tensor, u: Tensor) -> tuple[Tensor, Tensor | None]:
        if self.on_pixels:
            return self.net.features(x)
        maps = self.net(u)
        glob = [m for m in maps if m.ndim == 2]
        spat = [m for m in maps if m.ndim == 4]
        if not glob and not spat:
            raise ValueError("distill: the teacher featurizer gives no maps")
        g = glob[-1] if glob else spat[-1].mean((2, 3))
        return g.float(), (spat[-1].float() if spat else None)


def make_teacher(cfg: DistillConfig, d: Path, space, resume: bool, progress: bool) -> Teacher:
    """Build the frozen teacher named by `cfg.teacher` (training the CNN when it is 'cnn')."""
    from generation.pretrain.teacher import TeacherConfig, load_teacher, train_teacher

    if cfg.teacher == "cnn":
        tdir = d / "teacher"
        if not (tdir / "teacher.pt").is_file():
            tcfg = TeacherConfig(data=cfg.data, split=cfg.split, data_root=cfg.data_root,
                                 n_max=cfg.n_max, out=str(tdir), steps=cfg.teacher_steps,
                                 batch_size=cfg.batch_size, seed=cfg.seed, device=cfg.device)
            train_teacher(tcfg, resume=resume and (tdir / "state.pt").is_file(), progress=progress)
        return Teacher(load_teacher(tdir / "teacher.pt"), on_pixels=True)
    if cfg.teacher.endswith(".pt") and Path(cfg.teacher).expanduser().is_file():
        import contextlib

        with contextlib.suppress(ValueError):  # not a CNN teacher: try the featurizer registry
            return Teacher(load_teacher(cfg.teacher), on_pixels=True)
    from featsel.features import create_featurizer

    return Teacher(create_featurizer(cfg.teacher, space=space), on_pixels=False)


def _cos_loss(a: Tensor, b: Tensor, dim: int) -> Tensor:
    return (1 - F.cosine_similarity(a, b, dim=dim, eps=1e-6)).mean()


def train_distill(cfg: DistillConfig, *, resume: bool = False, force: bool = False,
        progress: bool = True) -> dict:
    """Train (or continue) a distillation run in `cfg.out`. Returns a summary dict with
    `featurizer` (checkpoint path), `step`, `losses` (per step of this call)."""
    check_positive(batch_size=cfg.batch_size, lr=cfg.lr, save_every=cfg.save_every)
    if cfg.steps < 0 or cfg.patch_weight < 0:
        raise ValueError(f"steps and patch_weight must be >= 0, got {cfg.steps}, {cfg.patch_weight}")
    if not cfg.teacher:
        raise ValueError("teacher: expected 'cnn', a teacher.pt path or a featurizer spec")
    run = PretrainRun(cfg, resume, ARCH_KEYS, force=force)
    x, _, u, space = load_space_samples(cfg.data, cfg.split, cfg.data_root, cfg.space, cfg.n_max)
    teacher = make_teacher(cfg, run.dir, space, resume, progress).to(cfg.device)
    feat = make_student(cfg, tuple(u.shape[1:]))
    vit = feat.model
    tg, tp = teacher(x[:2].to(cfg.device), u[:2].to(cfg.device))
    head_g = nn.Linear(cfg.embed_dim, tg.shape[1]).to(cfg.device)
    head_p = nn.Linear(cfg.embed_dim, tp.shape[1] if tp is not None else 1).to(cfg.device)
    params = [*vit.parameters(), *head_g.parameters(), *head_p.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = run.gen
    start = run.resume({"featurizer": feat, "head_g": head_g, "head_p": head_p, "optimizer": opt})
    for step in tqdm(range(start, cfg.steps), desc="distill", initial=start, total=cfg.steps,
                     disable=not progress):
        idx = torch.randint(len(u), (cfg.batch_size,), generator=gen)
        ub, xb = u[idx].to(cfg.device), x[idx].to(cfg.device)
        tg, tp = teacher(xb, ub)
        tokens = vit.forward_features(ub)
        loss = _cos_loss(head_g(vit.forward_head(tokens, pre_logits=True)), tg, dim=1)
        if tp is not None and cfg.patch_weight > 0:
            grid = feat._grid(ub)
            sp = feat._spatial(head_p(tokens), grid)  # (B, Cp, h', w')
            if sp.shape[-2:] != tp.shape[-2:]:
                sp = F.interpolate(sp, size=tp.shape[-2:], mode="bilinear", align_corners=False)
            loss = loss + cfg.patch_weight * _cos_loss(sp, tp, dim=1)
        run.step(loss, opt, step, cfg.steps)
    return save_student(run, feat, "distill", cfg.steps)
