"""How well does the trained outcome agree with itself? The yardstick for every criterion.

Issue 11 asks a criterion to reach Kendall 0.6 with the mean FD rank on every data set. The
outcome is itself an estimate: five (MNIST and digits: three) seeds per candidate, and on some
data sets the candidates differ by less than the seeds do. This script measures, on every study
with a full sweep, what training every candidate *in full* on some seeds predicts about the
others (``featsel.confirmation.seed_split_agreement``): with n seeds, every set A of k = n // 2
seeds against the other n - k (5 seeds: 10 splits of 2 against 3; 3 seeds: 3 splits of 1
against 2), Kendall's tau between the two halves' mean FD ranks (paper Table 4, the sweep's
metric-hacking pairs left out, over the real candidates), averaged over the splits. Beside it,
against the same held n - k seeds:

- the training-free criteria (``CRITERIA_SHOWN``: the default and the previous one), as
  ``studies/summarize.py`` reads them (inversion_share from ``studies/inversion/results.json``
  where the committed scores lack it);
- the probe (`featsel select`'s first rung on the k seeds, ``studies/probe.py``'s ``disjoint``
  reading, which uses the same splits; checked);
- how sure select's first cut was (``rung1_best_share``, ``rung1_closest``): the share of seed
  resamples in which rung 1 would have kept the sweep's best candidate
  (``featsel.halving.keep_shares``, as `featsel select` now records it), and the stopped
  candidate kept most often;
- the first rung against itself (``probe_self``): its FDs read as an outcome (mean over k seeds
  against the other n - k, Table 4 ranks), so that a probe that misses can be told apart from a
  probe that is noisy: an early order that is repeatable and still differs from the final one
  is a late change, not seed luck.

The outcome's self-agreement is a yardstick, not a ceiling: a criterion without noise could
agree with the held half better than another noisy half does, and the full n-seed outcome,
averaging more seeds, agrees with its expectation better than either half. But a criterion that
reaches it predicts the held seeds as well as training every candidate in full on k seeds would,
and on a data set whose halves agree at 0.3 a reading of 0.6 against the n-seed outcome cannot
be told from luck. Read after every outcome was known: it changes no criterion and no decision.

    python studies/reliability.py [--out studies/reliability/results.json] \
        [--md studies/reliability/table.md] [--selection runs/selection]

(``--selection``: pbmc68k's scores per generation space, ``bash studies/selection/run.sh``;
without it the two pbmc68k rows are left out.)
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from featsel import defaults as D
from featsel.confirmation import (
    REPEATABILITY_BAR,
    mean_fd_over_seeds,
    mean_fd_rank_excluding,
    seed_split_agreement,
)
from featsel.diagnostics.criteria import CRITERIA
from featsel.halving import keep_shares

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe import STUDIES as PROBED  # noqa: E402  (sibling scripts)
from probe import aligned  # noqa: E402
from summarize import pbmc_inputs, read_values, study_inputs  # noqa: E402

HERE = Path(__file__).resolve().parent
# (name in studies/summary.json, sweep folder under studies/, role): every study with a sweep
STUDIES = [
    ("pbmc68k/ambient", None, "selection"),
    ("pbmc68k/pca", None, "selection"),
    ("satimage", "satimage/results", "selection"),
    ("digits", "digits/results", "selection"),
    ("texture", "texture/results", "held out"),
    ("mnist", "mnist/results", "held out"),
    ("penbased", "penbased/results", "held out"),
    ("letter", "letter/results", "held out"),
    ("segment", "segment/results", "held out"),
    ("vehicle", "vehicle/results", "held out"),
    ("indian_pines", "indian_pines/results", "held out"),
    ("magic", "magic/results", "held out"),
    ("phoneme", "phoneme/results", "held out"),
    ("ring", "ring/results", "held out"),
    ("twonorm", "twonorm/results", "test"),
    ("marketing", "marketing/results", "test"),
    ("mnist_5seeds", "mnist/results_5seeds", "robustness (MNIST again, 5 seeds)"),
]
CRITERIA_SHOWN = ("inversion_share", "null_share")


def one(vals: dict, fd: dict, excl: set, cands: list[str], probe: dict | None,
        rung: dict | None = None, n_boot: int = D.SELECT_KEEP_BOOT) -> dict:
    """The yardstick and the predictors on one sweep's real candidates ``cands``; ``probe``:
    the study's entry of studies/probe.py's results, ``rung``: ``probe.aligned``'s reading of
    its selection (both or neither)."""
    preds = {n: (vals[n], CRITERIA[n].lower_is_better) for n in CRITERIA_SHOWN
             if all(vals.get(n, {}).get(c) is not None for c in cands)}
    r = seed_split_agreement({c: fd[c] for c in cands}, exclude=excl, predictors=preds)
    if r is None:
        raise SystemExit("a sweep with one seed has no halves")
    out = {"n_candidates": len(cands), "seeds": r["seeds"], "n_splits": r["n_splits"],
           "outcome": r["outcome"]["mean_kendall"], "outcome_min": r["outcome"]["min_kendall"],
           "outcome_max": r["outcome"]["max_kendall"],
           **{n: r["predictors"][n]["mean_kendall"] for n in preds}}
    if probe is not None:
        d = probe["disjoint"]
        k, n = r["seeds"][0], sum(r["seeds"])
        if [s["probe_seeds"] for s in d["splits"]] != [list(a) for a in
                                                      itertools.combinations(range(n), k)]:
            raise SystemExit("studies/probe/results.json's disjoint splits are not these")
        if sorted(probe["candidates"]) != sorted(cands):
            raise SystemExit(f"the probe's candidates {probe['candidates']} are not {cands}")
        out["probe"] = d["mean_kendall"]
        self_ = seed_split_agreement(rung["probe_fd"], exclude=[
            (c, m) for c, m in rung["exclude"] if c in rung["probe_fd"]])
        out["probe_self"] = self_["outcome"]["mean_kendall"]
        excl_r = [(c, m) for c, m in rung["exclude"] if c in rung["probe_fd"]]
        shares = keep_shares(rung["probe_fd"], len(rung["kept"]), collapsed=rung["collapsed"],
                             exclude=excl_r, prior=rung["prior"], n_boot=n_boot)
        final = mean_fd_rank_excluding(mean_fd_over_seeds({c: fd[c] for c in cands}),
                                       excl)["mean_rank"]
        best = min(cands, key=lambda c: (final[c], c))
        stopped = sorted((c for c in cands if c not in rung["kept"]),
                         key=lambda c: (-shares[c], c))
        out.update(rung1_best=best, rung1_best_share=shares[best],
                   rung1_closest=[stopped[0], shares[stopped[0]]] if stopped else None,
                   rung1_keep_share=shares)
    return out


def run(root: Path = HERE, selection: Path | None = None, values: dict | None = None,
        probe: dict | None = None, n_boot: int = D.SELECT_KEEP_BOOT) -> dict:
    rows: dict[str, dict] = {}
    for name, folder, role in STUDIES:
        if folder is None:
            if selection is None:
                continue
            vals, fd, excl, real, _ = pbmc_inputs(selection, name.split("/")[1], values)
        else:
            if not (root / folder / "validation.json").is_file():
                continue
            vals, fd, excl, _, real, _, _ = study_inputs(root / folder, values)
        pr = (probe or {}).get("studies", {}).get(name)
        rung = None
        if pr is not None:
            sel, sweep = next((s, w) for n, s, w, _ in PROBED if n == name)
            rung = aligned(json.loads((root / sel / "selection.json").read_text()),
                           json.loads((root / sweep / "validation.json").read_text()))
        rows[name] = {"role": role, **one(vals, fd, excl, real, pr, rung, n_boot)}
    main = [n for n, r in rows.items() if not r["role"].startswith("robustness")]

    def mean(key: str, names: list[str]) -> float:
        v = [rows[n][key] for n in names if math.isfinite(rows[n].get(key, math.nan))]
        return float(np.mean(v)) if v else math.nan

    keys = ("outcome", "probe_self", "probe", *CRITERIA_SHOWN)
    with_probe = [n for n in main if "probe" in rows[n]]
    return {"bar": REPEATABILITY_BAR, "datasets": rows,
            "mean": {k: mean(k, main) for k in keys},
            "mean_where_probed": {k: mean(k, with_probe) for k in keys},
            "below_bar": [n for n in main if rows[n]["outcome"] < REPEATABILITY_BAR],
            "n_datasets": len(main), "n_boot": n_boot}


def _short(name: str) -> str:
    """A featurizer file by its folder (``runs/phoneme/vae3/featurizer.pt`` -> ``vae3``)."""
    return Path(name).parent.name if name.endswith(".pt") else name


def _f(v: float | None) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:+.2f}"


def markdown(res: dict) -> str:
    cols = ("probe_self", "probe", *CRITERIA_SHOWN)
    head = ("| data set | candidates | seeds (k vs held) | **outcome vs itself**: full training on "
            "k seeds, mean (min, max) | rung 1 against itself | probe (rung 1 on k seeds) | "
            + " | ".join(f"`{c}`" for c in CRITERIA_SHOWN)
            + " | rung 1 kept the best in | closest stopped at rung 1 |")
    lines = [head, "|" + "---|" * (6 + len(cols))]

    def share(v: float | None) -> str:
        return "—" if v is None else f"{v:.0%}"

    for name, r in res["datasets"].items():
        close = r.get("rung1_closest")
        lines.append(
            f"| {name} | {r['n_candidates']} | {r['seeds'][0]} vs {r['seeds'][1]} | "
            f"**{_f(r['outcome'])}** ({_f(r['outcome_min'])}, {_f(r['outcome_max'])}) | "
            + " | ".join(_f(r.get(c)) for c in cols)
            + f" | {share(r.get('rung1_best_share'))} | "
            + (f"{_short(close[0])} {share(close[1])}" if close else "—") + " |")
    for label, m in ((f"mean over the {res['n_datasets']} data sets", res["mean"]),
                     ("mean where probed", res["mean_where_probed"])):
        lines.append(f"| {label} | | | **{_f(m['outcome'])}** | "
                     + " | ".join(_f(m[c]) for c in cols) + " | | |")
    below = ", ".join(res["below_bar"]) or "none"
    return ("Kendall tau with the mean FD rank of the held seeds, mean over every split of the "
            "seeds (`studies/reliability.py`; read after the fact). Means: over the data sets "
            "that have the column (robustness rows left out). The last two columns: in how many "
            f"of {res['n_boot']} resamples of the seeds `featsel select`'s first rung would "
            "have kept the full sweep's best candidate, and the stopped candidate it would have "
            "kept most often.\n\n" + "\n".join(lines)
            + f"\n\nOutcome halves agreeing below {res['bar']:g}: {below}.\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(HERE / "reliability" / "results.json"))
    ap.add_argument("--md", default=str(HERE / "reliability" / "table.md"))
    ap.add_argument("--selection", help="runs/selection (pbmc68k's scores); without it the "
                    "pbmc68k rows are left out")
    ap.add_argument("--probe", default=str(HERE / "probe" / "results.json"),
                    help="studies/probe.py's results (the disjoint-seed probe)")
    ap.add_argument("--n-boot", type=int, default=D.SELECT_KEEP_BOOT,
                    help="seed resamples behind the keep shares of rung 1")
    args = ap.parse_args(argv)
    sel = Path(args.selection) if args.selection else None
    if sel is not None and not (sel / "ambient" / "results.json").is_file():
        raise SystemExit(f"--selection: no {sel}/ambient/results.json (bash "
                         "studies/selection/run.sh makes it)")
    values = read_values([f"inversion_share={HERE / 'inversion' / 'results.json'}"])
    probe = json.loads(Path(args.probe).read_text()) if Path(args.probe).is_file() else None
    res = run(selection=sel, values=values, probe=probe, n_boot=args.n_boot)
    for path, text in ((args.out, json.dumps(res, indent=1)), (args.md, markdown(res))):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(path).with_suffix(Path(path).suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    print(markdown(res))


if __name__ == "__main__":
    main()
