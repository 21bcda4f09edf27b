"""Render a ``featsel score`` results dict as figures and one self-contained HTML page.

``build_report(results, out_dir)`` draws the PNG figures beside the page (``out_dir/figures``)
and embeds them in ``report.html`` as base64 data URIs, so the page can be moved alone. The
Jinja2 environment autoescapes, so every user string (candidate names, paths, settings) is
escaped. Expected keys of ``results`` (all optional except ``ranking``)::

    ranking:     {"tau", "order", "table": [row dicts], "explanations", "flags": [dicts]}
    diagnostics: {candidate: {"rank": {"spectra": {block: [p_k]}, ...},
                              "curve": {"ns", "mean", "ci_low", "ci_high", "slope"},
                              "coupling": {"classes", "class_mass", "same_class_mass",
                                           "chance", "plan", "row_labels", "col_labels"},
                              "alignment": {evaluation: {"r2", ...}}}}
    evaluations: [evaluation featurizer names];  settings: {...};  versions: {...};
    timings: {stage: seconds};  title: str
"""

from __future__ import annotations

import base64
import math
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

import jinja2
import numpy as np
from markupsafe import Markup, escape

from reports import figures as F

__all__ = ["build_figures", "build_report", "class_names", "curve_note", "data_uri",
           "diagnostic_rows", "jinja_env", "render_html", "write_text_atomic"]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def _safe_name(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(s))[:80] or "x"


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        v = float(v)
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}"
    return str(v)


def build_figures(results: Mapping, out_dir: str | os.PathLike) -> dict[str, list[dict]]:
    """Draw every figure the results allow; returns ``{section: [{"path", "caption"}]}``."""
    fig_dir = Path(out_dir) / "figures"
    ranking = results["ranking"]
    tau = float(ranking.get("tau", 0.05))
    table = ranking.get("table", [])
    diags: Mapping = results.get("diagnostics", {})
    out: dict[str, list[dict]] = {"ranking": [], "alignment": [], "couplings": [],
                                  "spectra": [], "curves": []}
    crit = ranking.get("criterion") or f"delta_ot@{tau:g}"
    key = crit if table and crit in table[0] else f"delta_ot@{tau:g}"
    if table and key in table[0]:
        names = [r["candidate"] for r in table]
        label = "Delta_OT" if key.startswith("delta_ot") else key
        p = F.ranking_figure(names, [r[key] for r in table], [r["ci_low"] for r in table],
                             [r["ci_high"] for r in table], fig_dir / "ranking.png", tau=tau,
                             label=label, lower_is_better=ranking.get("lower_is_better", True),
                             controls=[r["candidate"] for r in table if r.get("control")])
        out["ranking"].append({"path": p, "caption": f"{label} with intervals (grey: controls)"})
    order = list(ranking.get("order", list(diags)))
    evals = list(results.get("evaluations", []))
    if evals and any(diags.get(c, {}).get("alignment") for c in order):
        mat = [[(diags.get(c, {}).get("alignment", {}).get(e) or {}).get("r2", float("nan"))
                for e in evals] for c in order]
        p = F.r2_heatmap(mat, order, evals, fig_dir / "alignment_r2.png")
        out["alignment"].append({"path": p, "caption": "Alignment R^2 (rows: candidates, "
                                 "columns: evaluation featurizers)"})
    names = class_names(results)
    cps = {c: diags[c]["coupling"] for c in order if diags.get(c, {}).get("coupling")}
    first = next(iter(cps.values()), {})
    if cps and all(cp.get("plan") is not None and cp.get("row_labels") == first["row_labels"]
                   and cp.get("col_labels") == first["col_labels"] for cp in cps.values()):
        # the same two draws for every candidate (as featsel score makes them): one figure,
        # one colour scale, the class names written once
        subtitles = {c: f"same-class mass {cp['same_class_mass']:.2f} "
                        f"(chance {cp['chance']:.2f})" for c, cp in cps.items()}
        p = F.coupling_grid({c: cp["plan"] for c, cp in cps.items()},
                            [names(v) for v in first["row_labels"]],
                            [names(v) for v in first["col_labels"]],
                            fig_dir / "couplings.png", subtitles=subtitles)
        out["couplings"].append({"path": p, "caption": (
            f"Sinkhorn plans between the same two draws of {len(first['row_labels'])} points, "
            "rows and columns grouped by class; colour: plan mass relative to the independent "
            "coupling (square-root scale)")})
        cps = {}
    for c, cp in cps.items():
        title = (f"{c}: same-class mass {cp['same_class_mass']:.2f} (chance {cp['chance']:.2f})")
        if cp.get("plan") is not None:
            p = F.coupling_heatmap(cp["plan"], [names(v) for v in cp["row_labels"]],
                                   [names(v) for v in cp["col_labels"]],
                                   fig_dir / f"coupling_{_safe_name(c)}.png", title=title)
        else:
            p = F.class_mass_heatmap(cp["class_mass"], [names(v) for v in cp["classes"]],
                                     fig_dir / f"coupling_{_safe_name(c)}.png", title=title)
        out["couplings"].append({"path": p, "caption": title})
    spectra = {}
    for c in order:
        sp = diags.get(c, {}).get("rank", {}).get("spectra", {})
        if sp:
            # the candidate's first block (its main representation) stands for it
            spectra[c] = next(iter(sp.values()))
    if spectra:
        p = F.spectra_figure(spectra, fig_dir / "spectra.png")
        out["spectra"].append({"path": p, "caption": "Normalised singular-value spectra "
                               "(first block of each candidate)"})
    # a curve needs two sizes; with one (small classes) there is no line and no slope
    curves = {c: diags[c]["curve"] for c in order
              if len((diags.get(c, {}).get("curve") or {}).get("ns", [])) >= 2}
    if curves:
        first = next(iter(curves.values()))
        ctau = float(first.get("tau", tau))
        n_rank = (results.get("settings") or {}).get("n")
        # results that record the draws reuse the table's Delta_OT at the ranking's n
        marked = n_rank if first.get("draws") and n_rank in first["ns"] else None
        p = F.delta_curves_figure(curves, fig_dir / "delta_curves.png", tau=ctau,
                                  ranking_n=marked)
        caption = "Delta_OT as a function of n (bands: 95% intervals over the draws)"
        if marked is not None:
            i = first["ns"].index(marked)
            others = sorted({d for j, d in enumerate(first["draws"]) if j != i})
            caption += (f"; at the ranking's n = {marked} (dotted) each point is the table's "
                        f"Delta_OT@{ctau:g} ({first['draws'][i]} draws)"
                        + (f", elsewhere {'/'.join(map(str, others))} draws per point"
                           if others else ""))
        out["curves"].append({"path": p, "caption": caption})
    return out


def class_names(results: Mapping):
    """A function from a label as the diagnostics store it (the class code, e.g. "3") to the
    class name the data manifest gives (settings["classes"]), the label itself without one."""
    names = list((results.get("settings") or {}).get("classes") or [])

    def name(v) -> str:
        s = str(v)
        return names[int(s)] if s.isdigit() and int(s) < len(names) else s
    return name


def curve_note(results: Mapping) -> str:
    """Why a candidate's Delta_OT curve is missing from the figure (one size only), or ""."""
    diags: Mapping = results.get("diagnostics", {})
    single = sorted({int(d["curve"]["ns"][0]) for d in diags.values()
                     if d.get("curve") and len(d["curve"].get("ns", [])) == 1})
    if not single:
        return ""
    return (f"No Delta_OT curve: the classes allow one minibatch size only (n = "
            f"{', '.join(map(str, single))}), and a curve and its slope need two.")


def data_uri(path: str | os.PathLike) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI (the page stays self-contained)."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def jinja_env() -> jinja2.Environment:
    """The shared template environment: autoescaping on, undefined names are errors, and the
    ``fmt`` filter (4 significant digits, ``None`` as empty)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["fmt"] = _fmt
    env.filters["breakable"] = _breakable
    return env


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is meant to be read by others
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# columns of a ranking row that the ranking table shows (with the ranking criterion's value);
# every other one is a row of the transposed diagnostics table
_RANKING_COLUMNS = ("rank", "candidate", "control", "ci_low", "ci_high", "tied_with",
                    "explanation")


def _empty(v) -> bool:
    return v is None or v == "" or (isinstance(v, float) and math.isnan(v))


def diagnostic_rows(table: list[Mapping], key: str, validity: Mapping) -> list[dict]:
    """The diagnostics table, transposed so that its width grows with the candidates, not
    with the (many) diagnostics: ``[{"name", "label", "values": one per candidate}]``. A
    diagnostic no candidate has (e.g. the curve slope from a single n) is left out."""
    names = [c for c in dict.fromkeys(k for r in table for k in r)
             if c not in _RANKING_COLUMNS and c != key]
    rows = []
    for name in names:
        values = [r.get(name) for r in table]
        if all(_empty(v) for v in values):
            continue
        v = validity.get(name) or {}
        better = ("lower" if v.get("lower_is_better") else "higher") if v else ""
        label = ", ".join(x for x in (v.get("label", ""), f"{better} better" if better else "")
                          if x)
        rows.append({"name": name, "label": label, "values": values})
    return rows


def _breakable(s) -> Markup:
    """Escaped text with line-break opportunities after , : / = (featurizer specs and paths
    have no spaces, and a table column must be able to wrap them)."""
    text = str(escape("" if s is None else _fmt(s)))
    return Markup(re.sub(r"([,:/=])", r"\1<wbr>", text))


def render_html(results: Mapping, figures: Mapping[str, list[dict]], *,
                embed: bool = True, base_dir: str | os.PathLike | None = None) -> str:
    """The HTML page as a string (autoescaped Jinja2 template ``report.html``)."""
    env = jinja_env()
    ranking = results["ranking"]
    table = ranking.get("table", [])
    figs = {}
    for section, items in figures.items():
        figs[section] = []
        for it in items:
            src = (data_uri(it["path"]) if embed
                   else os.path.relpath(it["path"], base_dir or Path(it["path"]).parent))
            figs[section].append({"src": src, "caption": it["caption"]})
    recommended = ranking.get("recommended", ranking.get("order", [None])[0]
                              if "recommended" not in ranking else None)
    tau = float(ranking.get("tau", 0.05))
    crit = ranking.get("criterion") or f"delta_ot@{tau:g}"
    key = crit if table and crit in table[0] else f"delta_ot@{tau:g}"
    validity = ranking.get("validity", {})
    if "tied_best" in ranking:
        tied_best, tie_break = ranking["tied_best"], ranking.get("tie_break", "")
    else:  # results from before featsel named the tie: its ranking row still lists it
        rec_row = next((r for r in table if r.get("candidate") == recommended), {})
        tied_best = [t for t in str(rec_row.get("tied_with") or "").split(", ") if t]
        tie_break = ""
    return env.get_template("report.html").render(
        title=results.get("title", "featsel score report"),
        warnings=results.get("warnings", []),
        recommended=recommended,
        criterion=crit,
        criterion_label=(validity.get(crit) or {}).get("label", crit),
        criterion_description=(validity.get(crit) or {}).get("description",
                                                             "OT matching stability"),
        lower_is_better=ranking.get("lower_is_better", True),
        invalid_reason=ranking.get("invalid_reason", ""),
        tied_best=tied_best,
        tied_controls=ranking.get("tied_controls", []),
        tie_break=tie_break,
        caution=ranking.get("caution", ""),
        validity=validity,
        evidence=results.get("evidence") or {},
        tau=tau,
        key=key,
        key_label=(validity.get(crit) or {}).get("label", key) if key == crit else key,
        diagnostics=diagnostic_rows(table, key, validity),
        table=table,
        flag_summary=ranking.get("flag_summary") or {},
        curve_note=curve_note(results),
        explanations=ranking.get("explanations", {}),
        order=ranking.get("order", []),
        flags=ranking.get("flags", []),
        figures=figs,
        settings=results.get("settings", {}),
        versions=results.get("versions", {}),
        timings=results.get("timings", {}),
    )


def build_report(results: Mapping, out_dir: str | os.PathLike, *,
                 filename: str = "report.html") -> Path:
    """Figures into ``out_dir/figures`` and the page ``out_dir/report.html`` (atomic write)."""
    if "ranking" not in results:
        raise ValueError("results: expected a 'ranking' entry (the output of featsel score)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = build_figures(results, out_dir)
    return write_text_atomic(out_dir / filename, render_html(results, figs, embed=True))
