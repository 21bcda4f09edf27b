"""Figures of `featsel validate` from plain arrays: generated vs real samples in a 2-D
embedding (a UMAP computed by the sweep, paper Figure 5) or a grid of generated images (paper
Figure 4), the predicted-vs-outcome ranking scatter and the FD-vs-step curves. Each writes one
PNG atomically (``reports.figures.save_figure``)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from reports.figures import MAX_WIDTH_IN, MIN_FONT_PT, plt, save_figure, wrap_label

__all__ = ["ranking_scatter", "embedding_figure", "sample_grid_png", "draw_sample_figure",
           "fd_curves_figure"]


def _plain(s: str) -> str:
    """A label matplotlib draws verbatim (``$`` would start mathtext)."""
    return str(s).replace("$", r"\$")


def ranking_scatter(names: Sequence[str], delta: Sequence[float], mean_rank: Sequence[float],
                    path: str | os.PathLike, *, delta_low: Sequence[float] | None = None,
                    delta_high: Sequence[float] | None = None,
                    rank_low: Sequence[float] | None = None,
                    rank_high: Sequence[float] | None = None,
                    pred_rank: Sequence[float] | None = None,
                    outcome_rank: Sequence[float] | None = None, tau: float = 0.05,
                    predictor: str = "Delta_OT") -> Path:
    """Predicted vs outcome, one point per candidate (all sequences of length C) -> PNG.

    Left: Delta_OT (x, with its interval ``delta_low..delta_high``) against the mean FD rank
    (y, paper Table 4, with the spread ``rank_low..rank_high``, e.g. the min and max of the
    per-metric ranks). Right: ``pred_rank`` (default: the order of ``delta``) against
    ``outcome_rank`` (default: the order of ``mean_rank``), 1 = best, with the diagonal (points
    on it = predicted exactly), labelled by ``predictor`` (the score's ranking criterion).
    Candidates with a non-finite mean rank (every FD
    excluded) are left out of both panels.
    """
    d = np.asarray(delta, float)
    r = np.asarray(mean_rank, float)
    n = len(names)
    if d.shape != (n,) or r.shape != (n,):
        raise ValueError(f"delta and mean_rank must hold one value per name ({n}), got "
                         f"{d.shape} and {r.shape}")
    ok = np.isfinite(d) & np.isfinite(r)

    def _err(mid, lo, hi):
        if lo is None or hi is None:
            return None
        lo, hi = np.asarray(lo, float)[ok], np.asarray(hi, float)[ok]
        e = np.vstack([mid - lo, hi - mid])
        return np.where(np.isfinite(e), e, 0.0).clip(min=0)

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10.5, 4.2))
    ax.errorbar(d[ok], r[ok], xerr=_err(d[ok], delta_low, delta_high),
                yerr=_err(r[ok], rank_low, rank_high), fmt="o", color="#4c72b0", ecolor="#999",
                capsize=3)
    for name, x, y in zip(np.asarray(names, dtype=object)[ok], d[ok], r[ok]):
        ax.annotate(_plain(name), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=MIN_FONT_PT)
    ax.set_xlabel(f"Delta_OT at tau={tau:g} (predicted; lower = better)")
    ax.set_ylabel("mean FD rank (outcome; 1 = best)")
    ax.set_title("Delta_OT against the outcome")
    if pred_rank is None:  # ties: the order of the names
        pred_rank = np.argsort(np.argsort(np.where(np.isfinite(d), d, np.inf), kind="stable"),
                               kind="stable") + 1
    if outcome_rank is None:
        outcome_rank = np.argsort(np.argsort(np.where(ok, r, np.inf), kind="stable"),
                                  kind="stable") + 1
    pr = np.asarray(pred_rank, float)[ok]
    orank = np.asarray(outcome_rank, float)[ok]
    ax2.plot([0.5, n + 0.5], [0.5, n + 0.5], color="#bbb", lw=1, zorder=0)
    ax2.scatter(pr, orank, color="#4c72b0")
    for name, x, y in zip(np.asarray(names, dtype=object)[ok], pr, orank):
        ax2.annotate(_plain(name), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=MIN_FONT_PT)
    ticks = np.arange(1, n + 1)
    ax2.set_xticks(ticks)
    ax2.set_yticks(ticks)
    ax2.set_xlim(0.5, n + 0.5)
    ax2.set_ylim(0.5, n + 0.5)
    ax2.set_xlabel(f"predicted rank ({_plain(predictor)})")
    ax2.set_ylabel("outcome rank (by mean FD rank)")
    ax2.set_title("Rank against rank (diagonal = predicted exactly)")
    if not ok.all():
        fig.text(0.01, 0.01, f"{int((~ok).sum())} candidate(s) without an outcome left out",
                 fontsize=MIN_FONT_PT)
    return save_figure(fig, path)


def embedding_figure(real: np.ndarray, real_labels: np.ndarray, gen: np.ndarray,
                     gen_labels: np.ndarray, path: str | os.PathLike, *,
                     class_names: Sequence[str] | None = None, title: str = "") -> Path:
    """real: (N, 2), real_labels: (N,) int codes; gen: (M, 2), gen_labels: (M,) -> PNG.

    A 2-D embedding of real and generated samples together (a UMAP, computed by
    ``featsel validate``), drawn as two panels sharing it: real cells and generated cells,
    coloured by label.
    """
    er, eg = np.asarray(real, dtype=float), np.asarray(gen, dtype=float)
    if er.ndim != 2 or eg.ndim != 2 or er.shape[1] != 2 or eg.shape[1] != 2:
        raise ValueError(f"real and gen must be 2-D embeddings (N, 2) and (M, 2), got "
                         f"{er.shape} and {eg.shape}")
    if len(real_labels) != len(er) or len(gen_labels) != len(eg):
        raise ValueError("real_labels / gen_labels must have one label per sample")
    codes = sorted(set(np.asarray(real_labels).tolist()) | set(np.asarray(gen_labels).tolist()))
    cmap = plt.get_cmap("tab10" if len(codes) <= 10 else "tab20")
    # the class legend sits right of the panels: together no wider than a report shows unscaled
    fig, axes = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN - 2.4, 4.2), sharex=True, sharey=True)
    for ax, e, lab, name in ((axes[0], er, real_labels, "real"), (axes[1], eg, gen_labels,
                                                                     "generated")):
        for i, c in enumerate(codes):
            m = np.asarray(lab) == c
            label = class_names[c] if class_names is not None and c < len(class_names) else str(c)
            ax.scatter(e[m, 0], e[m, 1], s=4, color=cmap(i % cmap.N), label=label)
        ax.set_title(f"{name} ({len(e)})")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].legend(markerscale=3, fontsize=MIN_FONT_PT, loc="center left", bbox_to_anchor=(1, 0.5))
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def sample_grid_png(images: np.ndarray, nrow: int, path: str | os.PathLike,
                    padding: int = 2) -> Path:
    """images: (N, C, H, W) in [-1, 1], C = 1 or 3 -> a PNG grid of ``nrow`` images per row,
    ``padding`` black pixels around each, one image pixel per PNG pixel (atomic). The same
    pixels as ``torchvision.utils.save_image(images, nrow=nrow, normalize=True,
    value_range=(-1, 1))``, which drew these grids before (tests compare the two)."""
    from PIL import Image

    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or not len(x):
        raise ValueError(f"images: expected (N, C, H, W) with C = 1 or 3, got {x.shape}")
    if nrow < 1:
        raise ValueError(f"nrow: expected >= 1, got {nrow}")
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    x = (np.clip(x, -1, 1) + np.float32(1)) / np.float32(2)
    n, c, h, w = x.shape
    if n == 1:  # one image: no border (as torchvision)
        padding = 0
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = np.zeros((c, (h + padding) * rows + padding, (w + padding) * cols + padding),
                    dtype=np.float32)
    for k in range(n):
        y0, x0 = (k // cols) * (h + padding) + padding, (k % cols) * (w + padding) + padding
        grid[:, y0:y0 + h, x0:x0 + w] = x[k]
    pixels = np.clip(grid * np.float32(255) + np.float32(0.5), 0, 255).astype(np.uint8)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".png.tmp")
    os.close(fd)
    try:
        Image.fromarray(pixels.transpose(1, 2, 0)).save(tmp, format="PNG")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def draw_sample_figure(data: str | os.PathLike, path: str | os.PathLike) -> Path:
    """The per-candidate figure of ``featsel validate`` from its saved data (``.npz``): a sample
    grid from ``images`` (N, C, H, W) and ``nrow``, or the embedding figure from ``real``,
    ``real_labels``, ``gen``, ``gen_labels`` (+ ``class_names``, ``title``) -> PNG."""
    with np.load(data, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if "images" in arrays:
        return sample_grid_png(arrays["images"], int(arrays["nrow"]), path)
    names = arrays.get("class_names")
    return embedding_figure(arrays["real"], arrays["real_labels"], arrays["gen"],
                            arrays["gen_labels"], path,
                            class_names=None if names is None else [str(n) for n in names],
                            title=str(arrays.get("title", "")))


def fd_curves_figure(curves: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
                     path: str | os.PathLike, *,
                     flagged: Collection[tuple[str, str]] = (),
                     last_quarter: tuple[float, float] | None = None) -> Path:
    """Small multiples of FD against the training step -> PNG: one panel per metric (the keys of
    ``curves``, in order), one line per candidate (same colour in every panel).

    curves: ``{metric: {candidate: (steps (S,), FD (S,))}}``, missing values None / NaN (the
    line skips them). flagged: (candidate, metric) pairs drawn dashed (e.g. still improving at
    the end of training). last_quarter: (start step, final step) shaded in every panel.
    """
    metrics = list(curves)
    if not metrics:
        raise ValueError("curves: expected at least one metric")
    cands = list(dict.fromkeys(c for m in metrics for c in curves[m]))
    cmap = plt.get_cmap("tab10" if len(cands) <= 10 else "tab20")
    colour = {c: cmap(i % cmap.N) for i, c in enumerate(cands)}
    flagged = {(str(c), str(m)) for c, m in flagged}
    ncols = min(len(metrics), 3)
    nrows = -(-len(metrics) // ncols)
    # panels and the legend right of them fit the width a report shows unscaled
    panel = min(3.6, (MAX_WIDTH_IN - 2.6) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel * ncols, 2.9 * nrows),
                             squeeze=False)
    for ax, m in zip(axes.flat, metrics):
        if last_quarter is not None:
            ax.axvspan(*last_quarter, color="#eee", zorder=0)
        for c, (steps, fd) in curves[m].items():
            x = np.asarray(steps, dtype=float)
            y = np.asarray([np.nan if v is None else v for v in fd], dtype=float)
            ok = np.isfinite(x) & np.isfinite(y)
            if not ok.any():
                continue
            ax.plot(x[ok], y[ok], marker="o", ms=3, color=colour[c],
                    ls="--" if (str(c), str(m)) in flagged else "-")
        ax.set_title(_plain(m), fontsize=9)
        ax.set_xlabel("training step", fontsize=8)
        ax.set_ylabel("FD (mean over seeds)", fontsize=8)
        ax.tick_params(labelsize=MIN_FONT_PT)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))  # whole steps, apart
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], color=colour[c], marker="o", ms=3, label=wrap_label(c, 22))
               for c in cands]
    if flagged:
        handles.append(plt.Line2D([], [], color="#555", ls="--", label="still improving"))
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=MIN_FONT_PT)
    fig.tight_layout()
    return save_figure(fig, path)
