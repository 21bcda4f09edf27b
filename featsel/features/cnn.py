"""The small CNN classifier (the in-run distillation teacher) and its featurizer `cnn-teacher`.

`SmallCNN` is defined here (featsel never imports `generation`); `generation.pretrain.teacher`
trains it and writes ``teacher.pt`` ({format: TEACHER_FORMAT, arch: {in_chans, n_classes, width,
depth}, model: state dict}, weights_only-loadable). The featurizer loads that file:

    create_featurizer("runs/teacher/teacher.pt", space=space)    # a bare path
    create_featurizer("cnn-teacher:path=runs/teacher/teacher.pt", space=space)

Maps: ``patch`` (B, width, h, w), the last conv map, and ``pooled`` (B, width), its spatial mean
(the classifier's input; the evaluation vector). Latent inputs are decoded to pixels with the
generation space first; pixels are expected in [-1, 1], as the teacher was trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import Tensor, nn

from featsel.features.base import Featurizer
from featsel.safeload import torch_load

__all__ = ["SmallCNN", "TEACHER_FORMAT", "CNNTeacherConfig", "CNNTeacherFeaturizer",
           "is_teacher_checkpoint", "make_cnn_teacher", "read_teacher"]

TEACHER_FORMAT = "featsel-cnn-teacher-v1"


class SmallCNN(nn.Module):
    """x: (B, C, H, W) pixels in [-1, 1] -> logits (B, n_classes); `features(x)` -> (global, patch).

    [conv3x3 -> GroupNorm -> GELU] x depth, stride 2 at the second layer, mean pool, linear.
    """

    def __init__(self, in_chans: int, n_classes: int, width: int = 32, depth: int = 3):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"teacher width and depth must be >= 1, got {width}, {depth}")
        layers: list[nn.Module] = []
        c = in_chans
        for i in range(depth):
            layers += [nn.Conv2d(c, width, 3, stride=2 if i == 1 else 1, padding=1),
                       nn.GroupNorm(min(8, width), width), nn.GELU()]
            c = width
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(width, n_classes)
        self.in_chans, self.n_classes, self.width, self.depth = in_chans, n_classes, width, depth

    def features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: (B, C, H, W) -> global (B, width), patch (B, width, h, w)."""
        patch = self.body(x)
        return patch.mean((2, 3)), patch

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x)[0])


def _read(path: str | Path) -> dict | None:
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "teacher.pt"
    if not p.is_file():
        raise FileNotFoundError(f"teacher checkpoint {p} does not exist (run `featsel pretrain "
                                "teacher`)")
    obj = torch_load(p, "teacher checkpoint")
    return obj if isinstance(obj, dict) and obj.get("format") == TEACHER_FORMAT else None


def is_teacher_checkpoint(path: str | Path) -> bool:
    """True when ``path`` (a file, or a folder holding teacher.pt) is a CNN teacher checkpoint."""
    try:
        return _read(path) is not None
    except (FileNotFoundError, RuntimeError, ValueError, OSError):
        return False


def read_teacher(path: str | Path) -> SmallCNN:
    """The frozen SmallCNN of a ``teacher.pt`` (or a folder holding one), eval mode."""
    obj = _read(path)
    if obj is None:
        raise ValueError(f"{path} is not a featsel CNN teacher checkpoint ({TEACHER_FORMAT})")
    a = obj["arch"]
    net = SmallCNN(int(a["in_chans"]), int(a["n_classes"]), int(a["width"]), int(a["depth"]))
    net.load_state_dict(obj["model"])
    return net.eval().requires_grad_(False)


@dataclass
class CNNTeacherConfig:
    path: str = ""  # teacher.pt written by `featsel pretrain teacher`


class CNNTeacherFeaturizer(Featurizer):
    """u (B, *space.shape) -> [patch (B, width, h, w), pooled (B, width)]."""

    def __init__(self, config: CNNTeacherConfig, net: SmallCNN, space: nn.Module | None,
                 in_shape):
        super().__init__(config, ["patch", "pooled"])
        self.net = net
        self.use_space(space)
        self.in_shape = tuple(in_shape) if in_shape else None

    def forward(self, u: Tensor) -> list[Tensor]:
        x = self.to_ambient(u)
        if x.ndim != 4 or x.shape[1] != self.net.in_chans:
            raise ValueError(f"featurizer cnn-teacher: needs images (B, {self.net.in_chans}, H, "
                             f"W) in pixels, got {tuple(x.shape)}")
        pooled, patch = self.net.features(x.float())
        return [patch, pooled]


def make_cnn_teacher(cfg: CNNTeacherConfig, *, space=None, in_shape=None, fit_data=None,
                     state_dict=None) -> CNNTeacherFeaturizer:
    if not cfg.path:
        raise ValueError("featurizer 'cnn-teacher' needs path=<teacher.pt>")
    return CNNTeacherFeaturizer(cfg, read_teacher(cfg.path), space, in_shape)
