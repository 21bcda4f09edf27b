"""studies/summary.json: how well each criterion predicted the trained outcome, per data set.

For every study (a `featsel validate` folder, or the pbmc68k selection scores joined with the full
PBMC study's trained runs) and every registered criterion: Kendall's tau and Spearman's rho
between the criterion's order and the mean FD rank (paper Table 4, metric-hacking pairs left
out), with a 95% bootstrap interval over seeds (``featsel.confirmation.bootstrap_agreement``),
over the real candidates (controls, when trained, are reported separately in ``with_controls``).

    python studies/summarize.py --out studies/summary.json \
        --selection runs/selection --study satimage=runs/satimage/ambient \
        --study digits=runs/digits_study/pixels --evidence featsel/evidence.json

Format (issue 11): ``{"recommended": criterion, "protocol": ..., "datasets": {name: {criterion:
{"kendall", "ci_low", "ci_high", "kendall_p", "spearman", "n_candidates", "n_seeds", ...}}}}``;
``ci_low`` / ``ci_high`` bound Kendall's tau; ``kendall_p`` is its one-sided permutation p-value
(``featsel.confirmation.kendall_permutation_p``: exact over every order of the candidates).

``--pool texture,mnist,...`` adds ``"pooled": {criterion: {"datasets", "mean_kendall", "p",
"kendall", "n"}}``: every criterion's held-out tests read together (PROTOCOL addendum 4), the
mean tau and the exact p of its sum under independent random orders
(``featsel.confirmation.pooled_kendall_p``). ``--pool-also a,b,c,d`` adds the same over
another list as ``"pooled_secondary"``: a reading reported beside the pre-registered one, not
instead (addenda 7, 8, 10, 12, 13 and 14: every held-out test so far). ``--pool-named LABEL=a,b,c``
(repeatable) adds another list under ``"pooled_named": {label: {criterion: {...}}}``: the held-out
tests of one criterion that are not every criterion's (addendum 13: ``inversion_share`` on
vehicle, Indian Pines and MAGIC). ``--evidence-held-out a,b,c`` names the ranking criterion's
own held-out tests when it was chosen after the others had been seen: summary.json's
``recommended_held_out``, and the evidence file reads them together as ``pooled_held_out`` and
marks every other data set as selection data. ``--evidence-replication LABEL=a,b`` names a
pre-registered replication of the ranking criterion (addendum 14: phoneme and ring): the
evidence file reads them together as ``replication`` and says whether it held (exact p <
``REPLICATION_P``, the bar fixed before the run).

``--values CRITERION=FILE`` fills in a registered criterion that the committed scores lack, from
a file matched to each study by its validation.json (``studies/inversion/results.json``,
addendum 10); ``--note TEXT`` adds a paragraph to summary.md (and summary.json's ``notes``).

``--robustness NAME=FOLDER`` (repeatable) reads another sweep the same way into
``"robustness": {name: {...}}``: a check run after its data set's test result was known (addendum
6: MNIST with five seeds). It is reported beside the test, never in ``datasets``, the pooled
readings or the evidence file, so the pre-registered numbers stay the ones that were fixed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numpy as np

from featsel.confirmation import (
    bootstrap_agreement,
    exclude_metrics,
    mean_fd_over_seeds,
    mean_fd_rank_excluding,
    pooled_kendall_p,
)
from featsel.defaults import RANK_CRITERION
from featsel.diagnostics.criteria import CRITERIA
from featsel.ranking import control_violations

HERE = Path(__file__).resolve().parent
REPLICATION_P = 0.05  # addendum 14's bar for a replication read together


def fd_per_seed(val: dict) -> tuple[dict, set]:
    """validation.json -> ({cand: {metric: [FD per seed]}}, excluded (cand, metric) pairs)."""
    fd: dict[str, dict[str, list[float]]] = {}
    for kind in ("fd", "cond_fd"):
        for c, per_e in val.get(kind, {}).items():
            for e, seeds in per_e.items():
                fd.setdefault(c, {})[f"{kind}[{e}]"] = [float(x) for x in seeds]
    metric_space = {m["metric"]: m["evaluation"] for m in val["fd_metrics"]}
    pairs = {(h["candidate"], h["evaluation"]) for h in val.get("metric_hacking", [])}
    return fd, exclude_metrics(pairs, metric_space)


def per_seed_mean_rank(fd: dict, exclude: set, candidates: list[str]) -> dict[str, list[float]]:
    """{candidate: [its mean FD rank within seed k alone, for each seed k]}: every candidate's
    FDs of that seed ranked per metric (``fd``: ``fd_per_seed``'s), the same exclusions."""
    n_seeds = min(len(v) for c in candidates for v in fd[c].values())
    out: dict[str, list[float]] = {c: [] for c in candidates}
    for k in range(n_seeds):
        mr = mean_fd_rank_excluding({c: {m: v[k] for m, v in fd[c].items()} for c in candidates},
                                    exclude)["mean_rank"]
        for c in candidates:
            out[c].append(mr[c])
    return out


def first_choice_regret(values: dict[str, float], fd: dict, exclude: set,
                        candidates: list[str], lower_is_better: bool) -> dict:
    """Would a user who trained only the criterion's first choice have trained the best? Its
    ``regret``: the outcome's mean FD rank (over seeds, metric-hacking pairs left out) of the
    first choice minus the best candidate's (0 = it named the best; candidates tied on the
    criterion's value share its first place and the regret is their mean), beside
    ``best_seed_sd``, the best's standard deviation (ddof 1) over seeds of its mean FD rank
    within one seed (``studies/select_regret.py``'s yardstick for `featsel select`)."""
    outcome = mean_fd_rank_excluding(mean_fd_over_seeds({c: fd[c] for c in candidates}),
                                     exclude)["mean_rank"]
    sign = 1.0 if lower_is_better else -1.0
    top = min(sign * float(values[c]) for c in candidates)
    first = sorted(c for c in candidates if sign * float(values[c]) == top)
    best = min(candidates, key=lambda c: (outcome[c], c))
    regret = float(np.mean([outcome[c] for c in first])) - float(outcome[best])
    per_seed = per_seed_mean_rank(fd, exclude, candidates)[best]
    sd = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else math.nan
    return {"first": first, "best": best, "regret": regret, "best_seed_sd": sd}


def _agreements(values: dict[str, dict[str, float]], fd: dict, exclude: set,
                candidates: list[str]) -> dict:
    out = {}
    for name, crit in CRITERIA.items():
        v = values.get(name, {})
        if not all(c in v and v[c] is not None for c in candidates):
            continue
        r = bootstrap_agreement({c: v[c] for c in candidates}, {c: fd[c] for c in candidates},
                                exclude=exclude, lower_is_better=crit.lower_is_better,
                                n_boot=2000, seed=0)
        out[name] = {"kendall": r["kendall"], "ci_low": r["kendall_ci"][0],
                     "ci_high": r["kendall_ci"][1], "kendall_p": r["kendall_p"],
                     "spearman": r["spearman"],
                     "spearman_ci": r["spearman_ci"], "n_candidates": r["n"],
                     "n_seeds": min(r["n_seeds"].values()),
                     **first_choice_regret(v, fd, exclude, candidates, crit.lower_is_better)}
    return out


def _criteria_values(score: dict) -> tuple[dict[str, dict[str, float]], list[str]]:
    rk = score["ranking"]
    vals: dict[str, dict[str, float]] = {}
    for c, d in rk["candidates"].items():
        for name, v in (d.get("criteria") or {}).items():
            vals.setdefault(name, {})[c] = v.get("mean")
    return vals, list(rk.get("controls", []))


def values_for(entries: dict, val_path: Path) -> dict[str, float]:
    """{candidate: value} of the --values entry read against val_path (its ``validation``,
    relative to the repository root), or {} when there is none."""
    for e in entries.values():
        if (HERE.parent / e.get("validation", "")).resolve() == Path(val_path).resolve():
            return {c: x["mean"] for c, x in e["values"].items()}
    return {}


def read_values(items: list[str]) -> dict[str, dict]:
    """--values CRITERION=FILE items -> {criterion: the file's entries}; one clear error for a
    malformed item or an unregistered criterion."""
    out = {}
    for item in items:
        name, _, file = item.partition("=")
        if name not in CRITERIA or not file:
            raise SystemExit(f"--values: expected CRITERION=FILE with a registered criterion, "
                             f"got {item!r}")
        out[name] = json.loads(Path(file).read_text())
    return out


def controls_last(values: dict[str, float], controls: list[str], lower_is_better: bool) -> bool:
    """The score's own control check (``featsel.ranking.control_violations``) on values that
    did not come from a score: no control better than a real candidate."""
    return not control_violations(values, controls, lower_is_better=lower_is_better)


def _add_values(vals: dict[str, dict[str, float]], last: dict[str, bool], controls: list[str],
                val_path: Path, values: dict[str, dict]) -> None:
    """Fill in, in place, each --values criterion's values (``values``: criterion -> the file's
    entries) for the study whose outcome is val_path, and its control check; a study without
    an entry keeps its score's own."""
    for name, entries in values.items():
        v = values_for(entries, val_path)
        if v:
            vals[name] = v
            last[name] = controls_last(v, controls, CRITERIA[name].lower_is_better)


def pbmc_inputs(selection: Path, g: str, values: dict[str, dict] | None = None) -> tuple:
    """pbmc68k in generation space g: ``(vals, fd, excl, real candidates, last)``."""
    score = json.loads((selection / g / "results.json").read_text())
    val = json.loads((HERE / "pbmc" / "full" / g / "validation.json").read_text())
    fd, excl = fd_per_seed(val)
    vals, controls = _criteria_values(score)
    last = {n: bool(v.get("valid")) for n, v in score["ranking"]["validity"].items()}
    _add_values(vals, last, controls, HERE / "pbmc" / "full" / g / "validation.json",
                values or {})
    cands = [c for c in val["settings"]["candidates"] if c not in controls]
    return vals, fd, excl, cands, last


def pbmc(selection: Path, values: dict[str, dict] | None = None) -> dict:
    """pbmc68k's two generation spaces; ``values``: --values entries (``read_values``)."""
    out = {}
    for g in ("ambient", "pca"):
        vals, fd, excl, cands, last = pbmc_inputs(selection, g, values)
        out[f"pbmc68k/{g}"] = {"role": "selection (the criterion was chosen here)",
                               **_agreements(vals, fd, excl, cands),
                               "_inputs": (vals, fd, excl, cands), "controls_last": last}
    return out


def read_score(folder: Path) -> dict:
    """A `featsel validate` folder's score: its own ``score/results.json``, or the slim copy
    committed beside a study (``score_ranking.json``, ranking only)."""
    src = next(p for p in (folder / "score" / "results.json", folder / "score_ranking.json")
               if p.is_file())
    return json.loads(src.read_text())


def study_inputs(folder: Path, values: dict[str, dict] | None = None) -> tuple:
    """One `featsel validate` folder: ``(vals, fd, excl, candidates, real candidates, last,
    validation)``; ``values``: --values entries (``read_values``)."""
    val = json.loads((folder / "validation.json").read_text())
    score = read_score(folder)
    fd, excl = fd_per_seed(val)
    vals, controls = _criteria_values(score)
    last = {n: bool(v.get("valid")) for n, v in score["ranking"].get("validity", {}).items()}
    _add_values(vals, last, controls, folder / "validation.json", values or {})
    cands = list(val["settings"]["candidates"])
    real = [c for c in cands if c not in controls]
    return vals, fd, excl, cands, real, last, val


def study(folder: Path, name: str, role: str, values: dict[str, dict] | None = None) -> dict:
    """One `featsel validate` folder; ``values``: --values entries (``read_values``)."""
    vals, fd, excl, cands, real, last, val = study_inputs(folder, values)
    res = {"role": role, **_agreements(vals, fd, excl, real), "_inputs": (vals, fd, excl, real)}
    if len(real) < len(cands):  # controls trained too: the same with them
        res["with_controls"] = _agreements(vals, fd, excl, cands)
    # every control below every real candidate by the criterion (the score's control check)
    res["controls_last"] = last
    collapse = val.get("collapse", {}).get("per_candidate", {})
    res["n_collapsed"] = {c: v.get("n_collapsed") for c, v in collapse.items()}
    res["warnings"] = val.get("warnings", [])
    return {name: res}


def pooled(datasets: dict, names: list[str]) -> dict:
    """Every criterion's agreement over the data sets ``names`` read together: the mean Kendall
    tau and its exact permutation p (``pooled_kendall_p``); criteria missing on one are left out.
    """
    missing = [n for n in names if n not in datasets]
    if missing:
        raise SystemExit(f"--pool: no study named {missing[0]!r} (have {sorted(datasets)})")
    out = {}
    for name, crit in CRITERIA.items():
        pairs = []
        for d in names:
            vals, fd, excl, cands = datasets[d]["_inputs"]
            v = vals.get(name, {})
            if name not in datasets[d]:
                break
            outcome = mean_fd_rank_excluding(mean_fd_over_seeds({c: fd[c] for c in cands}),
                                             excl)["mean_rank"]
            sign = 1.0 if crit.lower_is_better else -1.0  # +1 = ordered as the outcome
            pairs.append((sign * np.array([float(v[c]) for c in cands]),
                          np.array([float(outcome[c]) for c in cands])))
        else:
            r = pooled_kendall_p(pairs)
            out[name] = {"datasets": list(names), **r}
    return out


def markdown(summary: dict) -> str:
    """The summary as a Markdown table: criteria x data sets, Kendall tau [95% interval]."""
    names = list(summary["datasets"])
    head = "| criterion | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    rows = []
    for n in CRITERIA:
        cells = []
        for d in names:
            r = summary["datasets"][d].get(n)
            cells.append("" if r is None else
                         f"{r['kendall']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
                         + (f" p={r['kendall_p']:.2f}" if "kendall_p" in r else ""))
        mark = " (ranks)" if n == summary["recommended"] else ""
        rows.append(f"| `{n}`{mark} | " + " | ".join(cells) + " |")
    info = []
    for d in names:
        per = summary["datasets"][d]
        r = next((per[n] for n in CRITERIA if n in per), None)
        if r is not None:
            info.append(f"{d}: {per.get('role', '')}, {r['n_candidates']} real candidates, "
                        f"{r['n_seeds']} seeds")
    note = ("Kendall's tau with the mean FD rank over the real candidates [95% bootstrap "
            "interval over seeds] and its one-sided permutation p-value (could a random order of "
            "these candidates agree as well? exact over all orders).")
    for d, per in summary.get("robustness", {}).items():
        r = per.get(summary["recommended"])
        if r is not None:
            note += (f"\n\nRobustness check, not a test ({d}: {per.get('role', '')}, "
                     f"{r['n_candidates']} real candidates, {r['n_seeds']} seeds): "
                     f"`{summary['recommended']}` (ranks) {r['kendall']:+.2f} "
                     f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}] p={r['kendall_p']:.2f}; every "
                     "criterion: " + "; ".join(f"`{n}` {per[n]['kendall']:+.2f}"
                                               for n in CRITERIA if n in per) + ".")
    for key, which in (("pooled", "PROTOCOL addendum 4, pre-registered"),
                       ("pooled_secondary", "PROTOCOL addenda 7, 8, 10, 12, 13 and 14, secondary")):
        pool = summary.get(key, {})
        if not pool:
            continue
        first = next(iter(pool.values()))
        note += ("\n\nHeld-out tests read together (" + ", ".join(first["datasets"]) + "): mean "
                 "Kendall tau and the exact one-sided p of its sum under independent random "
                 f"orders ({which}): "
                 + "; ".join(f"`{n}`{' (ranks)' if n == summary['recommended'] else ''} "
                             f"{r['mean_kendall']:+.2f}, p={r['p']:.2g}" for n, r in pool.items())
                 + ".")
    for label, pool in summary.get("pooled_named", {}).items():
        if not pool:
            continue
        first = next(iter(pool.values()))
        note += (f"\n\n{label}: the held-out tests " + ", ".join(first["datasets"]) + " read "
                 "together the same way: "
                 + "; ".join(f"`{n}` {r['mean_kendall']:+.2f}, p={r['p']:.2g}"
                             for n, r in pool.items()) + ".")
    for extra in summary.get("notes", []):
        note += "\n\n" + extra
    regret = regret_markdown(summary)
    return (head + "\n".join(rows) + "\n\n" + "; ".join(info) + ".\n\n"
            + (regret + "\n" if regret else "") + note + "\n")


def regret_markdown(summary: dict) -> str:
    """A second table: each criterion's first choice, as its regret (mean FD rank above the
    best's; 0 = it named the best), with the best's seed sd per data set."""
    names = [d for d in summary["datasets"]
             if any("regret" in summary["datasets"][d].get(n, {}) for n in CRITERIA)]
    if not names:
        return ""
    sd = {}
    for d in names:
        r = next(summary["datasets"][d][n] for n in CRITERIA
                 if "regret" in summary["datasets"][d].get(n, {}))
        sd[d] = r["best_seed_sd"]
    head = ("Regret of each criterion's first choice: the trained outcome's mean FD rank of the "
            "candidate it ranks first minus the best candidate's (0 = it named the best; "
            "candidates tied on its value share the first place). Last row: the best's "
            "standard deviation over seeds, the yardstick of `featsel select`'s goal.\n\n"
            "| criterion | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n")
    rows = []
    for n in CRITERIA:
        cells = [("" if "regret" not in summary["datasets"][d].get(n, {}) else
                  f"{summary['datasets'][d][n]['regret']:.2f}") for d in names]
        if any(cells):
            mark = " (ranks)" if n == summary["recommended"] else ""
            rows.append(f"| `{n}`{mark} | " + " | ".join(cells) + " |")
    rows.append("| best's seed sd | " + " | ".join(f"{sd[d]:.2f}" for d in names) + " |")
    return head + "\n".join(rows) + "\n"


def slim_score(src: Path, dst: Path) -> None:
    """Copy a score's ranking, settings and versions (what the summary reads, and the machine it
    ran on) without the per-candidate diagnostics (megabytes of plans and spectra)."""
    r = json.loads(src.read_text())
    tmp = dst.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({k: r[k] for k in ("title", "settings", "versions", "ranking", "timings")
                               if k in r}, indent=1))
    os.replace(tmp, dst)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--selection", help="runs/selection (pbmc68k scores per generation space)")
    ap.add_argument("--evidence", help="also write the ranking criterion's numbers here "
                    "(featsel/evidence.json, shown in every score report)")
    ap.add_argument("--study", action="append", default=[], metavar="NAME=FOLDER",
                    help="a held-out `featsel validate` folder (repeatable)")
    ap.add_argument("--role", action="append", default=[], metavar="NAME=TEXT",
                    help="the role of a data set in the protocol, when not the default "
                         "(a held-out study that later became selection data, addendum 2)")
    ap.add_argument("--pool", help="comma-separated held-out data sets read together "
                    "(mean Kendall tau and its exact permutation p, PROTOCOL addendum 4)")
    ap.add_argument("--pool-also", help="another comma-separated list read the same way, "
                    "reported beside --pool as summary.json's pooled_secondary "
                    "(addenda 7, 8, 10, 12, 13, 14)")
    ap.add_argument("--pool-named", action="append", default=[], metavar="LABEL=A,B,C",
                    help="another list read the same way, as summary.json's pooled_named[LABEL] "
                         "(repeatable; addendum 13)")
    ap.add_argument("--values", action="append", default=[], metavar="CRITERION=FILE",
                    help="a criterion's values that the committed scores lack, from a file "
                    "matched to each study by its validation.json (studies/inversion/results.json)")
    ap.add_argument("--note", action="append", default=[], metavar="TEXT",
                    help="a paragraph for summary.json's notes and the end of summary.md")
    ap.add_argument("--evidence-held-out", metavar="A,B,C",
                    help="the ranking criterion's own held-out tests, when it was chosen after "
                    "the others had been seen (addendum 13: inversion_share on vehicle, Indian "
                    "Pines and MAGIC): the evidence file reads these together and marks every "
                    "other data set as seen when it was chosen")
    ap.add_argument("--evidence-replication", metavar="LABEL=A,B",
                    help="a pre-registered replication of the ranking criterion (addendum 14: "
                    "phoneme and ring): the evidence file reads these together and says whether "
                    f"it held (exact p < {REPLICATION_P})")
    ap.add_argument("--robustness", action="append", default=[], metavar="NAME=FOLDER",
                    help="a sweep run after its data set's test was known (addendum 6): "
                         "summary.json's robustness, outside the tests and the evidence file")
    args = ap.parse_args()
    values = read_values(args.values)
    roles = dict(item.partition("=")[::2] for item in args.role)
    datasets: dict[str, dict] = {}
    if args.selection:
        datasets.update(pbmc(Path(args.selection), values))
        for key in datasets:
            if key.split("/")[0] in roles:
                datasets[key]["role"] = roles[key.split("/")[0]]
    for item in args.study:
        name, _, folder = item.partition("=")
        if not folder:
            raise SystemExit(f"--study: expected NAME=FOLDER, got {item!r}")
        datasets.update(study(Path(folder), name,
                              roles.get(name, "held out (test of the pre-registered choice)"),
                              values))
    robust: dict[str, dict] = {}
    for item in args.robustness:
        name, _, folder = item.partition("=")
        if not folder:
            raise SystemExit(f"--robustness: expected NAME=FOLDER, got {item!r}")
        if name in datasets:
            raise SystemExit(f"--robustness: {name!r} is already a --study name; give the "
                             "check its own name (e.g. mnist_5seeds)")
        robust.update(study(Path(folder), name, roles.get(name, "robustness check"), values))
    pool = pooled(datasets, [n for n in args.pool.split(",") if n]) if args.pool else {}
    pool2 = (pooled(datasets, [n for n in args.pool_also.split(",") if n])
             if args.pool_also else {})
    named: dict[str, dict] = {}
    for item in args.pool_named:
        label, _, names = item.partition("=")
        if not label or not names:
            raise SystemExit(f"--pool-named: expected LABEL=A,B,C, got {item!r}")
        named[label] = pooled(datasets, [n for n in names.split(",") if n])
    held_out = [n for n in (args.evidence_held_out or "").split(",") if n]
    missing = [n for n in held_out if RANK_CRITERION not in datasets.get(n, {})]
    if missing:
        raise SystemExit(f"--evidence-held-out: {missing} have no {RANK_CRITERION} values "
                         f"(studies: {sorted(datasets)})")
    held_pool = pooled(datasets, held_out) if held_out else {}
    rep_label, _, rep_names = (args.evidence_replication or "").partition("=")
    if args.evidence_replication and (not rep_label or not rep_names):
        raise SystemExit("--evidence-replication: expected LABEL=A,B, got "
                         f"{args.evidence_replication!r}")
    replication = (pooled(datasets, [n for n in rep_names.split(",") if n])
                   if rep_names else {})
    if rep_names and RANK_CRITERION not in replication:
        raise SystemExit(f"--evidence-replication: {rep_names} lack {RANK_CRITERION} values")
    for per in [*datasets.values(), *robust.values()]:
        per.pop("_inputs", None)
    summary = {"recommended": RANK_CRITERION, "protocol": "studies/PROTOCOL.md",
               "datasets": datasets}
    if held_out:
        summary["recommended_held_out"] = held_out
    if pool:
        summary["pooled"] = pool
    if pool2:
        summary["pooled_secondary"] = pool2
    if named:
        summary["pooled_named"] = named
    if robust:
        summary["robustness"] = robust
    if args.note:
        summary["notes"] = list(args.note)
    tmp = Path(args.out).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, args.out)
    md = Path(args.out).with_suffix(".md")
    md.write_text(markdown(summary))
    if args.evidence:  # what `featsel score` shows users about its ranking criterion
        ev = {"criterion": RANK_CRITERION, "protocol": "studies/PROTOCOL.md",
              "datasets": {d: {k: per[RANK_CRITERION][k] for k in
                               ("kendall", "ci_low", "ci_high", "n_candidates", "n_seeds")}
                           | {"role": per.get("role", "")}
                           for d, per in datasets.items() if RANK_CRITERION in per}}
        pools = (("pooled_held_out", pool), ("pooled_held_out_secondary", pool2))
        if held_out:  # a criterion chosen on the others: only its own tests are held out
            for d, e in ev["datasets"].items():
                if d not in held_out:
                    e["role"] = f"selection (seen when {RANK_CRITERION} was chosen)"
            pools = (("pooled_held_out", held_pool),)
        for key, pl in pools:
            if RANK_CRITERION in pl:
                ev[key] = {k: pl[RANK_CRITERION][k] for k in ("datasets", "mean_kendall", "p")}
        if replication:  # said in words: the bar was fixed before the run
            r = replication[RANK_CRITERION]
            ev["replication"] = {"label": rep_label, "datasets": r["datasets"],
                                 "mean_kendall": r["mean_kendall"], "p": r["p"],
                                 "bar_p": REPLICATION_P, "held": bool(r["p"] < REPLICATION_P)}
        old = Path(args.evidence)  # the probe's record is studies/probe.py's: kept as it is
        if old.is_file() and "probe" in (prev := json.loads(old.read_text())):
            ev["probe"] = prev["probe"]
        tmp = Path(args.evidence).with_suffix(".json.tmp")
        tmp.write_text(json.dumps(ev, indent=1))
        os.replace(tmp, args.evidence)
    for d, per in [*datasets.items(), *robust.items()]:
        print(d, per.get("role", ""))
        for n in CRITERIA:
            if n in per:
                r = per[n]
                print(f"  {n:24s} Kendall {r['kendall']:+.2f} [{r['ci_low']:+.2f}, "
                      f"{r['ci_high']:+.2f}]  Spearman {r['spearman']:+.2f}  "
                      f"n={r['n_candidates']} seeds={r['n_seeds']}")
    for n, r in [*pool.items(), *pool2.items(), *(x for p in named.values() for x in p.items())]:
        print(f"pooled {','.join(r['datasets'])}: {n:24s} mean Kendall {r['mean_kendall']:+.2f} "
              f"p={r['p']:.2g}")


if __name__ == "__main__":
    main()
