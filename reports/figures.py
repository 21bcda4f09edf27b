"""Matplotlib figures from plain data (lists, dicts, arrays). Each function writes one PNG
atomically and returns its path. Uses the non-interactive Agg backend."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = [
    "save_figure",
    "ranking_figure",
    "r2_heatmap",
    "coupling_heatmap",
    "class_mass_heatmap",
    "spectra_figure",
    "delta_curves_figure",
]


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (PNG) via a temporary file and ``os.replace``; closes it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".png.tmp")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def ranking_figure(names: Sequence[str], mean: Sequence[float], low: Sequence[float],
                   high: Sequence[float], path, *, tau: float, label: str = "Delta_OT",
                   lower_is_better: bool = True, controls: Sequence[str] = ()) -> Path:
    """Horizontal bars of the ranking criterion per candidate (ranked order) with interval
    whiskers; controls in grey."""
    n = len(names)
    fig, ax = plt.subplots(figsize=(6.0, 0.45 * n + 1.2))
    y = np.arange(n)[::-1]
    m = np.asarray(mean, float)
    err = np.vstack([m - np.asarray(low, float), np.asarray(high, float) - m]).clip(min=0)
    colors = ["#bbbbbb" if s in set(controls) else "#4c72b0" for s in names]
    ax.barh(y, m, xerr=err, color=colors, capsize=3)
    ax.set_yticks(y, [_short(str(s)) for s in names])
    better = "lower" if lower_is_better else "higher"
    where = f" at tau={tau:g}" if label == "Delta_OT" else ""
    ax.set_xlabel(f"{label}{where} ({better} is better)")
    ax.set_title(f"Candidates ranked by {label}")
    return save_figure(fig, path)


def _short(name: str, width: int = 34) -> str:
    """Long featurizer specs shortened for axis labels (the tables keep the full name)."""
    return name if len(name) <= width else name[: width - 12] + "..." + name[-9:]


def r2_heatmap(matrix, rows: Sequence[str], cols: Sequence[str], path) -> Path:
    """Alignment R^2, candidates (rows) x evaluation featurizers (cols) (paper Figure 3)."""
    a = np.asarray(matrix, float)
    fig, ax = plt.subplots(figsize=(1.0 * len(cols) + 2.5, 0.6 * len(rows) + 1.5))
    im = ax.imshow(a, vmin=min(0.0, float(np.nanmin(a))) if a.size else 0.0, vmax=1.0,
                   cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cols)), [str(c) for c in cols], rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            if np.isfinite(a[i, j]):
                ax.text(j, i, f"{a[i, j]:.2f}", ha="center", va="center",
                        color="white" if a[i, j] < 0.6 else "black", fontsize=8)
    ax.set_xlabel("evaluation featurizer (psi)")
    ax.set_ylabel("training candidate (phi)")
    ax.set_title("Kernel-ridge alignment R^2")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return save_figure(fig, path)


def _class_ticks(ax, labels: Sequence[str], axis: str) -> None:
    labels = [str(s) for s in labels]
    starts, names = [], []
    for i, s in enumerate(labels):
        if i == 0 or s != labels[i - 1]:
            starts.append(i)
            names.append(s)
    ends = starts[1:] + [len(labels)]
    centres = [(a + b - 1) / 2 for a, b in zip(starts, ends)]
    if axis == "x":
        ax.set_xticks(centres, names, fontsize=7)
        for s in starts[1:]:
            ax.axvline(s - 0.5, color="white", lw=0.5)
    else:
        ax.set_yticks(centres, names, fontsize=7)
        for s in starts[1:]:
            ax.axhline(s - 0.5, color="white", lw=0.5)


def coupling_heatmap(plan, row_labels: Sequence[str], col_labels: Sequence[str], path, *,
                     title: str) -> Path:
    """Sinkhorn plan with rows and columns grouped by class (paper Figure 2)."""
    p = np.asarray(plan, float)
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.imshow(p * p.shape[0], cmap="magma", aspect="auto", interpolation="nearest")
    _class_ticks(ax, row_labels, "y")
    _class_ticks(ax, col_labels, "x")
    ax.set_xlabel("target (by class)")
    ax.set_ylabel("source (by class)")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def class_mass_heatmap(mass, classes: Sequence[str], path, *, title: str) -> Path:
    """Class-to-class coupling mass (K x K)."""
    m = np.asarray(mass, float)
    fig, ax = plt.subplots(figsize=(4.0, 3.6))
    im = ax.imshow(m, cmap="magma", aspect="auto")
    ax.set_xticks(range(len(classes)), [str(c) for c in classes], fontsize=7)
    ax.set_yticks(range(len(classes)), [str(c) for c in classes], fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return save_figure(fig, path)


def spectra_figure(spectra: Mapping[str, Sequence[float]], path) -> Path:
    """Normalised singular-value spectra p_k (log scale), one line per candidate."""
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for name, p in spectra.items():
        p = np.asarray(p, float)
        p = p[p > 0]
        ax.plot(np.arange(1, p.size + 1), p, label=str(name))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("component k")
    ax.set_ylabel("p_k = s_k / sum s")
    ax.set_title("Eigen-spectra (normalised singular values)")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def delta_curves_figure(curves: Mapping[str, Mapping[str, Sequence[float]]], path, *,
                        tau: float) -> Path:
    """Delta_OT(n) per candidate, log-log, with interval bands; ``curves[name]`` has keys
    ``ns``, ``mean``, ``ci_low``, ``ci_high`` and optionally ``slope``."""
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for name, c in curves.items():
        ns = np.asarray(c["ns"], float)
        m = np.asarray(c["mean"], float)
        label = str(name)
        if c.get("slope") is not None and np.isfinite(c["slope"]):
            label += f" (slope {c['slope']:.2f})"
        ax.plot(ns, m, marker="o", label=label)
        ax.fill_between(ns, np.asarray(c["ci_low"], float), np.asarray(c["ci_high"], float),
                        alpha=0.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("minibatch size n")
    ax.set_ylabel(f"Delta_OT (tau={tau:g})")
    ax.set_title("Stability curves: Delta_OT against n")
    ax.legend(fontsize=7)
    return save_figure(fig, path)
