"""The data of `featsel validate`'s per-candidate figures (paper Figure 4 / 5), computed once
when the sweep runs and saved where its figure goes, so that ``reports`` draws it (and
``featsel report DIR`` redraws it) from files alone. Per candidate, from its seed-0 run at
``eval_alpha``, one ``.npz`` (written atomically) beside the PNG of the same name:

- images, ``figures/samples_<candidate>.npz``: ``images`` (K * n, C, H, W) float32 generated
  samples in [-1, 1] (at most 3 channels), ``nrow`` = n (``figure_n``): one row per class;
- vectors, ``figures/samples_<candidate>_umap.npz``: a UMAP (umap-learn, ``umap_embedding``) of
  generated and real samples together: ``real`` (N, 2), ``real_labels`` (N,), ``gen`` (M, 2),
  ``gen_labels`` (M,), ``title`` and, when the data set names its classes, ``class_names`` (K,).

``figures/steps.json`` records the checkpoint step each was computed from.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from featsel.rundir import atomic_save, atomic_write_json
from generation.run import checkpoint_step
from generation.validation.plan import Job, ValidateConfig, candidate_dirname

__all__ = ["figure_data", "umap_embedding", "save_arrays"]


def umap_embedding(real: np.ndarray, real_labels: np.ndarray, gen: np.ndarray,
                   gen_labels: np.ndarray, *, max_real: int = 2000,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """real: (N, D), real_labels: (N,) int codes; gen: (M, D), gen_labels: (M,) -> ``{"real":
    (N', 2), "real_labels": (N',), "gen": (M, 2), "gen_labels": (M,)}``.

    One UMAP (umap-learn, 15 neighbours) fitted on real and generated samples together (real
    subsampled to ``max_real``, seeded): both sets share the embedding.
    """
    import umap

    real, gen = np.asarray(real, dtype=np.float32), np.asarray(gen, dtype=np.float32)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError(f"real and gen must be (N, D) and (M, D) with the same D, got "
                         f"{real.shape} and {gen.shape}")
    if len(real_labels) != len(real) or len(gen_labels) != len(gen):
        raise ValueError("real_labels / gen_labels must have one label per sample")
    real_labels, gen_labels = np.asarray(real_labels), np.asarray(gen_labels)
    rng = np.random.default_rng(seed)
    if len(real) > max_real:
        keep = np.sort(rng.choice(len(real), max_real, replace=False))
        real, real_labels = real[keep], real_labels[keep]
    with warnings.catch_warnings():  # "n_jobs overridden by setting random_state"
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        emb = umap.UMAP(n_neighbors=15, random_state=seed, n_jobs=1).fit_transform(
            np.concatenate([real, gen]))
    return {"real": emb[: len(real)], "real_labels": real_labels, "gen": emb[len(real):],
            "gen_labels": gen_labels}


def save_arrays(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``np.savez`` to ``path`` atomically (plain arrays only: loads with allow_pickle=False)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: savez appends no second .npz
            np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_save(path, write)


def figure_data(cfg: ValidateConfig, jobs: list[Job], out: Path) -> dict[str, str]:
    """Compute and save the figure data of every candidate (module docstring). Data computed
    from the current checkpoint are kept (resume); a resumed sweep with a larger budget
    computes them again. Returns ``{candidate: PNG path relative to out}`` (the figure that
    ``reports.render_validation_report`` draws from the ``.npz`` of the same name)."""
    import torch

    from featsel.data import load_dataset
    from generation.sample import decode, generate, load_run

    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    # the checkpoint step each figure was computed from: a resumed sweep with a larger budget
    # computes them again (they showed the old, shorter-trained generators)
    steps_path = fig_dir / "steps.json"
    try:
        drawn = json.loads(steps_path.read_text())
    except (OSError, ValueError):
        drawn = {}
    paths = {}
    for j in jobs:
        if j.seed != 0:
            continue
        stem = f"samples_{candidate_dirname(j.candidate)}"
        step = checkpoint_step(Path(j.run_dir))
        done = [p for p in (fig_dir / f"{stem}.npz", fig_dir / f"{stem}_umap.npz") if p.is_file()]
        if done and drawn.get(stem) == step:
            paths[j.candidate] = str(done[0].with_suffix(".png").relative_to(out))
            continue
        model, tcfg, _ = load_run(j.run_dir, device=cfg.device)
        ds = load_dataset(tcfg.data, split=tcfg.data_split)
        space = ds.generation_space(tcfg.space or None)
        labels = torch.arange(model.num_classes).repeat_interleave(cfg.figure_n)
        with torch.no_grad():
            x = decode(space, generate(model, labels, float(cfg.eval_alpha), seed=0).cpu())
        if x.ndim == 4:
            target = fig_dir / f"{stem}.npz"
            save_arrays(target, images=x[:, :3].clamp(-1, 1).numpy(),
                        nrow=np.int64(cfg.figure_n))
        else:
            target = fig_dir / f"{stem}_umap.npz"
            real = ds.x.reshape(len(ds.x), -1).float().numpy()
            real_labels = (ds.labels.numpy() if ds.labels is not None
                           else torch.zeros(len(real), dtype=torch.long).numpy())
            emb = umap_embedding(real, real_labels, x.reshape(len(x), -1).numpy(),
                                 labels.numpy(), seed=cfg.seed)
            names = {"class_names": np.array([str(n) for n in ds.class_names])} \
                if ds.class_names else {}
            save_arrays(target, **emb, **names,
                        title=np.array(f"{j.candidate} (seed {j.seed}, alpha "
                                       f"{cfg.eval_alpha:g})"))
        paths[j.candidate] = str(target.with_suffix(".png").relative_to(out))
        drawn[stem] = step
        atomic_write_json(steps_path, drawn)
    return paths
