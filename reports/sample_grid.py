"""The labelled grid of generated images that ``featsel sample`` writes: one row per class (its
name), one block of columns per guidance scale alpha, each block headed by its alpha.

Draws only: the samples come in as an array in [0, 1], already generated and decoded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reports.figures import DPI, MIN_FONT_PT, plt, save_figure, wrap_label

__all__ = ["sample_grid_figure"]

# an image cell is at least this big on the page (8x8 digits would be 8 px otherwise) and at
# most this (a 256 px image at full size would make a grid of 10 classes a metre wide)
MIN_CELL_IN = 0.45
MAX_CELL_IN = 1.0
MAX_SIDE_IN = 300.0  # matplotlib cannot draw more than 2^16 px per side
GAP = 0.08           # space between images, as a fraction of an image
BLOCK_GAP = 0.5      # space between alpha blocks, as a fraction of an image


def sample_grid_figure(images, classes: Sequence[str], alphas: Sequence[float],
                       path: str | os.PathLike, *, title: str = "") -> Path:
    """images: ``(K, A, n, H, W)`` grey or ``(K, A, n, H, W, C)`` (C = 1 or 3) in [0, 1] for K
    classes, A alphas and n samples each; classes: K row labels; alphas: A values -> PNG."""
    a = np.asarray(images, dtype=np.float32)
    if a.ndim == 5:
        a = a[..., None]
    if a.ndim != 6 or a.shape[-1] not in (1, 3):
        raise ValueError(f"images: expected (K, A, n, H, W) or (K, A, n, H, W, C) with C 1 or "
                         f"3, got shape {tuple(np.shape(images))}")
    k, n_alpha, n, h, w, c = a.shape
    if len(classes) != k or len(alphas) != n_alpha:
        raise ValueError(f"classes / alphas: expected {k} and {n_alpha} labels for images of "
                         f"shape {a.shape}, got {len(classes)} and {len(alphas)}")
    gap, bgap = max(1, round(GAP * h)), max(2, round(BLOCK_GAP * w))
    block_w = n * w + (n - 1) * gap
    width = n_alpha * block_w + (n_alpha - 1) * bgap
    height = k * h + (k - 1) * gap
    mosaic = np.ones((height, width, c), dtype=np.float32)  # white between the images
    for i in range(k):
        for j in range(n_alpha):
            for m in range(n):
                y, x = i * (h + gap), j * (block_w + bgap) + m * (w + gap)
                mosaic[y:y + h, x:x + w] = np.clip(a[i, j, m], 0.0, 1.0)
    cell = float(np.clip(h / DPI, MIN_CELL_IN, MAX_CELL_IN))
    cell = min(cell, MAX_SIDE_IN * h / max(height, width))
    fig_w, fig_h = cell * width / h, cell * height / h
    fig, ax = plt.subplots(figsize=(fig_w + 0.2, fig_h + 0.2))
    ax.set_position([0.0, 0.0, fig_w / (fig_w + 0.2), fig_h / (fig_h + 0.2)])
    upscaled = cell * DPI >= h
    ax.imshow(mosaic[..., 0] if c == 1 else mosaic, cmap="gray" if c == 1 else None,
              vmin=0.0, vmax=1.0, interpolation="nearest" if upscaled else "antialiased")
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_yticks([i * (h + gap) + (h - 1) / 2 for i in range(k)],
                  [wrap_label(s, 20, lines=2) for s in classes], fontsize=MIN_FONT_PT + 2)
    ax.set_xticks([j * (block_w + bgap) + (block_w - 1) / 2 for j in range(n_alpha)],
                  [f"alpha = {float(al):g}" for al in alphas], fontsize=MIN_FONT_PT + 2)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.set_ylabel("class", fontsize=MIN_FONT_PT + 2)
    if title:
        ax.set_title(wrap_label(title, 90, lines=2), fontsize=MIN_FONT_PT + 2, pad=24)
    return save_figure(fig, path)
