"""The ViT student that MAE pretraining and distillation train: its options (`StudentConfig`),
its registry spec (a `random-vit` whose weights are trained), building it, and saving it as a
featsel featurizer checkpoint at the end of a run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from generation.pretrain.common import PretrainRun, RunConfig

__all__ = ["StudentConfig", "student_spec", "build_student", "make_student", "save_student"]


@dataclass
class StudentConfig(RunConfig):
    """Options of a run that trains the ViT student (one place for each default)."""

    space: str = "pixels"  # generation space spec (pixels, vae:path=DIR, ...)
    weight_decay: float = 0.05
    patch_size: int | None = None  # default: smallest p with H/p <= 16
    depth: int = 6
    embed_dim: int = 96
    num_heads: int = 3
    tap_every: int = 2


def student_spec(
    *, in_shape: tuple[int, ...], patch_size: int | None, depth: int, embed_dim: int,
    num_heads: int, tap_every: int, seed: int,
) -> str:
    """The registry spec of the student/encoder ViT (a `random-vit` whose weights we train)."""
    if embed_dim % num_heads:
        raise ValueError(f"embed_dim ({embed_dim}) must be a multiple of num_heads ({num_heads})")
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    opts = {"model": "vit_tiny_patch16_224", "depth": depth, "embed_dim": embed_dim,
            "num_heads": num_heads, "tap_every": min(tap_every, depth), "seed": seed}
    if patch_size is not None:
        if in_shape[1] % patch_size:
            raise ValueError(f"patch_size {patch_size} must divide the input size {in_shape[1]}")
        opts["patch_size"] = patch_size
    return "random-vit:" + ",".join(f"{k}={v}" for k, v in opts.items())


def build_student(spec: str, in_shape: tuple[int, ...]):
    """A trainable `ViTFeaturizer` from `student_spec` (train mode, gradients on)."""
    from featsel.features import create_featurizer

    feat = create_featurizer(spec, in_shape=tuple(in_shape))
    return feat.train().requires_grad_(True)


def make_student(cfg: StudentConfig, in_shape: tuple[int, ...]):
    """The trainable student of ``cfg`` for inputs ``in_shape`` (C, H, W), on ``cfg.device``."""
    spec = student_spec(in_shape=in_shape, patch_size=cfg.patch_size, depth=cfg.depth,
                        embed_dim=cfg.embed_dim, num_heads=cfg.num_heads,
                        tap_every=cfg.tap_every, seed=cfg.seed)
    return build_student(spec, in_shape).to(cfg.device)


def save_student(run: PretrainRun, feat: Any, kind: str, step: int) -> dict[str, Any]:
    """End a student run: the final state, the frozen student as ``<out>/featurizer.pt``, and
    the summary ``{"kind", "featurizer" (path), "spec", "step", "losses", "out"}``."""
    from featsel.features import save_featurizer

    run.save(step)
    feat.eval().requires_grad_(False)
    path = save_featurizer(feat, run.dir / "featurizer.pt")
    return {"kind": kind, "featurizer": str(path), "spec": feat.spec, "step": step,
            "losses": run.loss_history(), "out": str(run.dir)}
