"""Render a ``featsel validate`` result (``validation.json``) as one HTML page.

``render_validation_report(validation, out_dir)`` writes ``out_dir/validation.html`` (atomic)
and the ranking scatter ``out_dir/figures/validation_ranking.png``; figures are embedded as
base64 data URIs (``embed=False``: linked by relative path). The Jinja2 environment autoescapes,
so every user string is escaped. Keys of ``validation`` used (all optional except ``table``)::

    title, verdict, created, predicted_order, outcome_order: [candidate],
    table: [{"candidate", "delta_ot_rank", "delta_ot@<tau>", "mean_fd_rank",
             "<metric>" (mean FD), "hacked[<evaluation>]", ...}],
    fd_metrics: [{"metric", "evaluation", "kind"}],  fd_ranks: {metric: {candidate: rank}},
    fd, cond_fd, ... (one per kind): {candidate: {evaluation: [FD per seed]}},
    mean_fd_rank: {candidate: float},
    correlation: {"spearman", "kendall", "spearman_ci", "kendall_ci", "spearman_p", "n",
                  "n_boot", "level", "n_seeds": {candidate: int}},
    predictors: {diagnostic: {same keys, "lower_is_better"}}, best_predictor, best_predictor_reason,
    repeatability: {"seeds": [k, n - k], "n_splits", "outcome": {"mean_kendall", "min_kendall",
                    "max_kendall"}, "predictors": {name: {"mean_kendall"}}, "candidates"},
    metric_hacking / aligned_not_excluded: [{"candidate", "evaluation", "note"}],
    figures: {candidate: PNG path relative to the validation folder; drawn from the ``.npz``
              of the same name when there is one (``validation_figures.draw_sample_figure``)},
    warnings: [str],
    curves: {candidate: {metric: {"steps": [S], "mean": [S]}}},
    convergence: {"rule", "per_candidate": {candidate: {metric: {"still_improving",
                  "ref_step", "final_step"}}}, "best_runs": {...}},
    collapse: {"space", "rule", "runs": [{"candidate", "seed", "collapsed", "reasons",
               "variance_ratio", "coverage"}], "per_candidate": {candidate: {"n_collapsed",
               "n_runs"}}},
    settings, timings, versions: {key: value};  command: str

The FD metrics (table columns) are read from the data, never from a fixed list: the
``fd_metrics`` list (e.g. ``fd[<space>]`` and ``cond_fd[<space>]`` per space), or in a
validation.json with one FD per space, the keys of ``fd`` (``fd_ranks`` then uses the bare
space name as the metric). The Delta_OT interval and effective rank come from the score results
(``score_table``: the rows of ``featsel score``'s ``ranking.table`` or its results.csv).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from reports.folders import output_dir, read_result
from reports.html import _fmt, _safe_name, data_uri, jinja_env, write_text_atomic

__all__ = ["fd_metrics", "candidate_rows", "render_validation_html", "render_validation_report",
           "render_validation_dir"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _num(v) -> float:
    """A float from JSON/CSV (None, '' and junk -> NaN)."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _na(v) -> str:
    """Like ``fmt`` but missing / NaN values read 'n/a'."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return _fmt(v)


def _ci(v) -> str:
    if not v or len(v) != 2:
        return "n/a"
    return f"[{_na(v[0])}, {_na(v[1])}]"


def fd_metrics(validation: Mapping) -> list[dict]:
    """The FD metrics of ``validation`` in their order (module doc), each as ``{"name"
    (column header), "kind" (``fd`` / ``cond_fd`` / ...: the top-level key holding the
    per-seed values), "evaluation" (the evaluation space), "table_key" (the mean FD's key in a
    ``table`` row), "rank_key" (the key in ``fd_ranks``)}``.

    Read from ``fd_metrics`` (``[{"metric", "evaluation", "kind"}]``) when present; otherwise
    (one FD per space) from the keys of ``fd``, ``fd_ranks`` or the ``fd[...]`` table columns.
    """
    listed = validation.get("fd_metrics")
    if listed:
        out = []
        for m in listed:
            name = str(m["metric"])
            kind = str(m.get("kind") or name.split("[", 1)[0])
            ev = str(m.get("evaluation") or name.partition("[")[2].rstrip("]") or name)
            out.append({"name": name, "kind": kind, "evaluation": ev, "table_key": name,
                        "rank_key": name})
        return out
    seen: dict[str, None] = {}
    for row in (validation.get("fd") or {}).values():
        seen.update(dict.fromkeys(row))
    if not seen:
        seen.update(dict.fromkeys(validation.get("fd_ranks") or {}))
    if not seen:
        for row in validation.get("table", []):
            seen.update(dict.fromkeys(k[3:-1] for k in row if k.startswith("fd[")
                                      and k.endswith("]")))
    return [{"name": f"fd[{e}]", "kind": "fd", "evaluation": e, "table_key": f"fd[{e}]",
             "rank_key": e} for e in seen]


def _delta_key(row: Mapping) -> str | None:
    return next((k for k in row if k.startswith("delta_ot@")), None)


def candidate_rows(validation: Mapping, score_table: Sequence[Mapping] | None = None
                   ) -> list[dict]:
    """One display row per candidate, in the order of ``validation['table']``.

    Each row: ``candidate``, ``delta`` (Delta_OT), ``ci`` ((low, high) or None),
    ``delta_rank``, ``effective_rank``, ``fd``: ``{metric: {"mean", "std", "n", "excluded"}}``
    (``std`` is the sample std over seeds, NaN with one seed), ``mean_fd_rank``,
    ``rank_low`` / ``rank_high`` (min / max of the per-metric ranks) and ``outcome_rank``
    (position in ``outcome_order``, None when every FD was excluded), ``n_collapsed`` /
    ``n_runs`` (from ``collapse.per_candidate``; 0 / None without it), ``n_off_data`` (from
    ``support.per_candidate``; 0 without it).

    A cell is ``excluded`` (left out of that metric's rank: metric hacking) when the table
    says ``hacked[<evaluation>]``, when ``metric_hacking`` lists the (candidate, evaluation)
    pair, or when ``fd_ranks``
    ranks the metric but not this candidate although its FD is finite.
    """
    metrics = fd_metrics(validation)
    ranks = validation.get("fd_ranks") or {}
    flagged = {(str(h.get("candidate")), str(h.get("evaluation"))) for h in
               validation.get("metric_hacking", [])}
    score = {str(r.get("candidate")): r for r in (score_table or [])}
    outcome = list(validation.get("outcome_order") or [])
    mr_all = validation.get("mean_fd_rank") or {}
    collapsed = (validation.get("collapse") or {}).get("per_candidate") or {}
    off_data = (validation.get("support") or {}).get("per_candidate") or {}
    rows = []
    for t in validation["table"]:
        c = str(t["candidate"])
        dk = _delta_key(t)
        s = score.get(c, {})
        lo, hi = _num(s.get("ci_low")), _num(s.get("ci_high"))
        if not str(validation.get("predictor") or "delta_ot").startswith("delta_ot"):
            lo = hi = math.nan  # the score table's interval is its ranking criterion's
        cells = {}
        for m in metrics:
            src = validation.get(m["kind"])
            per_seed = (src[c].get(m["evaluation"]) if isinstance(src, Mapping)
                        and isinstance(src.get(c), Mapping) else None)
            if not isinstance(per_seed, list | tuple):
                per_seed = [] if per_seed is None else [per_seed]
            seeds = np.asarray([_num(v) for v in per_seed], float)
            seeds = seeds[np.isfinite(seeds)]
            mean = float(seeds.mean()) if seeds.size else _num(t.get(m["table_key"]))
            std = float(seeds.std(ddof=1)) if seeds.size > 1 else math.nan
            rk = m["rank_key"]
            excluded = (bool(t.get(f"hacked[{m['evaluation']}]"))
                        or (c, m["evaluation"]) in flagged
                        or (rk in ranks and c not in ranks[rk] and math.isfinite(mean)))
            cells[m["name"]] = {"mean": mean, "std": std, "n": int(seeds.size),
                                "excluded": excluded}
        mine = [_num(ranks[m["rank_key"]][c]) for m in metrics
                if c in ranks.get(m["rank_key"], {})]
        mine = [v for v in mine if math.isfinite(v)]
        rows.append({
            "candidate": c,
            "delta": _num(t.get(dk)) if dk else _num(s.get(_delta_key(s) or "")),
            "ci": (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None,
            "delta_rank": t.get("delta_ot_rank"),
            "effective_rank": _num(s.get("effective_rank", t.get("effective_rank"))),
            "fd": cells,
            "mean_fd_rank": _num(t.get("mean_fd_rank", mr_all.get(c))),
            "rank_low": min(mine) if mine else math.nan,
            "rank_high": max(mine) if mine else math.nan,
            "outcome_rank": outcome.index(c) + 1 if c in outcome else None,
            "n_collapsed": int((collapsed.get(c) or {}).get("n_collapsed") or 0),
            "n_runs": (collapsed.get(c) or {}).get("n_runs"),
            "n_off_data": int((off_data.get(c) or {}).get("n_off_data") or 0),
        })
    return rows


def _tau(validation: Mapping, rows: Sequence[Mapping]) -> float:
    tau = (validation.get("settings") or {}).get("tau")
    if tau is None and validation.get("table"):
        k = _delta_key(validation["table"][0])
        tau = k.split("@", 1)[1] if k else 0.05
    return _num(tau)


def _figure_items(validation: Mapping, rows: Sequence[Mapping], out_dir: Path, base_dir: Path,
                  embed: bool) -> dict[str, list[dict]]:
    """The ranking scatter, the per-candidate sample grids / UMAPs (drawn from the ``.npz`` the
    sweep saved beside each figure path, relative to ``base_dir``; a figure without one is
    shown as it is on disk) and the curves, as ``{section: [{"src", "caption", "missing"}]}``."""
    from reports.validation_figures import ranking_scatter

    def item(path: Path, caption: str) -> dict:
        ok = path.is_file() and path.read_bytes()[:8] == PNG_MAGIC
        if not ok:
            return {"src": None, "caption": caption, "missing": str(path)}
        src = data_uri(path) if embed else Path(os.path.relpath(path, out_dir)).as_posix()
        return {"src": src, "caption": caption, "missing": ""}

    out: dict[str, list[dict]] = {"ranking": [], "samples": [], "curves": []}
    if rows and any(math.isfinite(r["delta"]) and math.isfinite(r["mean_fd_rank"])
                    for r in rows):
        has_ci = all(r["ci"] for r in rows)
        tau = _tau(validation, rows)
        by = str(validation.get("predictor") or "Delta_OT")  # the score's ranking criterion
        p = ranking_scatter(
            [r["candidate"] for r in rows], [r["delta"] for r in rows],
            [r["mean_fd_rank"] for r in rows], out_dir / "figures" / "validation_ranking.png",
            delta_low=[r["ci"][0] for r in rows] if has_ci else None,
            delta_high=[r["ci"][1] for r in rows] if has_ci else None,
            rank_low=[r["rank_low"] for r in rows], rank_high=[r["rank_high"] for r in rows],
            pred_rank=[_num(r["delta_rank"]) for r in rows],
            outcome_rank=[_num(r["outcome_rank"]) for r in rows], tau=tau, predictor=by)
        out["ranking"].append(item(p, "Delta_OT" + (" (95% CI)" if has_ci else "")
                                   + " against the mean FD rank (bars: min to max of the "
                                   f"per-metric ranks); right: the rank predicted by {by} "
                                   "against the outcome rank"))
    for c, rel in (validation.get("figures") or {}).items():
        png = base_dir / str(rel)
        data = png.with_suffix(".npz")  # the figure's data, saved by the sweep
        if data.is_file():
            from reports.validation_figures import draw_sample_figure

            draw_sample_figure(data, png)
        out["samples"].append(item(png, f"{c} (seed 0)"))
    curves = _curve_data(validation)
    if curves:
        from reports.validation_figures import fd_curves_figure

        p = fd_curves_figure(curves["curves"], out_dir / "figures" / "validation_curves.png",
                             flagged=curves["flagged"], last_quarter=curves["last_quarter"])
        out["curves"].append(item(p, "FD against the training step, mean over seeds, one panel "
                                     "per metric (shaded: the last quarter of the budget; "
                                     "dashed: still improving there)"))
    return out


def _curve_data(validation: Mapping) -> dict | None:
    """The stored curves regrouped for ``fd_curves_figure``: ``{"curves": {metric: {candidate:
    (steps, mean)}}, "flagged": [(candidate, metric)], "last_quarter": (ref step, final step)
    or None}``; None when ``validation`` has no curves with more than one step."""
    raw = validation.get("curves") or {}
    if not isinstance(raw, Mapping) or not raw:
        return None
    names = [m["name"] for m in fd_metrics(validation)]
    names += [m for row in raw.values() for m in row if m not in names]
    curves: dict[str, dict] = {}
    for m in dict.fromkeys(names):
        per = {str(c): (row[m].get("steps") or [], row[m].get("mean") or [])
               for c, row in raw.items() if isinstance(row.get(m), Mapping)}
        if per:
            curves[m] = per
    if not any(sum(math.isfinite(_num(v)) for v in fd) > 1
               for per in curves.values() for _, fd in per.values()):
        return None  # one evaluated step per run: nothing to draw
    conv = (validation.get("convergence") or {}).get("per_candidate") or {}
    flagged = [(c, m) for c, row in conv.items() for m, v in row.items()
               if isinstance(v, Mapping) and v.get("still_improving")]
    spans = [(v.get("ref_step"), v.get("final_step")) for row in conv.values()
             for v in row.values() if isinstance(v, Mapping)]
    spans = [s for s in spans if s[0] is not None and s[1] is not None]
    return {"curves": curves, "flagged": flagged, "last_quarter": spans[0] if spans else None}


def render_validation_html(validation: Mapping, rows: Sequence[Mapping],
                           figures: Mapping[str, list[dict]]) -> str:
    """The page as a string (autoescaped template ``validation.html``)."""
    env = jinja_env()
    env.filters["na"] = _na
    env.filters["ci"] = _ci
    corr = dict(validation.get("correlation") or {})
    n_seeds = [int(v) for v in (corr.get("n_seeds") or {}).values() if v is not None]
    corr_seeds = ("n/a" if not n_seeds else str(n_seeds[0]) if min(n_seeds) == max(n_seeds)
                  else f"{min(n_seeds)} to {max(n_seeds)}")
    settings = dict(validation.get("settings") or {})
    if validation.get("created"):
        settings = {"created": validation["created"], **settings}
    return env.get_template("validation.html").render(
        title=validation.get("title", "featsel validate report"),
        verdict=validation.get("verdict", ""),
        predicted_order=validation.get("predicted_order") or [],
        predictor=validation.get("predictor") or "Delta_OT",
        outcome_order=validation.get("outcome_order") or [],
        rows=rows,
        metrics=fd_metrics(validation),
        tau=_tau(validation, rows),
        has_ci=any(r["ci"] for r in rows),
        has_erank=any(math.isfinite(r["effective_rank"]) for r in rows),
        corr=corr,
        corr_real=validation.get("correlation_real") or {},
        corr_seeds=corr_seeds,
        repeat=validation.get("repeatability") or {},
        predictors=validation.get("predictors") or {},
        best=validation.get("best_predictor"),
        best_reason=validation.get("best_predictor_reason", ""),
        hacking=validation.get("metric_hacking") or [],
        warnings=validation.get("warnings") or [],
        collapse=validation.get("collapse") or {},
        support=validation.get("support") or {},
        convergence_rule=(validation.get("convergence") or {}).get("rule", ""),
        eval_steps=validation.get("eval_steps") or [],
        aligned=validation.get("aligned_not_excluded") or [],
        figures=figures,
        command=validation.get("command"),
        settings=settings,
        timings=validation.get("timings") or {},
        versions=validation.get("versions") or {},
    )


def render_validation_report(validation: Mapping, out_dir: str | os.PathLike, *,
                             score_table: Sequence[Mapping] | None = None,
                             base_dir: str | os.PathLike | None = None, embed: bool = True,
                             filename: str = "validation.html") -> Path:
    """Write ``out_dir/filename`` (atomic) and ``out_dir/figures/validation_ranking.png``.

    validation: the dict of ``validation.json``. score_table: score rows with ``candidate``,
    ``ci_low``, ``ci_high``, ``effective_rank`` (optional: without it those columns are left
    out). base_dir: the folder the ``figures`` paths are relative to (default ``out_dir``).
    """
    out_dir = output_dir(validation, "validation", "table", "featsel validate", out_dir)
    rows = candidate_rows(validation, score_table)
    figs = _figure_items(validation, rows, out_dir, Path(base_dir or out_dir), embed)
    return write_text_atomic(out_dir / _safe_name(filename),
                             render_validation_html(validation, rows, figs))


def _score_table(folder: Path, validation: Mapping) -> list[dict] | None:
    """The score rows beside a validation.json: ``<score_dir>/results.json``, else
    ``<score_dir>/results.csv``, else ``score_results.csv`` (a study folder's copy)."""
    sdir = folder / str(validation.get("score_dir") or "score")
    if (sdir / "results.json").is_file():
        try:
            return list(json.loads((sdir / "results.json").read_text())["ranking"]["table"])
        except (ValueError, KeyError, TypeError):
            pass
    for p in (sdir / "results.csv", folder / "score_results.csv"):
        if p.is_file():
            with p.open(newline="", encoding="utf-8") as fh:
                return list(csv.DictReader(fh))
    return None


def render_validation_dir(folder: str | os.PathLike) -> Path:
    """`featsel report DIR` for a validate folder: re-render ``DIR/validation.html`` and its
    figures from ``DIR/validation.json``, the figure data beside it and the score results
    beside it, when present."""
    folder = Path(folder)
    validation = read_result(folder, "validation.json", "featsel validate")
    return render_validation_report(validation, folder,
                                    score_table=_score_table(folder, validation))
