"""The HTML reports (featsel score, featsel validate) from plain dicts: figures, escaping, the
`featsel report` command, and a headless-browser render."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reports import build_report, render_html, render_validation_dir, render_validation_report
from reports.validation_figures import ranking_scatter


def _results(name="pca"):
    rng = np.random.default_rng(0)
    labels = [str(c) for c in np.repeat(np.arange(3), 4)]
    plan = rng.random((12, 12))
    plan /= plan.sum()
    table = []
    for i, c in enumerate([name, "identity"]):
        table.append({"rank": i + 1, "candidate": c, "delta_ot@0.05": 0.2 + 0.3 * i,
                      "ci_low": 0.15 + 0.3 * i, "ci_high": 0.25 + 0.3 * i, "tied_with": "",
                      "effective_rank": 5.0 + i, "explanation": f"explained {c}"})
    diag = {c["candidate"]: {
        "rank": {"spectra": {"b": list(np.sort(rng.random(8))[::-1] / 4)}},
        "curve": {"tau": 0.05, "ns": [8, 16, 32], "mean": [0.5, 0.3, 0.2],
                  "ci_low": [0.4, 0.25, 0.15], "ci_high": [0.6, 0.35, 0.25], "slope": -0.7},
        "coupling": {"classes": ["0", "1", "2"], "class_mass": (np.eye(3) / 3).tolist(),
                     "same_class_mass": 0.9, "chance": 0.33, "plan": plan.tolist(),
                     "row_labels": labels, "col_labels": labels},
        "alignment": {"vae-latent": {"r2": 0.5}, "pca:dim=32": {"r2": 0.95}},
    } for c in table}
    return {
        "title": "test report",
        "ranking": {"tau": 0.05, "order": [r["candidate"] for r in table], "table": table,
                    "explanations": {r["candidate"]: r["explanation"] for r in table},
                    "flags": [{"candidate": name, "evaluation": "pca:dim=32", "r2": 0.95,
                               "reason": "aligned"}]},
        "diagnostics": diag,
        "evaluations": ["vae-latent", "pca:dim=32"],
        "settings": {"data": "digits", "n": 32},
        "versions": {"featsel": "0.1.0"},
        "timings": {"extract": 1.0},
    }


@pytest.fixture
def drawn(monkeypatch):
    """Every figure the reports save, by file name: its visible texts and their smallest font
    size in points, read from the matplotlib figure just before it is written."""
    import matplotlib.text

    from reports import figures, sample_grid, validation_figures

    seen = {}
    save = figures.save_figure

    def record(fig, path, *args, **kwargs):
        texts = [t for t in fig.findobj(matplotlib.text.Text)
                 if t.get_visible() and t.get_text().strip()
                 and (t.axes is None or t.axes.get_visible())]
        seen[Path(path).name] = {"texts": [t.get_text() for t in texts],
                                 "min_font": min(t.get_fontsize() for t in texts)}
        return save(fig, path, *args, **kwargs)

    for mod in (figures, validation_figures, sample_grid):
        monkeypatch.setattr(mod, "save_figure", record)
    return seen


def test_build_report_writes_figures_and_page(tmp_path):
    path = build_report(_results(), tmp_path)
    html = path.read_text()
    figs = sorted(p.name for p in (tmp_path / "figures").iterdir())
    # one coupling figure: both candidates' plans are between the same two draws
    assert figs == ["alignment_r2.png", "couplings.png", "delta_curves.png", "ranking.png",
                    "spectra.png"]
    assert html.count("data:image/png;base64,") == 5
    assert 'id="ranking-table"' in html and "explained identity" in html
    assert "aligned" in html and "digits" in html
    assert not list(tmp_path.glob("*.tmp"))
    # the ranking table holds the ranking; every other diagnostic is a row of the transposed
    # table (its width grows with the candidates, not with the diagnostics)
    ranking = html.split('id="ranking-table"')[1].split("</table>")[0]
    assert "effective_rank" not in ranking and "0.2 " not in ranking
    assert re.search(r"<td>0\.2</td><td>\[0\.15, 0\.25\]</td>", ranking)
    diag = html.split('id="diagnostics"')[1].split("</table>")[0]
    assert re.search(r"effective_rank.*?<td>5</td><td>6</td>", diag, re.S)


def _separate_curves(res, ns):
    for d in res["diagnostics"].values():
        d["curve"] = {"tau": 0.05, "ns": ns, "mean": [0.3] * len(ns), "ci_low": [0.2] * len(ns),
                      "ci_high": [0.4] * len(ns), "slope": None}
    for row in res["ranking"]["table"]:
        row["curve_slope"] = None
    return res


def test_headline_says_tied_and_how_to_break_it(tmp_path):
    res = _results()
    res["ranking"].update(recommended="pca", tied_best=["identity"], tied_controls=[],
                          tie_break="more draws narrow the intervals (rerun with a larger "
                          "--repeats)")
    html = render_html(res, {})
    summary = html.split('id="summary"')[1].split("</p>")[0]
    assert "<strong>tied</strong>" in summary and "identity" in summary
    assert "To break the tie: more draws narrow the intervals" in summary
    assert "Recommended:" not in summary
    res["ranking"].update(tied_best=[], tie_break="")
    summary = render_html(res, {}).split('id="summary"')[1].split("</p>")[0]
    assert "Recommended: <strong>pca</strong>" in summary and "tied" not in summary
    assert 'id="caution"' not in render_html(res, {})
    res["ranking"]["caution"] = "pca has effective rank 1.00 (below 2): <b>x</b>"
    caution = render_html(res, {}).split('id="caution"')[1].split("</p>")[0]
    assert "Caution: pca has effective rank 1.00" in caution and "&lt;b&gt;" in caution


def test_flags_explained_and_conclusions_drawn(tmp_path):
    res = _results()
    res["ranking"]["flag_summary"] = {
        "pairs": 4, "flagged": 3, "same_network": 0, "evaluations_all_flagged": ["pca:dim=32"],
        "candidates_all_flagged": ["identity"], "recommended_flagged": []}
    html = render_html(res, {})
    meaning = html.split('id="flags-meaning"')[1].split("</p>")[0]
    assert "3 of 4" in meaning and "changes nothing in the ranking" in meaning
    concl = html.split('id="flag-conclusions"')[1].split("</ul>")[0]
    assert "FD[pca:dim=32] favours every candidate alike" in concl
    assert "<strong>identity</strong>: every evaluation space" in concl
    # the pairs themselves are one click away
    assert html.index("<details") < html.index('id="flags"')


def test_single_minibatch_size_has_no_curve_and_no_slope_row(tmp_path):
    res = _separate_curves(_results(), [8])
    figs = build_report(res, tmp_path)
    html = figs.read_text()
    assert not (tmp_path / "figures" / "delta_curves.png").exists()
    assert "one minibatch size only (n = 8)" in html
    assert "curve_slope" not in html.split('id="diagnostics"')[1].split("</table>")[0]


def test_coupling_labels_are_class_names(tmp_path, drawn):
    res = _results()
    res["settings"]["classes"] = ["T cell", "B cell", "CD8+/CD45RA+ Naive Cytotoxic"]
    build_report(res, tmp_path)
    texts = drawn["couplings.png"]["texts"]
    assert {"T cell", "B cell", "CD8+/CD45RA+ Naive Cytotoxic"} <= set(texts)
    assert "plan mass / independent coupling" in texts  # the colour bar


def test_user_strings_are_escaped(tmp_path):
    evil = '<script>alert("x")</script>'
    html = render_html(_results(name=evil), {})
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    build_report(_results(name=evil), tmp_path)  # file names from user strings are sanitised
    assert all("<" not in p.name for p in (tmp_path / "figures").iterdir())


def test_missing_ranking_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="ranking"):
        build_report({"settings": {}}, tmp_path)


def test_no_reports_module_imports_featsel_generation_or_umap():
    """reports draws plain results: every module of it imports without featsel, generation
    (they compute) or umap (the embedding is computed by featsel validate and saved)."""
    code = ("import importlib, pkgutil, sys, reports; "
            "[importlib.import_module(f'reports.{m.name}') for m in "
            "pkgutil.iter_modules(reports.__path__)]; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('featsel', 'generation', 'umap')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_reports_does_not_import_featsel():
    code = ("import sys, reports; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('featsel', 'generation')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


LONG = ["random-vit:depth=4,tap_every=2,embed_dim=64,num_heads=4",
        "vae:path=/data/models/a_long_directory_name/checkpoint_final", "pca:dim=16", "identity",
        "noise:dim=1", "noise:dim=765"]
CELLS = ["CD4+/CD25 T Reg", "CD4+/CD45RA+/CD25- Naive T", "CD4+/CD45RO+ Memory",
         "CD8+ Cytotoxic T", "CD8+/CD45RA+ Naive Cytotoxic", "CD14+ Monocyte", "CD19+ B",
         "CD34+", "CD56+ NK", "Dendritic"]


def _long_results():
    """A report as wide as featsel score makes them: long featurizer specs, two controls, every
    criterion's columns, three taus, three evaluation featurizers, ten long class names with
    classes of one or two points in the coupling draws, a tie and many flags."""
    rng = np.random.default_rng(1)
    evals = ["vae-latent", "pca:dim=32", "inception:layer=pool3,resize=299"]
    crits = ["transport_fidelity", "transport_fidelity_tau", "target_stability", "null_share",
             "delta_ot", "effective_rank", "participation_ratio", "same_class_mass"]
    sizes = [1, 2, 1, 6, 8, 60, 50, 2, 10, 60]  # 200 points
    labels = [str(c) for c, k in enumerate(sizes) for _ in range(k)]
    table, diag = [], {}
    for i, c in enumerate(LONG):
        m = 0.5 + 0.1 * i
        row = {"rank": i + 1, "candidate": c, "control": c.startswith("noise"),
               "transport_fidelity": m, "ci_low": m - 0.06, "ci_high": m + 0.06,
               "tied_with": ", ".join(LONG[j] for j in (i - 1, i + 1) if 0 <= j < len(LONG))}
        for k in crits[1:4]:
            row[k], row[f"{k}[all]"] = rng.random(), rng.random()
        row.update({"effective_rank": 100 * rng.random(), "participation_ratio": rng.random(),
                    "same_class_mass": rng.random(), "delta_ot@0.02": rng.random(),
                    "delta_ot@0.05": rng.random(), "delta_ot@0.2": rng.random(),
                    "chance_mass": 0.19, "curve_slope": -rng.random(), "dim": 12352})
        row.update({f"r2[{e}]": rng.random() for e in evals})
        row["explanation"] = f"{c}: " + "a long explanation of its place; " * 6
        table.append(row)
        plan = rng.random((200, 200)) ** 8
        diag[c] = {
            "rank": {"spectra": {"b": list(np.sort(rng.random(60))[::-1] / 30)}},
            "curve": {"tau": 0.05, "ns": [8, 10, 13, 16], "mean": list(0.5 - 0.02 * np.arange(4)),
                      "ci_low": list(0.45 - 0.02 * np.arange(4)),
                      "ci_high": list(0.55 - 0.02 * np.arange(4)), "slope": -0.3,
                      "draws": [3, 3, 3, 8]},
            "coupling": {"classes": [str(k) for k in range(10)], "class_mass": np.eye(10).tolist(),
                         "same_class_mass": 0.68, "chance": 0.19,
                         "plan": (plan / plan.sum()).tolist(), "row_labels": labels,
                         "col_labels": labels},
            "alignment": {e: {"r2": float(rng.random())} for e in evals},
        }
    validity = {k: {"valid": k != "delta_ot", "label": k[:8], "lower_is_better": True,
                    "description": "what it measures, in one sentence of ordinary length",
                    "control_above": [["noise:dim=1", LONG[0]], ["noise:dim=765", LONG[1]]] * 3}
                for k in crits}
    flags = [{"candidate": c, "evaluation": e, "r2": 0.99, "reason": "features predict the "
              "evaluation features (R^2 = 0.990 >= 0.9): this FD is not independent evidence"}
             for c in LONG[:4] for e in evals]
    return {
        "title": "featsel score: pbmc68k (4 candidates + 2 controls)",
        "ranking": {"tau": 0.05, "order": LONG, "table": table, "criterion": "transport_fidelity",
                    "explanations": {r["candidate"]: r["explanation"] for r in table},
                    "flags": flags, "recommended": LONG[0], "tied_best": [LONG[1]],
                    "tied_controls": [], "tie_break": "train them and compare (featsel validate "
                    f"--featurizers {LONG[0]},{LONG[1]})", "validity": validity,
                    "flag_summary": {"pairs": 12, "flagged": 12, "same_network": 0,
                                     "evaluations_all_flagged": evals,
                                     "candidates_all_flagged": LONG[:4],
                                     "recommended_flagged": evals}},
        "diagnostics": diag, "evaluations": evals,
        "settings": {"data": "pbmc68k", "n": 16, "classes": CELLS, "featurizers": LONG[:4],
                     "manifest": "/a/very/long/path/to/the/featsel/checkout/data_manifests/"
                     "pbmc68k.yaml", "generation_space": "ambient"},
        "versions": {"featsel": "0.1.0"}, "timings": {"extract": 1.0},
    }


def test_figures_are_legible(tmp_path, drawn):
    """No figure text under MIN_FONT_PT; long names wrapped, class names written out."""
    from reports.figures import MIN_FONT_PT

    build_report(_long_results(), tmp_path)
    assert set(drawn) == {"ranking.png", "alignment_r2.png", "couplings.png", "spectra.png",
                          "delta_curves.png"}
    small = {name: d["min_font"] for name, d in drawn.items() if d["min_font"] < MIN_FONT_PT}
    assert not small, f"text below {MIN_FONT_PT} pt: {small}"
    assert set(CELLS) <= set(drawn["couplings.png"]["texts"])
    assert "random-vit:depth=4,\ntap_every=2,embed_dim=64,\nnum_heads=4" in drawn[
        "ranking.png"]["texts"]
    assert any("ranking n = 16" in t for t in drawn["delta_curves.png"]["texts"])
    _assert_unscaled(tmp_path / "figures")


def _assert_unscaled(folder):
    """Every PNG no wider than a 1280 px window shows a figure unscaled (without chromium)."""
    from PIL import Image

    from reports.figures import DPI, MAX_WIDTH_IN

    wide = {p.name: Image.open(p).size[0] for p in folder.glob("*.png")
            if Image.open(p).size[0] > MAX_WIDTH_IN * DPI + 2}
    assert not wide, f"figures wider than {MAX_WIDTH_IN * DPI:.0f} px: {wide}"


def test_validation_figures_are_legible(tmp_path, drawn):
    from reports.figures import MIN_FONT_PT
    from reports.validation_figures import fd_curves_figure

    curves = {f"cond_fd[{e}]": {c: ([0, 100, 200], [3.0, 2.0, 1.5]) for c in LONG}
              for e in ("identity", "pca:dim=30", "vae-latent", "inception", "dino")}
    fd_curves_figure(curves, tmp_path / "figures" / "fd_curves.png", flagged=[(LONG[0], "x")],
                     last_quarter=(150, 200))
    ranking_scatter(LONG, np.linspace(0.1, 0.6, 6), np.arange(1.0, 7.0),
                    tmp_path / "figures" / "scatter.png")
    small = {name: d["min_font"] for name, d in drawn.items() if d["min_font"] < MIN_FONT_PT}
    assert not small, f"text below {MIN_FONT_PT} pt: {small}"
    _assert_unscaled(tmp_path / "figures")


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _render_in_chromium(path, tmp_path, height=1600):
    """Headless chromium: (grey screenshot as a float array, the rendered DOM)."""
    from PIL import Image

    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars"]
    url = path.resolve().as_uri()
    subprocess.run([_chromium(), *flags, f"--screenshot={shot}", f"--window-size=1280,{height}",
                    url], check=True, capture_output=True, timeout=120)
    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    dom = subprocess.run([_chromium(), *flags, "--dump-dom", url], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return img, dom


# run in the page once it has loaded: what sticks out of a 1280 px window (the page, an element
# beyond its right edge, a box that scrolls sideways) and each image's natural and shown width
_MEASURE = """<script>
window.addEventListener('load', () => {
  const W = document.documentElement.clientWidth, bad = [];
  if (document.documentElement.scrollWidth > W)
    bad.push('page ' + document.documentElement.scrollWidth + ' > ' + W);
  for (const el of document.querySelectorAll('body *')) {
    const name = el.tagName + (el.id ? '#' + el.id : '');
    if (el.getBoundingClientRect().right > W + 1) bad.push(name + ' ends beyond the window');
    const ox = getComputedStyle(el).overflowX;
    if ((ox === 'auto' || ox === 'scroll') && el.scrollWidth > el.clientWidth + 1)
      bad.push(name + ' scrolls sideways');
  }
  document.body.dataset.overflow = JSON.stringify(bad.slice(0, 20));
  document.body.dataset.images = JSON.stringify(
    [...document.images].map(i => [i.alt, i.naturalWidth, i.clientWidth]));
  document.body.dataset.width = String(W);
});
</script>"""


def _measure_in_chromium(path, tmp_path, width=1280):
    """Open the page in headless chromium at ``width`` px: (overflowing elements, [(image
    caption, natural width, shown width)], the page's width)."""
    import html as html_lib

    page = tmp_path / "measured.html"
    page.write_text(path.read_text().replace("</body>", _MEASURE + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
             f"--window-size={width},1600", "--virtual-time-budget=10000"]
    dom = subprocess.run([_chromium(), *flags, "--dump-dom", page.resolve().as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout

    def attr(name):
        m = re.search(rf'data-{name}="([^"]*)"', dom)
        assert m, f"the measuring script did not run (no data-{name} in the DOM)"
        return json.loads(html_lib.unescape(m.group(1)))

    return attr("overflow"), attr("images"), attr("width")


def _assert_fits(path, tmp_path, n_images):
    overflow, images, width = _measure_in_chromium(path, tmp_path)
    assert width == 1280
    assert not overflow, f"horizontal overflow at 1280 px: {overflow}"
    assert len(images) == n_images
    # every figure shown at its own size: its text stays as large as it was drawn
    shrunk = [(alt[:40], nat, shown) for alt, nat, shown in images if shown < nat - 1]
    assert not shrunk, f"figures scaled down (caption, natural px, shown px): {shrunk}"


needs_chromium = pytest.mark.skipif(_chromium() is None, reason="headless chromium not installed "
                                    "(apt-get install -y chromium)")


@needs_chromium
def test_report_renders_in_headless_chromium(tmp_path):
    path = build_report(_results(), tmp_path / "out")
    img, dom = _render_in_chromium(path, tmp_path)
    assert img.shape[0] > 500 and img.std() > 10, "screenshot is blank"
    assert (img < 128).mean() > 0.01  # text and figures drawn
    assert 'id="ranking-table"' in dom
    assert dom.count("<tr") >= 3 and "identity" in dom


@needs_chromium
def test_report_fits_a_1280px_window(tmp_path):
    """The widest report featsel score makes (long specs, every column, long class names) has
    no horizontal scroll at 1280 px, and no figure is scaled down to fit."""
    path = build_report(_long_results(), tmp_path / "out")
    _assert_fits(path, tmp_path, n_images=5)


# ---- featsel validate: validation.html -------------------------------------------------------

STUDY = Path(__file__).resolve().parents[1] / "studies" / "pbmc"


def _validation(tmp_path, name="identity"):
    """A validation dict with two FD kinds per space (fd, cond_fd); ``name`` trained in the
    'identity' evaluation space (metric hacking) and has a sample figure on disk."""
    from PIL import Image

    cands = [name, "pca:dim=16", "random-projection:dim=8"]
    evals = ["identity", "pca:dim=10"]
    fd = {name: {"identity": [1.0, 2.0, 4.0], "pca:dim=10": [5.0, 6.0, 7.0]},
          "pca:dim=16": {"identity": [3.0, 3.0, 3.0], "pca:dim=10": [2.0, 2.5, 3.0]},
          "random-projection:dim=8": {"identity": [9.0, 8.0, 7.0], "pca:dim=10": [10, 11, 12]}}
    cond = {c: {e: [v + 1 for v in vs] for e, vs in row.items()} for c, row in fd.items()}
    metrics = [{"metric": f"{k}[{e}]", "evaluation": e, "kind": k}
               for e in evals for k in ("fd", "cond_fd")]
    ranks = {}
    for k in ("fd", "cond_fd"):
        ranks[f"{k}[identity]"] = {"pca:dim=16": 1.0, "random-projection:dim=8": 2.0}
        ranks[f"{k}[pca:dim=10]"] = {name: 2.0, "pca:dim=16": 1.0, "random-projection:dim=8": 3.0}
    mean_rank = {name: 2.0, "pca:dim=16": 1.0, "random-projection:dim=8": 2.5}
    table = []
    for i, c in enumerate(cands):
        r = {"candidate": c, "delta_ot_rank": i + 1, "delta_ot@0.05": 0.2 + 0.1 * i,
             "mean_fd_rank": mean_rank[c], "n_seeds": 3}
        for m in metrics:
            src = fd if m["kind"] == "fd" else cond
            r[m["metric"]] = float(np.mean(src[c][m["evaluation"]]))
        for e in evals:
            r[f"hacked[{e}]"] = (c, e) == (name, "identity")
        table.append(r)
    (tmp_path / "figures").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "figures" / "samples_a.png")
    stats = {"spearman": 0.5, "kendall": 1 / 3, "spearman_ci": [-0.5, 1.0],
             "kendall_ci": [-1 / 3, 1.0], "spearman_p": 0.5, "n": 3, "n_boot": 100,
             "level": 0.95, "n_seeds": {c: 3 for c in cands}}
    return {
        "title": "validate test", "created": "2026-01-01 00:00:00",
        "verdict": f"The Delta_OT ranking leaned the right way; first choice {name}.",
        "predicted_order": cands, "outcome_order": ["pca:dim=16", name, cands[2]],
        "table": table, "mean_fd_rank": mean_rank, "fd_metrics": metrics, "fd_ranks": ranks,
        "fd": fd, "cond_fd": cond,
        "metric_hacking": [{"candidate": name, "evaluation": "identity", "note": "trained in"}],
        "aligned_not_excluded": [{"candidate": "pca:dim=16", "evaluation": "pca:dim=10",
                                  "note": "aligned R2"}],
        "correlation": stats,
        "predictors": {"delta_ot@0.05": {**stats, "lower_is_better": True},
                       "effective_rank": {**stats, "spearman": 1.0, "lower_is_better": False}},
        "best_predictor": "effective_rank", "best_predictor_reason": "effective_rank: +1.00",
        "figures": {name: "figures/samples_a.png", "pca:dim=16": "figures/not_there.png"},
        "settings": {"data": "digits", "tau": 0.05, "featurizers": cands},
        "command": f"featsel validate --featurizers {name}", "versions": {"featsel": "0.1.0"},
        "timings": {"jobs_s": 3.0},
    }


_SCORE_TABLE = [{"candidate": c, "ci_low": lo, "ci_high": hi, "effective_rank": er}
                for c, lo, hi, er in (("identity", 0.15, 0.25, 30.0),
                                      ("pca:dim=16", 0.26, 0.34, 12.0),
                                      ("random-projection:dim=8", 0.35, 0.45, 8.0))]


def _rows(html):
    """The candidate rows of validation-table, each as its HTML."""
    return [p.split("</tr>")[0] for p in html.split('<tr class="candidate">')[1:]]


def test_validation_report_table_and_exclusions(tmp_path):
    import statistics

    v = _validation(tmp_path)
    path = render_validation_report(v, tmp_path, score_table=_SCORE_TABLE)
    assert path == tmp_path / "validation.html" and not list(tmp_path.glob("*.tmp"))
    html = path.read_text()
    # the verdict comes first, then the table
    assert html.index('id="verdict"') < html.index('id="validation-table"')
    rows = _rows(html)
    assert len(rows) == 3 and [r.split("</td>")[0][-len(c):] for r, c in
                               zip(rows, v["predicted_order"])] == v["predicted_order"]
    # metric columns in the listed order, both FD kinds per space
    heads = re.findall(r"<th>((?:cond_)?fd\[[^<]*\])</th>", html)
    assert heads == [m["metric"] for m in v["fd_metrics"]]
    # the hacked space's two FDs are marked for 'identity' only
    assert [r.count('class="excluded"') for r in rows] == [2, 0, 0]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", rows[0])
    seeds = v["fd"]["identity"]["identity"]
    want = f"{statistics.mean(seeds):.4g} &plusmn; {statistics.stdev(seeds):.4g} *"
    assert cells[4] == want  # candidate, Delta_OT, its rank, effective rank, fd[identity]
    assert cells[1] == "0.2 [0.15, 0.25]" and cells[3] == "30"
    assert cells[-2:] == ["2", "2"]  # mean FD rank, outcome rank
    # ranked by another criterion, the score table's interval is that criterion's: not shown
    # beside Delta_OT
    other = render_validation_report({**v, "predictor": "transport_fidelity"}, tmp_path / "o",
                                     score_table=_SCORE_TABLE).read_text()
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", _rows(other)[0])
    assert cells[1] == "0.2" and "Predicted order (transport_fidelity)" in other
    # correlation block, best predictor highlighted, flags, settings
    corr = html.split('id="correlation"')[1].split("</table>")[0]
    assert "[-0.5, 1]" in corr and "0.3333" in corr and "95% bootstrap" in corr
    best = re.findall(r'<tr class="best"><td class="name">([^<]*)</td>', html)
    assert best == ["effective_rank (best)"]
    assert "trained in" in html and "aligned R2" in html and "featsel validate --feat" in html
    # ranking scatter drawn and embedded, the sample figure embedded, a missing one noted
    assert (tmp_path / "figures" / "validation_ranking.png").read_bytes()[:4] == b"\x89PNG"
    assert html.count("data:image/png;base64,") == 2
    assert "figure missing" in html and "not_there.png" in html


def test_validation_report_escapes_user_strings(tmp_path):
    evil = '<script>alert("x")</script>'
    v = _validation(tmp_path, name=evil)
    html = render_validation_report(v, tmp_path / "out", base_dir=tmp_path).read_text()
    assert "<script" not in html
    assert html.count("&lt;script&gt;") >= 5  # table, verdict, orders, flags, settings, command
    assert len(_rows(html)) == 3 and _rows(html)[0].count('class="excluded"') == 2
    assert html.count("data:image/png;base64,") == 2  # figure paths resolved against base_dir


def test_validation_report_bad_input(tmp_path):
    with pytest.raises(ValueError, match="validation"):
        render_validation_report({"verdict": "x"}, tmp_path)
    with pytest.raises(FileNotFoundError, match="validation.json"):
        render_validation_dir(tmp_path)
    with pytest.raises(ValueError, match="one value per name"):
        ranking_scatter(["a", "b"], [0.1], [1.0, 2.0], tmp_path / "x.png")


def test_featsel_report_renders_the_committed_pbmc_validation(tmp_path, capsys):
    from featsel.cli import main

    d = tmp_path / "pbmc"
    shutil.copytree(STUDY, d)
    v = json.loads((d / "validation.json").read_text())
    assert main(["report", str(d)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {d / 'validation.html'}"
    html = (d / "validation.html").read_text()
    rows = _rows(html)
    assert len(rows) == len(v["table"]) == 4
    # one FD per space in this (older) file: the marked cells are the metric_hacking pairs
    marked = {(r.split("</td>")[0].split(">")[-1], i) for r in rows
              for i, cell in enumerate(re.findall(r"<td([^>]*)>", r)) if "excluded" in cell}
    evals = v["settings"]["evaluations"]
    assert {(c, evals[i - 4]) for c, i in marked} == {
        (h["candidate"], h["evaluation"]) for h in v["metric_hacking"]}
    assert "0.5945 [0.532, 0.6607]" in rows[0]  # Delta_OT CI from score_results.csv
    assert html.count("data:image/png;base64,") == 1 + len(v["figures"])
    assert html.count('<tr class="best">') == 1 and v["verdict"][:40] in html


@needs_chromium
def test_validation_report_renders_in_headless_chromium(tmp_path):
    path = render_validation_report(_validation(tmp_path), tmp_path, score_table=_SCORE_TABLE)
    img, dom = _render_in_chromium(path, tmp_path)
    assert img.shape[0] > 500 and img.std() > 10, "screenshot is blank"
    assert (img < 128).mean() > 0.01  # text and figures drawn
    assert 'id="validation-table"' in dom and dom.count('<tr class="candidate">') == 3
    assert 'id="verdict"' in dom and "random-projection:dim=8" in dom
    _assert_fits(path, tmp_path, n_images=2)


# ---- featsel sample: the labelled grid -------------------------------------------------------

def test_sample_grid_is_labelled_and_readable(tmp_path, drawn):
    """One row per class (its name), one block per alpha (headed by it), 8x8 images drawn at
    least MIN_CELL_IN wide."""
    from PIL import Image

    from generation.sample import class_label
    from reports.figures import DPI, MIN_FONT_PT
    from reports.sample_grid import MIN_CELL_IN, sample_grid_figure

    imgs = np.random.default_rng(0).random((3, 2, 4, 8, 8))
    rows = [class_label(c, ["0", "cat", "golden retriever with a long name"]) for c in range(3)]
    assert rows == ["0", "1: cat", "2: golden retriever with a long name"]
    path = sample_grid_figure(imgs, rows, [1.0, 2.5], tmp_path / "grid.png", title="run: step 3")
    texts = drawn["grid.png"]["texts"]
    assert {"0", "1: cat", "alpha = 1", "alpha = 2.5", "run: step 3"} <= set(texts)
    assert "2: golden retriever\nwith a long name" in texts
    assert drawn["grid.png"]["min_font"] >= MIN_FONT_PT
    w, h = Image.open(path).size
    assert w >= 8 * MIN_CELL_IN * DPI and h >= 3 * MIN_CELL_IN * DPI  # 8 columns, 3 rows
    rgb = sample_grid_figure(np.zeros((1, 1, 2, 8, 8, 3)), ["a"], [1.0], tmp_path / "rgb.png")
    assert Image.open(rgb).mode in ("RGB", "RGBA")
    with pytest.raises(ValueError, match="classes / alphas"):
        sample_grid_figure(imgs, rows[:2], [1.0, 2.5], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="images"):
        sample_grid_figure(np.zeros((2, 8, 8)), ["a", "b"], [1.0], tmp_path / "bad.png")
