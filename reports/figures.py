"""Matplotlib figures from plain data (lists, dicts, arrays). Each function writes one PNG
atomically and returns its path. Uses the non-interactive Agg backend.

Legibility rules (the report test holds them): no text below ``MIN_FONT_PT`` points; figures at
``DPI`` no wider than ``MAX_WIDTH_IN`` inches, so a 1280 px window shows them unscaled (1200 px
inside a figure's box) and a point stays DPI / 72 screen pixels; featurizer names are wrapped at
their punctuation (``label``) instead of squeezing the axes; legends sit outside the axes.
"""

from __future__ import annotations

import os
import re
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

DPI = 110
MIN_FONT_PT = 8.0
MAX_WIDTH_IN = 10.8  # 1188 px at DPI: a 1280 px window leaves 1200 px inside a figure's box

__all__ = [
    "DPI",
    "MAX_WIDTH_IN",
    "MIN_FONT_PT",
    "wrap_label",
    "save_figure",
    "ranking_figure",
    "r2_heatmap",
    "coupling_heatmap",
    "coupling_grid",
    "class_mass_heatmap",
    "spectra_figure",
    "delta_curves_figure",
]


def save_figure(fig, path: str | os.PathLike, dpi: int = DPI) -> Path:
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


def wrap_label(name: str, width: int = 26, lines: int = 3) -> str:
    """A featurizer spec or class name as an axis label: wrapped after its punctuation
    (``random-vit:depth=4,|tap_every=2,...``) into at most ``lines`` lines of about ``width``
    characters, the rest elided (one line: elided in the middle, where names that share a
    prefix or a suffix still differ); ``$`` escaped (matplotlib would start mathtext)."""
    text = str(name).replace("$", r"\$")
    if len(text) <= width:
        return text
    if lines == 1:
        return text[: width // 2 - 1] + "\u2026" + text[-(width - width // 2):]
    # break opportunities after , : / and before spaces; textwrap then fills the lines
    parts = re.sub(r"([,:/])", "\\1\u200b", text).replace(" ", "\u200b ").split("\u200b")
    out: list[str] = []
    for part in parts:
        if out and len(out[-1]) + len(part) <= width:
            out[-1] += part
        else:
            out.extend(textwrap.wrap(part, width, break_on_hyphens=False) or [part])
    out = [ln.strip() for ln in out]
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1][: width - 1] + "\u2026"
    return "\n".join(out)


def _legend_outside(ax, **kw) -> None:
    """The legend right of the axes, so it never covers data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
              fontsize=MIN_FONT_PT + 1, **kw)


def ranking_figure(names: Sequence[str], mean: Sequence[float], low: Sequence[float],
                   high: Sequence[float], path, *, tau: float, label: str = "Delta_OT",
                   lower_is_better: bool = True, controls: Sequence[str] = ()) -> Path:
    """Horizontal bars of the ranking criterion per candidate (ranked order) with interval
    whiskers; controls in grey."""
    n = len(names)
    ticks = [wrap_label(str(s)) for s in names]
    rows = sum(max(1, t.count("\n") + 1) for t in ticks) / max(n, 1)
    fig, ax = plt.subplots(figsize=(7.0, (0.3 + 0.2 * rows) * n + 1.3))
    y = np.arange(n)[::-1]
    m = np.asarray(mean, float)
    err = np.vstack([m - np.asarray(low, float), np.asarray(high, float) - m]).clip(min=0)
    colors = ["#bbbbbb" if s in set(controls) else "#4c72b0" for s in names]
    ax.barh(y, m, xerr=err, color=colors, capsize=3)
    ax.set_yticks(y, ticks, fontsize=MIN_FONT_PT + 1)
    better = "lower" if lower_is_better else "higher"
    where = f" at tau={tau:g}" if label == "Delta_OT" else ""
    ax.set_xlabel(f"{label}{where} ({better} is better)")
    ax.set_title(f"Candidates ranked by {label}")
    return save_figure(fig, path)


def r2_heatmap(matrix, rows: Sequence[str], cols: Sequence[str], path) -> Path:
    """Alignment R^2, candidates (rows) x evaluation featurizers (cols) (paper Figure 3)."""
    a = np.asarray(matrix, float)
    fig, ax = plt.subplots(figsize=(min(1.1 * len(cols) + 3.0, MAX_WIDTH_IN - 2.5),
                                    0.55 * len(rows) + 1.8))
    im = ax.imshow(a, vmin=min(0.0, float(np.nanmin(a))) if a.size else 0.0, vmax=1.0,
                   cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cols)), [wrap_label(c, 20) for c in cols], rotation=30, ha="right",
                  fontsize=MIN_FONT_PT + 1)
    ax.set_yticks(range(len(rows)), [wrap_label(r) for r in rows], fontsize=MIN_FONT_PT + 1)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            if np.isfinite(a[i, j]):
                ax.text(j, i, f"{a[i, j]:.2f}", ha="center", va="center",
                        color="white" if a[i, j] < 0.6 else "black", fontsize=MIN_FONT_PT + 1)
    ax.set_xlabel("evaluation featurizer (psi)")
    ax.set_ylabel("training candidate (phi)")
    ax.set_title("Kernel-ridge alignment R^2")
    fig.colorbar(im, ax=ax, shrink=0.8, label="R^2")
    return save_figure(fig, path)


def _groups(labels: Sequence[str]) -> tuple[list[str], list[int], list[float]]:
    """Runs of equal labels: (names, start indices, centres)."""
    labels = [str(s) for s in labels]
    starts = [i for i, s in enumerate(labels) if i == 0 or s != labels[i - 1]]
    ends = starts[1:] + [len(labels)]
    return [labels[i] for i in starts], starts, [(a + b - 1) / 2 for a, b in zip(starts, ends)]


def _text_width_in(names: Sequence[str], fontsize: float) -> float:
    """About how wide the longest of ``names`` is as a one-line label (DejaVu Sans averages
    0.6 em per character), in inches."""
    longest = max((len(wrap_label(s, 28, lines=1)) for s in names), default=0)
    return longest * 0.6 * fontsize / 72


def _spread(centres: Sequence[float], gap: float, lo: float, hi: float) -> list[float]:
    """Label positions as near their centres as a minimum spacing ``gap`` allows, in [lo, hi]:
    small classes sit close together and their names would overlap."""
    p = [float(c) for c in centres]
    for i in range(1, len(p)):
        p[i] = max(p[i], p[i - 1] + gap)
    if p and p[-1] > hi:
        p[-1] = hi
        for i in range(len(p) - 2, -1, -1):
            p[i] = min(p[i], p[i + 1] - gap)
    if p and p[0] < lo:  # not room for all at this spacing: spread evenly
        p = list(np.linspace(lo, hi, len(p))) if len(p) > 1 else [(lo + hi) / 2]
    return p


def _class_ticks(ax, labels: Sequence[str], axis: str, fontsize: float) -> None:
    """Class names at the centres of their runs of rows/columns, spread apart where classes
    are small, with a thin leader line from each name to its class; white lines between
    classes."""
    names, starts, centres = _groups(labels)
    total = len(labels)
    fig = ax.figure
    box = ax.get_position()
    extent_pt = (box.height * fig.get_figheight() if axis == "y"
                 else box.width * fig.get_figwidth()) * 72
    gap = 1.3 * fontsize * total / extent_pt  # one line of text, in rows
    pos = _spread(centres, gap, -0.5 + gap / 2, total - 0.5 - gap / 2)
    lead_pt = 10.0 if any(abs(a - b) > 1e-9 for a, b in zip(pos, centres)) else 3.0
    names = [wrap_label(s, 28, lines=1) for s in names]
    if axis == "y":
        ax.set_yticks(pos, names, fontsize=fontsize)
        ax.tick_params(axis="y", length=0, pad=lead_pt + 2)
        frac = lead_pt / (box.width * fig.get_figwidth() * 72)
        tr = blended_transform_factory(ax.transAxes, ax.transData)
        for c, p in zip(centres, pos):
            ax.plot([0, -frac], [c, p], transform=tr, clip_on=False, color="0.35", lw=0.6)
        for s in starts[1:]:
            ax.axhline(s - 0.5, color="white", lw=0.5)
    else:
        # one line of text per class along x too: vertical unless every name is short
        ax.set_xticks(pos, names, fontsize=fontsize,
                      rotation=90 if max(map(len, names)) > 2 else 0)
        ax.tick_params(axis="x", length=0, pad=lead_pt + 2)
        frac = lead_pt / (box.height * fig.get_figheight() * 72)
        tr = blended_transform_factory(ax.transData, ax.transAxes)
        for c, p in zip(centres, pos):
            ax.plot([c, p], [0, -frac], transform=tr, clip_on=False, color="0.35", lw=0.6)
        for s in starts[1:]:
            ax.axvline(s - 0.5, color="white", lw=0.5)


def coupling_heatmap(plan, row_labels: Sequence[str], col_labels: Sequence[str], path, *,
                     title: str) -> Path:
    """Sinkhorn plan with rows and columns grouped by class (paper Figure 2), a colour bar in
    units of the independent coupling (1 = every target equally likely), square-root scale."""
    p = np.asarray(plan, float)
    k = max(len(_groups(row_labels)[0]), len(_groups(col_labels)[0]))
    side = max(3.6, 0.17 * k + 1.2)  # room for one line of text per class
    fig, ax = plt.subplots(figsize=(side + 2.4, side + 0.9))
    im = ax.imshow(p * p.size, cmap="magma", aspect="auto", interpolation="nearest",
                   norm=matplotlib.colors.PowerNorm(0.5, vmin=0.0))
    fig.colorbar(im, ax=ax, shrink=0.8, label="plan mass / independent coupling")
    _class_ticks(ax, row_labels, "y", MIN_FONT_PT + 0.5)
    _class_ticks(ax, col_labels, "x", MIN_FONT_PT + 0.5)
    ax.set_xlabel("target (by class)")
    ax.set_ylabel("source (by class)")
    ax.set_title(textwrap.fill(title.replace("$", r"\$"), 46), fontsize=MIN_FONT_PT + 1)
    return save_figure(fig, path)


def coupling_grid(plans: Mapping[str, object], row_labels: Sequence[str],
                  col_labels: Sequence[str], path, *,
                  subtitles: Mapping[str, str] | None = None) -> Path:
    """Sinkhorn plans of several candidates between the same two draws (paper Figure 2), one
    panel each, rows and columns grouped by class, one colour scale: plan mass relative to the
    independent coupling (1 = every target equally likely). Class names are written once, left
    of the first column and under the lowest panel of each column. subtitles: a line under each
    candidate's name (e.g. its same-class mass)."""
    names = list(plans)
    if not names:
        raise ValueError("plans: expected at least one candidate")
    k = len(names)
    ncols = min(k, 2 if k <= 4 else 3)
    nrows = -(-k // ncols)
    n_cls = max(len(_groups(row_labels)[0]), len(_groups(col_labels)[0]))
    side = max(2.6 if ncols == 3 else 3.0, 0.15 * n_cls + 0.8)  # a text line per class
    # the class names left of the panels take their length in text: the panels get the rest
    label_in = _text_width_in(_groups(row_labels)[0], MIN_FONT_PT + 0.5) + 0.3
    side = min(side, (MAX_WIDTH_IN - 1.0 - label_in) / ncols - 0.3)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * (side + 0.3) + 1.0,
                                                    nrows * (side + 0.8)), squeeze=False)
    fig.subplots_adjust(left=0.02, right=0.9, bottom=0.02, top=0.95, wspace=0.1, hspace=0.3)
    scaled = {c: np.asarray(plans[c], float) * np.asarray(plans[c], float).size for c in names}
    vmax = max(float(v.max()) for v in scaled.values()) or 1.0
    # a square-root scale: a plan's mass sits on a few targets per row, and a linear scale
    # leaves every other cell black
    norm = matplotlib.colors.PowerNorm(0.5, vmin=0.0, vmax=vmax)
    im = None
    for i, c in enumerate(names):
        ax = axes.flat[i]
        im = ax.imshow(scaled[c], cmap="magma", norm=norm, aspect="auto",
                       interpolation="nearest")
        sub = (subtitles or {}).get(c)
        ax.set_title(wrap_label(c, 34, lines=2) + (f"\n{sub}" if sub else ""),
                     fontsize=MIN_FONT_PT + 1)
    for ax in list(axes.flat)[k:]:
        ax.set_visible(False)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.7, fraction=0.04, pad=0.03,
                 label="plan mass / independent coupling")
    for i in range(k):  # after the colour bar: the ticks are placed from the axes' sizes
        ax, col = axes.flat[i], i % ncols
        if col == 0:
            _class_ticks(ax, row_labels, "y", MIN_FONT_PT + 0.5)
            ax.set_ylabel("source (by class)")
        else:
            ax.set_yticks([])
        if i + ncols >= k:  # nothing below this panel
            _class_ticks(ax, col_labels, "x", MIN_FONT_PT + 0.5)
            ax.set_xlabel("target (by class)")
        else:
            ax.set_xticks([])
            for s in _groups(col_labels)[1][1:]:
                ax.axvline(s - 0.5, color="white", lw=0.5)
        if col:
            for s in _groups(row_labels)[1][1:]:
                ax.axhline(s - 0.5, color="white", lw=0.5)
    return save_figure(fig, path)


def class_mass_heatmap(mass, classes: Sequence[str], path, *, title: str) -> Path:
    """Class-to-class coupling mass (K x K)."""
    m = np.asarray(mass, float)
    k = len(classes)
    side = max(3.6, 0.2 * k + 1.2)
    fig, ax = plt.subplots(figsize=(side + 2.4, side + 0.9))
    im = ax.imshow(m, cmap="magma", aspect="auto")
    names = [wrap_label(c, 28, lines=1) for c in classes]
    ax.set_xticks(range(k), names, fontsize=MIN_FONT_PT + 0.5, rotation=90)
    ax.set_yticks(range(k), names, fontsize=MIN_FONT_PT + 0.5)
    ax.set_xlabel("target class")
    ax.set_ylabel("source class")
    ax.set_title(textwrap.fill(title.replace("$", r"\$"), 46), fontsize=MIN_FONT_PT + 1)
    fig.colorbar(im, ax=ax, shrink=0.8, label="coupling mass")
    return save_figure(fig, path)


def spectra_figure(spectra: Mapping[str, Sequence[float]], path) -> Path:
    """Normalised singular-value spectra p_k (log scale), one line per candidate."""
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for name, p in spectra.items():
        p = np.asarray(p, float)
        # below 1e-10 of the largest: round-off of a rank-deficient cloud (fewer samples than
        # dimensions), which stretched the axis down to 1e-17 and flattened the real spectrum
        p = p[p > (p.max() if p.size else 0.0) * 1e-10]
        # a one-component spectrum (1-d blocks) is a single point: a line would not show it
        ax.plot(np.arange(1, p.size + 1), p, label=wrap_label(name),
                marker="o" if p.size < 3 else None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("component k")
    ax.set_ylabel("p_k = s_k / sum s")
    ax.set_title("Eigen-spectra (normalised singular values)")
    _legend_outside(ax)
    return save_figure(fig, path)


def delta_curves_figure(curves: Mapping[str, Mapping[str, Sequence[float]]], path, *,
                        tau: float, ranking_n: int | None = None) -> Path:
    """Delta_OT(n) per candidate, log-log, with interval bands; ``curves[name]`` has keys
    ``ns``, ``mean``, ``ci_low``, ``ci_high`` and optionally ``slope``. ranking_n: the n of the
    ranking table, marked (the curves' points there are the table's values)."""
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for name, c in curves.items():
        ns = np.asarray(c["ns"], float)
        m = np.asarray(c["mean"], float)
        text = wrap_label(name)
        if c.get("slope") is not None and np.isfinite(c["slope"]):
            text += f"\n(slope {c['slope']:.2f})"
        ax.plot(ns, m, marker="o", label=text)
        ax.fill_between(ns, np.asarray(c["ci_low"], float), np.asarray(c["ci_high"], float),
                        alpha=0.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    # the sizes measured as the ticks (a log axis alone labels only the powers of ten)
    ticks = sorted({int(v) for c in curves.values() for v in c["ns"]})
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xticks(ticks, [str(t) for t in ticks])
    if ranking_n is not None:
        ax.axvline(ranking_n, color="0.5", ls=":", lw=1)
        ax.annotate(f"ranking n = {ranking_n}\n(table values)", (ranking_n, 1.0),
                    xycoords=("data", "axes fraction"), xytext=(-4, -4),
                    textcoords="offset points", ha="right", va="top", fontsize=MIN_FONT_PT,
                    color="0.3")
    ax.set_xlabel("minibatch size n")
    ax.set_ylabel(f"Delta_OT (tau={tau:g})")
    ax.set_title("Stability curves: Delta_OT against n")
    _legend_outside(ax)
    return save_figure(fig, path)
