"""Apply the selection rule of studies/PROTOCOL.md to the selection data and their outcomes.

pbmc68k, for each generation space g: the criterion values of the coupling spaces
(``RUN/g/results.json``, `featsel score`) against the mean FD rank of the full PBMC study
(``studies/pbmc/full/g/validation.json``). Each ``--study NAME=FOLDER`` (addendum 2) adds a
`featsel validate` folder: its ``score/results.json`` against its ``validation.json``'s mean FD
rank over the real candidates (or the slim ``score_ranking.json`` committed beside a study's
results). Eligible: the criterion ranks both noise controls below every
real candidate everywhere. Chosen: the eligible criterion with the highest mean Kendall tau over
the data sets, each data set's tau being the mean over its generation spaces (ties: the
registry's order). Without --study this is the rule of the original protocol exactly.
Each ``--values CRITERION=FILE`` (addendum 10) supplies a registered criterion's values that the
committed scores lack (``studies/inversion/results.json``: ``{name: {"validation": path,
"values": {candidate: {"mean": v}}}}``, matched to a study by its validation.json's path); its
controls are the score's, and it is eligible where every control's value is worse than every
real candidate's (the score's own check).

    python studies/selection/choose.py --scores runs/selection --out studies/selection/selection.json
    python studies/selection/choose.py --scores runs/selection --study satimage=runs/satimage/ambient \
        --study digits=runs/digits_study/pixels --out studies/selection/selection_v2.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

from featsel.diagnostics.criteria import CRITERIA

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # studies/summarize.py
from summarize import controls_last, read_values, values_for  # noqa: E402

SPACES = ("ambient", "pca")
STUDY = Path(__file__).resolve().parents[1] / "pbmc" / "full"


def agreement(values: dict[str, float], outcome: dict[str, float], lower: bool) -> dict:
    """Kendall / Spearman between a criterion (oriented so that + = predicted) and the mean FD
    rank (lower = better), over the candidates both have."""
    names = sorted(set(values) & set(outcome))
    v = np.array([values[c] for c in names], float)
    o = np.array([outcome[c] for c in names], float)
    pred = v if lower else -v  # small = predicted good, like a rank
    return {"kendall": float(kendalltau(pred, o).statistic),
            "spearman": float(spearmanr(pred, o).statistic), "n": len(names),
            "values": {c: values[c] for c in names}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scores", required=True, help="folder with <space>/results.json")
    ap.add_argument("--out", required=True, help="selection.json to write")
    ap.add_argument("--study", action="append", default=[], metavar="NAME=FOLDER",
                    help="a featsel validate folder whose data set joins the selection")
    ap.add_argument("--values", action="append", default=[], metavar="CRITERION=FILE",
                    help="a criterion's values for every data set, from a file (addendum 10)")
    args = ap.parse_args()
    extra = read_values(args.values)
    per: dict[str, dict] = {name: {"spaces": {}} for name in CRITERIA}
    # (data set, space key, score results.json, validation.json)
    sources = [("pbmc68k", g, Path(args.scores) / g / "results.json", STUDY / g / "validation.json")
               for g in SPACES]
    for item in args.study:
        name, _, folder = item.partition("=")
        if not name or not folder:
            raise SystemExit(f"--study: expected NAME=FOLDER, got {item!r}")
        # the sweep's own score, or the slim copy committed beside a study (its ranking only)
        score_path = next((p for p in (Path(folder) / "score" / "results.json",
                                       Path(folder) / "score_ranking.json") if p.is_file()),
                          Path(folder) / "score" / "results.json")
        sources.append((name, name, score_path, Path(folder) / "validation.json"))
    datasets: dict[str, list[str]] = {}
    for ds, g, score_path, val_path in sources:
        datasets.setdefault(ds, []).append(g)
        score = json.loads(score_path.read_text())
        val = json.loads(val_path.read_text())
        outcome = {c: float(r) for c, r in val["mean_fd_rank"].items()}
        rk = score["ranking"]
        controls = set(rk["controls"])
        for name, crit in CRITERIA.items():
            vals = {c: d["criteria"][name]["mean"] for c, d in rk["candidates"].items()
                    if name in (d.get("criteria") or {})}
            # from --values: the entry read against this validation.json, if there is one (a
            # score that computed the criterion itself keeps its own values)
            filled = values_for(extra[name], val_path) if name in extra else {}
            vals = filled or vals
            real = {c: v for c, v in vals.items() if c not in controls}
            if len(real) < 2:
                continue
            a = agreement(real, outcome, crit.lower_is_better)
            if filled:
                a["valid"] = controls_last(vals, list(controls), crit.lower_is_better)
            else:
                a["valid"] = bool(rk["validity"].get(name, {}).get("valid", False))
            a["control_values"] = {c: v for c, v in vals.items() if c in controls}
            per[name]["spaces"][g] = a
    n_spaces = sum(len(v) for v in datasets.values())
    for name, d in per.items():
        sp = d["spaces"]
        d["eligible"] = len(sp) == n_spaces and all(s["valid"] for s in sp.values())
        d["per_dataset"] = {ds: float(np.mean([sp[g]["kendall"] for g in gs]))
                            for ds, gs in datasets.items() if all(g in sp for g in gs)}
        d["mean_kendall"] = (float(np.mean(list(d["per_dataset"].values())))
                             if len(sp) == n_spaces else None)
        d["lower_is_better"] = CRITERIA[name].lower_is_better
    order = list(CRITERIA)
    eligible = [n for n in order if per[n]["eligible"] and per[n]["mean_kendall"] is not None
                and np.isfinite(per[n]["mean_kendall"])]
    chosen = (sorted(eligible, key=lambda n: (-per[n]["mean_kendall"], order.index(n)))[0]
              if eligible else None)
    out = {"protocol": "studies/PROTOCOL.md", "selection_data": sorted(datasets),
           "spaces": [g for gs in datasets.values() for g in gs],
           "chosen": chosen, "eligible": eligible, "criteria": per}
    tmp = Path(args.out).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, args.out)
    for n in order:
        d = per[n]
        ks = ", ".join(f"{g} {s['kendall']:+.2f}" for g, s in d["spaces"].items())
        print(f"{n:24s} eligible={d['eligible']!s:5s} mean Kendall "
              f"{d['mean_kendall'] if d['mean_kendall'] is None else round(d['mean_kendall'], 3)}"
              f"  ({ks})")
    print(f"chosen: {chosen}")


if __name__ == "__main__":
    main()
