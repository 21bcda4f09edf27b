"""The HTML report from a plain results dict: figures, escaping, and a headless-browser render."""

import shutil
import subprocess
import sys

import numpy as np
import pytest

from reports import build_report, render_html


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


def test_build_report_writes_figures_and_page(tmp_path):
    path = build_report(_results(), tmp_path)
    html = path.read_text()
    figs = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert figs == ["alignment_r2.png", "coupling_identity.png", "coupling_pca.png",
                    "delta_curves.png", "ranking.png", "spectra.png"]
    assert html.count("data:image/png;base64,") == 6
    assert 'id="ranking-table"' in html and "explained identity" in html
    assert "aligned" in html and "digits" in html
    assert not list(tmp_path.glob("*.tmp"))


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


def test_reports_does_not_import_featsel():
    code = ("import sys, reports; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('featsel', 'generation')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_chromium() is None, reason="headless chromium not installed "
                    "(apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    from PIL import Image

    path = build_report(_results(), tmp_path / "out")
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars"]
    url = path.resolve().as_uri()
    subprocess.run([_chromium(), *flags, f"--screenshot={shot}", "--window-size=1200,1600", url],
                   check=True, capture_output=True, timeout=120)
    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.shape[0] > 500 and img.std() > 10, "screenshot is blank"
    assert (img < 128).mean() > 0.01  # text and figures drawn
    dom = subprocess.run([_chromium(), *flags, "--dump-dom", url], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    assert 'id="ranking-table"' in dom
    assert dom.count("<tr") >= 3 and "identity" in dom
