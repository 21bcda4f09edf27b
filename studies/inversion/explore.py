"""The inversion share on every seen data set (exploratory; docs/science.md 5.5b).

For each study: the score's own pool (its settings: data, split, generation space, subsample,
n, seed), the inversion share of its real candidates and controls
(``featsel.diagnostics.inversion``, defaults), and its Kendall tau with the committed trained
outcome (mean FD rank, metric-hacking pairs left out, bootstrap interval over seeds: the
statistics of ``studies/summarize.py``), beside the ranking criterion's from
``studies/summary.json``. Every data set here has been seen: nothing is a test.

Each entry names the outcome it was read against (``validation``: the study's validation.json,
relative to the repository root); `studies/selection/choose.py` and `studies/summarize.py` match
their studies to it by that path (``--values inversion_share=studies/inversion/results.json``).

Usage, from the repository root (the studies' run folders present, e.g. runs/segment/vae):
    python studies/inversion/explore.py [--only NAME ...] --out studies/inversion/results.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # studies/summarize.py: the same outcome statistics

from summarize import fd_per_seed  # noqa: E402

from featsel.confirmation import bootstrap_agreement  # noqa: E402
from featsel.diagnostics.inversion import inversion_share  # noqa: E402
from featsel.features import create_featurizer  # noqa: E402
from featsel.scoring.config import ScoreConfig  # noqa: E402
from featsel.scoring.plan import plan_score  # noqa: E402
from featsel.scoring.progress import Timer  # noqa: E402

ROOT = HERE.parent.parent
# name -> (the score the study ranked by, its validation.json)
STUDIES = {
    "pbmc68k/ambient": ("runs/selection/ambient/results.json",
                        "studies/pbmc/full/ambient/validation.json"),
    "pbmc68k/pca": ("runs/selection/pca/results.json", "studies/pbmc/full/pca/validation.json"),
    **{d: (f"studies/{d}/results/score_ranking.json", f"studies/{d}/results/validation.json")
       for d in ("satimage", "digits", "texture", "penbased", "letter", "segment")},
    # the rebuilt MNIST pipeline (addendum 6): its featurizers are the ones in runs/mnist6
    "mnist": ("studies/mnist/results_5seeds/score_ranking.json",
                        "studies/mnist/results_5seeds/validation.json"),
}


def one(name: str, score_path: Path, val_path: Path) -> dict:
    s = json.loads(score_path.read_text())["settings"]
    val = json.loads(val_path.read_text())
    cfg = ScoreConfig(data=s["data"], split=s["split"], space=s["space"],
                      max_samples=s["max_samples"], n=s["n"], seed=s["seed"], progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = plan_score(cfg, Timer())
    u = plan.u[plan.draw_index]
    lab = plan.labels[plan.draw_index.numpy()] if plan.labels is not None else None
    # the real candidates (satimage also trained a control: it stays a control here)
    real = [c for c in val["settings"]["candidates"] if c not in s["controls"]]
    values, seconds = {}, {}
    for spec in real + list(s["controls"]):
        t = time.perf_counter()
        f = create_featurizer(spec, space=plan.space, fit_data=plan.u)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = inversion_share(f, u, n=plan.n, labels=lab, seed=cfg.seed)
        values[spec] = {"mean": r.mean, "ci_low": r.ci_low, "ci_high": r.ci_high,
                        "final_loss": r.final_loss, "moved": r.moved}
        seconds[spec] = round(time.perf_counter() - t, 1)
        print(f"  {name}: {spec[-40:]}: {r.mean:.3f} (loss {r.final_loss:.1e}, "
              f"{seconds[spec]} s)", flush=True)
    fd, excl = fd_per_seed(val)
    agree = bootstrap_agreement({c: values[c]["mean"] for c in real}, {c: fd[c] for c in real},
                                exclude=excl, lower_is_better=True, n_boot=2000, seed=0)
    worst_real = max(values[c]["mean"] for c in real)
    return {"values": values, "seconds": seconds, "n": plan.n,
            "kendall": agree["kendall"], "ci_low": agree["kendall_ci"][0],
            "ci_high": agree["kendall_ci"][1], "kendall_p": agree["kendall_p"],
            "n_candidates": agree["n"], "n_seeds": min(agree["n_seeds"].values()),
            "controls_last": all(values[c]["mean"] > worst_real for c in s["controls"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="these studies only (names as in STUDIES)")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    summary = json.loads((HERE.parent / "summary.json").read_text())
    out = json.loads(a.out.read_text()) if a.out.is_file() else {}
    for name, (sp, vp) in STUDIES.items():
        if a.only and name not in a.only:
            continue
        res = {"validation": vp, **one(name, ROOT / sp, ROOT / vp)}
        ref = (summary["robustness"].get("mnist_5seeds") if name == "mnist"
               else summary["datasets"].get(name, {}))
        res["null_share_kendall"] = (ref or {}).get("null_share", {}).get("kendall")
        out[name] = res
        print(f"{name}: inversion_share Kendall {res['kendall']:+.2f} "
              f"[{res['ci_low']:+.2f}, {res['ci_high']:+.2f}] p={res['kendall_p']:.2f}; "
              f"null_share {res['null_share_kendall']:+.2f}", flush=True)
        tmp = a.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1) + "\n")
        tmp.replace(a.out)


if __name__ == "__main__":
    main()
