"""Sampling from a trained run: one forward pass per batch with the EMA weights.

    model, cfg, info = load_run("runs/mnist")                 # EMA generator (eval mode)
    u = generate(model, labels, alpha=1.5, seed=0)            # (B, *shape) in generation space
    sample_run("runs/mnist", classes=[0, 1], alphas=[1, 2], n=8, out="grid.png")

Images are decoded by the run's generation space (pixels: identity; SD-VAE: the decoder; PCA:
the inverse map) and written as a labelled PNG grid (`reports.sample_grid`: one row per class,
named as the data manifest names it, one block of n columns per alpha); vectors are written as
`.npz` (`x` ambient, `u` generation space, `labels`, `alpha`) or, for `.h5ad` outputs, as
AnnData (needs `anndata`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from featsel.device import check_device
from featsel.rundir import atomic_save
from generation.checkpoint import CHECKPOINT_NAME, load_checkpoint
from generation.config import TrainConfig, config_from_dict

__all__ = ["load_run", "generate", "sample_run", "run_space", "decode", "class_label"]


def load_run(run: str | os.PathLike, *, decay: float | None = None,
             device: str | torch.device = "cpu") -> tuple[nn.Module, TrainConfig, dict]:
    """The EMA generator of a run folder (`decay`: one of the run's EMA decays, default
    cfg.eval_decay or the first). Returns (model in eval mode, config, {step, decay, data})."""
    from generation.train import build_model

    device = check_device(device)
    run = Path(run)
    st = load_checkpoint(run / CHECKPOINT_NAME, map_location="cpu")
    cfg = config_from_dict(st["config"])
    meta = st.get("data") or {}
    if not meta.get("shape"):
        raise ValueError(f"checkpoint in {str(run)!r} lacks the data shape; cannot rebuild "
                         f"the generator")
    d = float(decay or cfg.eval_decay or cfg.ema_decays[0])
    if str(d) not in st["ema"]:
        raise ValueError(f"decay {d} is not an EMA decay of this run; available: "
                         f"{sorted(st['ema'])}")
    model = build_model(cfg, tuple(meta["shape"]), int(meta["num_classes"]))
    model.load_state_dict(st["ema"][str(d)])
    model.to(device).eval()
    return model, cfg, {"step": int(st["step"]), "decay": d, **meta}


@torch.no_grad()
def generate(model: nn.Module, labels: Tensor, alpha: float | Tensor, *, seed: int = 0,
             batch_size: int = 256) -> Tensor:
    """labels: (B,) -> samples (B, *shape) in generation space (float32, on the model's device);
    alpha: a float or (B,). Noise comes from a generator seeded with `seed`."""
    dev = next(model.parameters()).device
    labels = torch.as_tensor(labels, dtype=torch.long, device=dev)
    if labels.ndim != 1:
        raise ValueError(f"labels must be (B,), got shape {tuple(labels.shape)}")
    if int(labels.min()) < 0 or int(labels.max()) >= model.num_classes:
        raise ValueError(f"labels must lie in [0, {model.num_classes}), got "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    alpha = torch.as_tensor(alpha, dtype=torch.float32, device=dev).expand(labels.shape)
    if float(alpha.min()) < 1:
        raise ValueError(f"alpha must be >= 1 (w = alpha - 1 >= 0), got {float(alpha.min())}")
    g = torch.Generator(device=dev).manual_seed(seed)
    out = []
    for lab, a in zip(labels.split(batch_size), alpha.split(batch_size)):
        z = torch.randn(len(lab), *model.noise_shape, generator=g, device=dev)
        out.append(model(z, lab, a).float())
    return torch.cat(out)


@torch.no_grad()
def decode(space: Any, u: Tensor, batch_size: int = 256) -> Tensor:
    """Generation space -> ambient, in chunks on the space's device: (B, *shape) -> CPU float32."""
    p = next(iter(space.parameters()), None)
    dev = p.device if p is not None else u.device
    return torch.cat([space.decode(c.to(dev)).float().cpu() for c in u.split(batch_size)])


def _run_dataset(cfg: TrainConfig):
    from featsel.data import load_dataset

    return load_dataset(cfg.data, split=cfg.data_split)


def run_space(cfg: TrainConfig):
    """The run's generation space (refitted exactly as in training, e.g. PCA on the split)."""
    return _run_dataset(cfg).generation_space(cfg.space or None)


def class_label(c: int, names: list[str] | None) -> str:
    """Row label of class code ``c``: its name from the data set, with the code when the name
    is not the code itself ("3: cat")."""
    if not names or c >= len(names) or str(names[c]) == str(c):
        return str(c)
    return f"{c}: {names[c]}"


def check_alphas(alphas, flag: str) -> None:
    """Guidance scales must be finite numbers >= 1 (alpha = 1 is no guidance); nan/inf gave
    all-black images."""
    vals = list(alphas)
    if not vals or not all(isinstance(a, int | float) and math.isfinite(a) and a >= 1
                           for a in vals):
        raise ValueError(f"{flag}: expected one or more finite alphas >= 1, got {vals}")


def sample_run(run: str | os.PathLike, *, classes: list[int] | None = None,
               alphas: list[float] | tuple[float, ...] = (1.0,), n: int = 8,
               out: str | os.PathLike | None = None, seed: int = 0,
               decay: float | None = None, device: str = "cpu", space: Any = None) -> dict:
    """Generate n samples per (class, alpha) and write them (PNG grid or .npz/.h5ad).

    Returns {"out": path, "n": count, "shape": ..., "step": ...}.
    """
    if n < 1:
        raise ValueError(f"--n: expected >= 1, got {n}")
    check_alphas(alphas, "--alpha")
    model, cfg, meta = load_run(run, decay=decay, device=device)
    classes = list(range(model.num_classes)) if not classes else [int(c) for c in classes]
    if bad := [c for c in classes if not 0 <= c < model.num_classes]:
        raise ValueError(f"--classes: expected class ids in 0..{model.num_classes - 1}, got {bad}")
    labels = torch.tensor([c for c in classes for _ in alphas for _ in range(n)])
    alpha = torch.tensor([float(a) for _ in classes for a in alphas for _ in range(n)])
    u = generate(model, labels, alpha.to(next(model.parameters()).device), seed=seed).cpu()
    names = None
    if space is None:
        ds = _run_dataset(cfg)
        space, names = ds.generation_space(cfg.space or None), ds.class_names
    x = decode(space, u)
    image = x.ndim == 4
    out = Path(out) if out else Path(run) / f"samples_step{meta['step']}.{'png' if image else 'npz'}"

    if image and x.shape[1] not in (1, 3):
        x = x[:, :3]

    def write(tmp: Path) -> None:
        if image:
            from reports.sample_grid import sample_grid_figure

            imgs = ((x.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()  # (N, H, W, C)
            sample_grid_figure(imgs.reshape(len(classes), len(alphas), n, *imgs.shape[1:]),
                               [class_label(c, names) for c in classes], list(alphas), tmp,
                               title=f"{Path(run).name}: step {meta['step']}, "
                                     f"EMA {meta['decay']:g}")
        elif out.suffix == ".h5ad":
            import anndata

            ad = anndata.AnnData(X=x.numpy())
            ad.obs["label"] = labels.numpy().astype(str)
            ad.obs["alpha"] = alpha.numpy()
            ad.obsm["X_generation"] = u.numpy()
            ad.write_h5ad(tmp)
        else:
            with open(tmp, "wb") as fh:
                np.savez(fh, x=x.numpy(), u=u.numpy(), labels=labels.numpy(),
                         alpha=alpha.numpy())
    atomic_save(out, write, suffix=out.suffix)  # the writers read the format from it
    return {"out": str(out), "n": int(len(labels)), "shape": list(x.shape[1:]),
            "step": meta["step"], "decay": meta["decay"]}
