"""Render a ``featsel select`` result (``selection.json``) as one HTML page.

``render_selection_report(selection, out_dir)`` writes ``out_dir/selection.html`` (atomic) and
the FD-vs-step figure ``out_dir/figures/selection_fd.png`` (embedded as a data URI). It draws
what the selection recorded and computes nothing new; the Jinja2 environment autoescapes, so
every user string (candidate names, paths, settings) is escaped. Keys of ``selection`` used
(all optional except ``rungs``)::

    title, created, chosen, chosen_reason, complete: bool, warnings: [str],
    prior: {"criterion", "order": [candidate], "controls", "valid", "recommended"},
    rung0: {"scored": [candidate], "survivors": [...], "dropped": [{"candidate", "reason"}]},
    rungs: [{"rung", "steps", "from_step", "candidates", "kept", "stopped", "order",
             "candidate_steps", "metrics": [metric], "mean_fd": {candidate: {metric: FD}},
             "mean_rank": {candidate: float}, "collapsed": {candidate: [bool per seed]},
             "time_s"}],
    compute: {"candidate_steps", "full_sweep_candidate_steps", "fraction", "n_candidates",
              "seeds", "budget"},
    settings, timings, executor: {key: value}

The rung diagram is a table: one row per scored candidate (chosen first, then by the rung it
reached and its order there), one column per rung; a cell holds the candidate's mean FD rank and
mean FD per metric at that rung, green when it went on, red where it stopped, grey where it was
not trained; a bar shows how far into the budget it was trained.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

from reports.folders import output_dir, read_result
from reports.html import _fmt, data_uri, jinja_env, write_text_atomic

__all__ = ["diagram_rows", "render_selection_html", "render_selection_report",
           "render_selection_dir"]


def _na(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return _fmt(v)


def diagram_rows(selection: Mapping) -> list[dict]:
    """One row per scored candidate for the rung diagram: ``{"candidate", "prior_rank",
    "chosen", "control", "rung0": {"state": "kept" | "dropped", "reason"}, "cells": [{"state":
    "kept" | "stopped" | "chosen" | "final" | "absent", "mean_rank", "fd": {metric: FD},
    "n_collapsed", "keep_share"}] (one per rung), "steps": last step trained, "bar": percent of the budget}``.
    """
    rungs = list(selection.get("rungs") or [])
    r0 = selection.get("rung0") or {}
    prior = list((selection.get("prior") or {}).get("order") or r0.get("scored") or [])
    controls = set((selection.get("prior") or {}).get("controls") or [])
    chosen = selection.get("chosen")
    names = list(dict.fromkeys(prior + [c for r in rungs for c in r.get("candidates", [])]))
    dropped = {d.get("candidate"): d.get("reason", "") for d in r0.get("dropped") or []}
    budget = (selection.get("compute") or {}).get("budget") or (rungs[-1]["steps"] if rungs
                                                                 else 0)
    rows = []
    for c in names:
        cells, steps, reached = [], 0, 0
        for r in rungs:
            if c not in r.get("candidates", []):
                cells.append({"state": "absent"})
                continue
            reached, steps = int(r["rung"]), int(r["steps"])
            last = r is rungs[-1]
            state = ("chosen" if c == chosen and last else "final" if last
                     else "kept" if c in r.get("kept", []) else "stopped")
            coll = (r.get("collapsed") or {}).get(c) or []
            cells.append({"state": state, "mean_rank": (r.get("mean_rank") or {}).get(c),
                          "fd": (r.get("mean_fd") or {}).get(c) or {},
                          "n_collapsed": sum(bool(x) for x in coll), "n_seeds": len(coll),
                          "keep_share": (r.get("keep_share") or {}).get(c),
                          "order": (r.get("order") or []).index(c) + 1
                          if c in (r.get("order") or []) else None})
        order_last = next((cell["order"] for cell in reversed(cells) if cell.get("order")), 0)
        rows.append({"candidate": c, "chosen": c == chosen, "control": c in controls,
                     "prior_rank": prior.index(c) + 1 if c in prior else None,
                     "rung0": {"state": "dropped" if c in dropped else "kept",
                               "reason": dropped.get(c, "")},
                     "cells": cells, "steps": steps, "reached": reached, "order": order_last,
                     "bar": round(100.0 * steps / budget, 1) if budget else 0.0})
    rows.sort(key=lambda r: (not r["chosen"], -r["reached"], r["order"] or 0,
                             r["prior_rank"] or 1e9))
    return rows


def _fd_figure(selection: Mapping, out_dir: Path) -> Path | None:
    """FD (mean over seeds) against the step, one panel per metric, one line per candidate
    through the rungs it was trained in."""
    from reports.validation_figures import fd_curves_figure

    rungs = list(selection.get("rungs") or [])
    metrics = list(dict.fromkeys(m for r in rungs for m in r.get("metrics") or []))
    if not metrics:
        return None
    curves: dict[str, dict[str, tuple[list, list]]] = {m: {} for m in metrics}
    for r in rungs:
        for c in r.get("candidates", []):
            fd = (r.get("mean_fd") or {}).get(c) or {}
            for m in metrics:
                steps, vals = curves[m].setdefault(c, ([], []))
                steps.append(r["steps"])
                vals.append(fd.get(m))
    return fd_curves_figure(curves, out_dir / "figures" / "selection_fd.png")


def _compute(c: Mapping) -> dict:
    """The compute summary with the fraction as a percentage (1 decimal; None when unknown)."""
    f = c.get("fraction")
    return {**c, "percent": round(100.0 * f, 1) if isinstance(f, int | float) else None} if c else {}


def render_selection_html(selection: Mapping, rows: list[dict], figure: str | None) -> str:
    """The page as a string (autoescaped template ``selection.html``)."""
    env = jinja_env()
    env.filters["na"] = _na
    rungs = list(selection.get("rungs") or [])
    settings = dict(selection.get("settings") or {})
    if selection.get("created"):
        settings = {"created": selection["created"], **settings}
    metrics = list(dict.fromkeys(m for r in rungs for m in r.get("metrics") or []))
    return env.get_template("selection.html").render(
        title=selection.get("title", "featsel select report"),
        chosen=selection.get("chosen"),
        chosen_reason=selection.get("chosen_reason", ""),
        complete=bool(selection.get("complete")),
        warnings=selection.get("warnings") or [],
        prior=selection.get("prior") or {},
        rungs=rungs,
        rows=rows,
        metrics=metrics,
        compute=_compute(selection.get("compute") or {}),
        figure=figure,
        executor=selection.get("executor") or {},
        probe=selection.get("probe_evidence") or {},
        settings={k: (json.dumps(v) if isinstance(v, list | dict) else v)
                  for k, v in settings.items()},
        timings={k: (json.dumps(v) if isinstance(v, list | dict) else v)
                 for k, v in (selection.get("timings") or {}).items()},
    )


def render_selection_report(selection: Mapping, out_dir: str | os.PathLike, *,
                            embed: bool = True) -> Path:
    """Write ``out_dir/selection.html`` (atomic) and its figure; returns the page's path."""
    out_dir = output_dir(selection, "selection", "rungs", "featsel select", out_dir)
    fig = _fd_figure(selection, out_dir)
    src = None
    if fig is not None:
        src = data_uri(fig) if embed else str(fig.relative_to(out_dir))
    return write_text_atomic(out_dir / "selection.html",
                             render_selection_html(selection, diagram_rows(selection), src))


def render_selection_dir(folder: str | os.PathLike) -> Path:
    """`featsel report DIR` for a select folder: re-render ``DIR/selection.html`` from
    ``DIR/selection.json``."""
    return render_selection_report(read_result(folder, "selection.json", "featsel select"),
                                   folder)
