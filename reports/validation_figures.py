"""Figures of `featsel validate` from plain arrays: generated vs real samples in a UMAP
(paper Figure 5), the predicted-vs-outcome ranking scatter and the FD-vs-step curves. Each
writes one PNG atomically (``reports.figures.save_figure``)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from reports.figures import MAX_WIDTH_IN, MIN_FONT_PT, plt, save_figure, wrap_label

__all__ = ["ranking_scatter", "umap_figure", "fd_curves_figure"]


def _plain(s: str) -> str:
    """A label matplotlib draws verbatim (``$`` would start mathtext)."""
    return str(s).replace("$", r"\$")


def ranking_scatter(names: Sequence[str], delta: Sequence[float], mean_rank: Sequence[float],
                    path: str | os.PathLike, *, delta_low: Sequence[float] | None = None,
                    delta_high: Sequence[float] | None = None,
                    rank_low: Sequence[float] | None = None,
                    rank_high: Sequence[float] | None = None,
                    pred_rank: Sequence[float] | None = None,
                    outcome_rank: Sequence[float] | None = None, tau: float = 0.05) -> Path:
    """Predicted vs outcome, one point per candidate (all sequences of length C) -> PNG.

    Left: Delta_OT (x, with its interval ``delta_low..delta_high``) against the mean FD rank
    (y, paper Table 4, with the spread ``rank_low..rank_high``, e.g. the min and max of the
    per-metric ranks). Right: ``pred_rank`` (default: the order of ``delta``) against
    ``outcome_rank`` (default: the order of ``mean_rank``), 1 = best, with the diagonal (points
    on it = predicted exactly). Candidates with a non-finite mean rank (every FD
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
    ax2.set_xlabel("Delta_OT rank (predicted)")
    ax2.set_ylabel("outcome rank (by mean FD rank)")
    ax2.set_title("Rank against rank (diagonal = predicted exactly)")
    if not ok.all():
        fig.text(0.01, 0.01, f"{int((~ok).sum())} candidate(s) without an outcome left out",
                 fontsize=MIN_FONT_PT)
    return save_figure(fig, path)


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
