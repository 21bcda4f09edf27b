"""Figures of `featsel validate` from plain arrays: generated vs real samples in a UMAP
(paper Figure 5). Writes one PNG atomically (``reports.figures.save_figure``)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reports.figures import plt, save_figure

__all__ = ["umap_figure"]


def umap_figure(real: np.ndarray, real_labels: np.ndarray, gen: np.ndarray,
                gen_labels: np.ndarray, path: str | os.PathLike, *,
                class_names: Sequence[str] | None = None, title: str = "",
                max_real: int = 2000, seed: int = 0) -> Path:
    """real: (N, D), real_labels: (N,) int codes; gen: (M, D), gen_labels: (M,) -> PNG.

    One UMAP (umap-learn, 15 neighbours) fitted on real and generated samples together (real
    subsampled to ``max_real``, seeded), drawn as two panels sharing the embedding: real cells
    and generated cells, coloured by label.
    """
    import umap

    real, gen = np.asarray(real, dtype=np.float32), np.asarray(gen, dtype=np.float32)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError(f"real and gen must be (N, D) and (M, D) with the same D, got "
                         f"{real.shape} and {gen.shape}")
    if len(real_labels) != len(real) or len(gen_labels) != len(gen):
        raise ValueError("real_labels / gen_labels must have one label per sample")
    rng = np.random.default_rng(seed)
    if len(real) > max_real:
        keep = np.sort(rng.choice(len(real), max_real, replace=False))
        real, real_labels = real[keep], np.asarray(real_labels)[keep]
    with warnings.catch_warnings():  # "n_jobs overridden by setting random_state"
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        emb = umap.UMAP(n_neighbors=15, random_state=seed, n_jobs=1).fit_transform(
            np.concatenate([real, gen]))
    er, eg = emb[: len(real)], emb[len(real):]
    codes = sorted(set(np.asarray(real_labels).tolist()) | set(np.asarray(gen_labels).tolist()))
    cmap = plt.get_cmap("tab10" if len(codes) <= 10 else "tab20")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharex=True, sharey=True)
    for ax, e, lab, name in ((axes[0], er, real_labels, "real"), (axes[1], eg, gen_labels,
                                                                     "generated")):
        for i, c in enumerate(codes):
            m = np.asarray(lab) == c
            label = class_names[c] if class_names is not None and c < len(class_names) else str(c)
            ax.scatter(e[m, 0], e[m, 1], s=4, color=cmap(i % cmap.N), label=label)
        ax.set_title(f"{name} ({len(e)})")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].legend(markerscale=3, fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
