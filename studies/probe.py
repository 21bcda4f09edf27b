"""Does a short training probe predict the trained outcome better than a training-free score?

Every `featsel select` in the studies trained all its candidates, every seed, for its first rung
(89 of 800 steps, 1/9 of the budget: 11% of the full sweep's candidate-steps) before keeping the
best third. This script reads that first rung as a *predictor* of the full sweep's mean FD rank,
the way ``studies/summarize.py`` reads the training-free criteria, on every study that has both a
selection and a full sweep:

- **probe** (``probe``): select's own rung-1 order (``rungs[0].mean_rank``: mean FD rank over
  (metric, seed) cells, collapsed runs ranked below healthy ones, ``featsel.halving.run_ranks``),
  against the sweep's mean FD rank (paper Table 4, metric-hacking pairs left out). Kendall's tau,
  its exact one-sided permutation p, a 95% bootstrap interval over seeds (one resample of a
  candidate's seed indices shared by the probe and the outcome, since seed k of both is the same
  generator when select and validate shared a folder), and the regret of the probe's first
  choice (``summarize.first_choice_regret``) beside the best's seed sd.
- **disjoint seeds** (``disjoint``): the probe read on some seeds and the outcome on the others
  (5 seeds: every 2 / 3 split; 3 seeds: every 1 / 2 split), so that no seed's luck is shared
  between the two. Mean, min and max Kendall over the splits, and the share of splits in which
  the probe's first choice is the outcome's best on the other seeds. This is the honest reading
  of a probe whose runs are not the ones the user will keep. ``one_seed``: the cheapest probe,
  one seed against the outcome on all the others, averaged over the seeds.
- the training-free criteria's tau on the same data set, read from ``studies/summary.json``.

Read together (``featsel.confirmation.pooled_kendall_p``): the probe over the data sets that
were held out for the ranking criterion, and over all of them.

This is an analysis of runs that already exist, made after their outcomes were known
(``studies/PROTOCOL.md`` addendum 15): the probe has no setting chosen on them (select's rung
schedule was fixed by issue 12's defaults, eta 3, before any of these studies ran), but which
rung to read, and how, was decided here.

Addendum 15's test (twonorm and marketing, role ``test``) is read together apart from the rest
and held if exact p < ``TEST_P``; ``--evidence featsel/evidence.json`` writes the record
`featsel score` prints beside its recommendation (``evidence_entry``).

    python studies/probe.py [--out studies/probe/results.json] [--md studies/probe/table.md] \
        [--evidence featsel/evidence.json]
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

from featsel.confirmation import (
    mean_fd_over_seeds,
    mean_fd_rank_excluding,
    pooled_kendall_p,
    rank_agreement,
)
from featsel.diagnostics.criteria import CRITERIA
from featsel.halving import run_ranks

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summarize import (  # noqa: E402  (a sibling script)
    _add_values,
    _criteria_values,
    fd_per_seed,
    first_choice_regret,
    read_score,
    read_values,
)

HERE = Path(__file__).resolve().parent
# (name, selection folder, full sweep folder, role): every study with both, under studies/
STUDIES = [
    ("pbmc68k/ambient", "pbmc/select", "pbmc/full/ambient", "selection"),
    ("satimage", "satimage/select", "satimage/results", "selection"),
    ("texture", "texture/select", "texture/results", "held out"),
    ("mnist", "mnist/select", "mnist/results", "held out"),
    ("penbased", "penbased/select", "penbased/results", "held out"),
    ("letter", "letter/select", "letter/results", "held out"),
    ("segment", "segment/select", "segment/results", "held out"),
    ("vehicle", "vehicle/select", "vehicle/results", "held out"),
    ("indian_pines", "indian_pines/select", "indian_pines/results", "held out"),
    ("magic", "magic/select", "magic/results", "held out"),
    ("phoneme", "phoneme/select", "phoneme/results", "held out"),
    ("ring", "ring/select", "ring/results", "held out"),
    # addendum 15's test, fixed before these ran
    ("twonorm", "twonorm/select", "twonorm/results", "test"),
    ("marketing", "marketing/select", "marketing/results", "test"),
]
# read beside the studies, not in the pooled readings: the same data set again
EXTRA = [
    ("texture_8", "texture/extended/select", "texture/extended/results",
     "texture with 8 candidates (same data as texture)"),
    ("mnist_rebuilt", "mnist/rerun", "mnist/rerun", "MNIST, the rebuilt pipeline (addendum 6)"),
]
CRITERIA_SHOWN = ("inversion_share", "null_share")
TEST_LABEL = "addendum 15"
TEST_P = 0.05  # addendum 15's bar: the test data sets read together at exact p < 0.05


def match_names(select_names: list[str], sweep_names: list[str]) -> dict[str, str]:
    """{select name: sweep name}: the same spec, or a featurizer file of the same folder name
    (the same seeded pretraining command run in another directory, e.g. ``/tmp/sat/vae`` and
    ``runs/satimage/vae``)."""
    def tail(n: str) -> str:
        return "/".join(Path(n).parts[-2:]) if n.endswith(".pt") else n

    out = {}
    for s in select_names:
        hits = [w for w in sweep_names if w == s] or [w for w in sweep_names if tail(w) == tail(s)]
        if len(hits) != 1:
            raise SystemExit(f"candidate {s!r}: {len(hits)} matches in the sweep {sweep_names}")
        out[s] = hits[0]
    return out


def _probe_rank(fd: dict, collapsed: dict, exclude: set, seeds: list[int]) -> dict[str, float]:
    sub = {c: {m: [v[k] for k in seeds] for m, v in row.items()} for c, row in fd.items()}
    col = {c: [v[k] for k in seeds] for c, v in collapsed.items()}
    return run_ranks(sub, col, [(c, m) for c, m in exclude if c in fd])["mean_rank"]


def _outcome(fd: dict, exclude: set, seeds: list[int]) -> dict[str, float]:
    sub = {c: {m: [v[k] for k in seeds] for m, v in row.items()} for c, row in fd.items()}
    return mean_fd_rank_excluding(mean_fd_over_seeds(sub), exclude)["mean_rank"]


def is_mlp_vae(name: str) -> bool:
    """The studies' MLP VAE couplings: featurizer files of `featsel pretrain vae`, each in a
    folder named ``vae*`` (``runs/<data>/vae8/featurizer.pt``); MNIST's MAE and distilled ViT
    files are not."""
    p = Path(name)
    return p.suffix == ".pt" and p.parent.name.startswith("vae")


def _tau(pred: dict, outcome: dict) -> float:
    return rank_agreement(pred, outcome, with_p=False)["kendall"]


def aligned(selection: dict, val: dict) -> dict:
    """Rung 1 of ``selection`` and the sweep ``val`` in the sweep's names: ``{"cands": real
    candidates, "probe_fd": {cand: {metric: [FD per seed]}} at rung 1, "collapsed": {cand:
    [bool per seed]}, "stored": select's rung-1 mean rank, "sweep_fd", "exclude",
    "n_seeds", "kept": rung 1's survivors, "prior": the score's order}``. Metric names carry
    the evaluation space, whose file may sit elsewhere too."""
    rung = selection["rungs"][0]
    sweep_fd, exclude = fd_per_seed(val)
    controls = set(val.get("controls") or [])
    names = match_names(list(rung["candidates"]),
                        [c for c in val["settings"]["candidates"] if c not in controls])
    cands = list(names.values())
    sweep_metrics = sorted(sweep_fd[cands[0]])
    metric = {}
    for m in rung["metrics"]:
        kind, space = m.split("[", 1)
        space = match_names([space[:-1]], [w.split("[", 1)[1][:-1] for w in sweep_metrics
                                           if w.startswith(kind + "[")])[space[:-1]]
        metric[m] = f"{kind}[{space}]"
    if sorted(metric.values()) != sweep_metrics:
        raise SystemExit(f"rung 1 metrics {sorted(metric.values())} differ from the sweep's "
                         f"{sweep_metrics}")
    probe_fd = {names[s]: {metric[m]: [float(x) for x in rung["fd"][s][m]] for m in metric}
                for s in rung["candidates"]}
    sweep_fd = {c: sweep_fd[c] for c in cands}
    n_seeds = min(len(v) for row in sweep_fd.values() for v in row.values())
    n_probe_seeds = min(len(v) for row in probe_fd.values() for v in row.values())
    if n_probe_seeds != n_seeds:
        raise SystemExit(f"rung 1 has {n_probe_seeds} seeds, the sweep {n_seeds}")
    return {"cands": cands, "probe_fd": probe_fd, "sweep_fd": sweep_fd, "exclude": exclude,
            "collapsed": {names[s]: list(rung["collapsed"][s]) for s in rung["candidates"]},
            "stored": {names[s]: float(r) for s, r in rung["mean_rank"].items()},
            "n_seeds": n_seeds, "kept": [names[s] for s in rung["kept"]],
            "prior": [names[s] for s in selection["prior"]["order"] if s in names]}


def analyse(selection: dict, val: dict, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """One study: the rung-1 probe against the full sweep (module docstring)."""
    rung = selection["rungs"][0]
    a = aligned(selection, val)
    cands, probe_fd, sweep_fd = a["cands"], a["probe_fd"], a["sweep_fd"]
    collapsed, exclude, n_seeds = a["collapsed"], a["exclude"], a["n_seeds"]
    all_seeds = list(range(n_seeds))
    probe = a["stored"]
    recomputed = _probe_rank(probe_fd, collapsed, exclude, all_seeds)
    if any(abs(recomputed[c] - probe[c]) > 1e-9 for c in cands):
        raise SystemExit("rung 1's stored mean_rank differs from run_ranks on its FDs")
    outcome = _outcome(sweep_fd, exclude, all_seeds)
    point = rank_agreement(probe, outcome)
    # bootstrap: one resample of each candidate's seeds, shared by probe and outcome
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(n_boot):
        idx = {c: rng.integers(0, n_seeds, n_seeds) for c in cands}
        p_fd = {c: {m: [v[k] for k in idx[c]] for m, v in probe_fd[c].items()} for c in cands}
        p_col = {c: [collapsed[c][k] for k in idx[c]] for c in cands}
        o_fd = {c: {m: [v[k] for k in idx[c]] for m, v in sweep_fd[c].items()} for c in cands}
        p = run_ranks(p_fd, p_col, [(c, m) for c, m in exclude if c in p_fd])["mean_rank"]
        taus.append(_tau(p, _outcome(o_fd, exclude, list(range(n_seeds)))))
    t = np.asarray(taus)
    t = t[np.isfinite(t)]
    ci = [float(x) for x in np.percentile(t, [2.5, 97.5])] if t.size else [math.nan] * 2
    regret = first_choice_regret(probe, sweep_fd, exclude, cands, lower_is_better=True)
    # disjoint seeds: probe on k seeds, outcome on the rest, every split
    k = n_seeds // 2
    splits = []
    for ps in itertools.combinations(all_seeds, k):
        os_ = [s for s in all_seeds if s not in ps]
        p = _probe_rank(probe_fd, collapsed, exclude, list(ps))
        o = _outcome(sweep_fd, exclude, os_)
        best = min(cands, key=lambda c: (o[c], c))
        top = min(p.values())
        first = [c for c in cands if p[c] == top]
        splits.append({"probe_seeds": list(ps), "kendall": _tau(p, o),
                       "first_is_best": best in first and len(first) == 1,
                       "regret": float(np.mean([o[c] for c in first]) - o[best])})
    dk = np.array([s["kendall"] for s in splits], dtype=float)
    # the cheapest probe: one seed against the outcome on all the others
    one = [_tau(_probe_rank(probe_fd, collapsed, exclude, [s]),
                _outcome(sweep_fd, exclude, [x for x in all_seeds if x != s]))
           for s in all_seeds] if n_seeds > 1 else [math.nan]
    return {
        "candidates": cands, "n_candidates": len(cands), "n_seeds": n_seeds,
        "probe_steps": int(rung["steps"]), "budget": int(selection["compute"]["budget"]),
        "probe_fraction": rung["candidate_steps"] / selection["compute"][
            "full_sweep_candidate_steps"],
        "probe": probe, "outcome": outcome,
        "kendall": point["kendall"], "kendall_p": point["kendall_p"],
        "spearman": point["spearman"], "ci_low": ci[0], "ci_high": ci[1],
        **{f"first_{k_}": v for k_, v in regret.items()},
        "disjoint": {"probe_seeds_per_split": k, "n_splits": len(splits),
                     "mean_kendall": float(np.nanmean(dk)), "min_kendall": float(np.nanmin(dk)),
                     "max_kendall": float(np.nanmax(dk)),
                     "first_is_best_share": float(np.mean([s["first_is_best"] for s in splits])),
                     "mean_regret": float(np.mean([s["regret"] for s in splits])),
                     "splits": splits},
        "one_seed": {"mean_kendall": float(np.nanmean(one)), "per_seed": one},
        "_pair": (np.array([probe[c] for c in cands]), np.array([outcome[c] for c in cands])),
    }


def without_vae(selection: dict, val: dict, folder: Path, values: dict) -> dict:
    """The probe's and the criteria's Kendall over the candidates that are not MLP VAEs
    (``is_mlp_vae``), against the outcome recomputed over those candidates alone: how much of
    each one's agreement is catching the VAE couplings' failure. ``values``: summarize's
    ``--values`` entries (the inversion share of the studies scored before it existed)."""
    a = aligned(selection, val)
    vals, controls = _criteria_values(read_score(folder))
    _add_values(vals, {}, controls, folder / "validation.json", values)
    keep = [c for c in a["cands"] if not is_mlp_vae(c)]
    seeds = list(range(a["n_seeds"]))
    probe = _probe_rank({c: a["probe_fd"][c] for c in keep},
                        {c: a["collapsed"][c] for c in keep}, a["exclude"], seeds)
    outcome = _outcome({c: a["sweep_fd"][c] for c in keep}, a["exclude"], seeds)
    out = {"n_candidates": len(keep), "left_out": [c for c in a["cands"] if c not in keep],
           "probe": _tau(probe, outcome),
           "_pairs": {"probe": (np.array([probe[c] for c in keep]),
                                np.array([outcome[c] for c in keep]))}}
    for crit in CRITERIA_SHOWN:
        v = vals.get(crit, {})
        if all(v.get(c) is not None for c in keep):
            lower = CRITERIA[crit].lower_is_better
            out[crit] = rank_agreement({c: v[c] for c in keep}, outcome,
                                       lower_is_better=lower, with_p=False)["kendall"]
            sign = 1.0 if lower else -1.0
            out["_pairs"][crit] = (sign * np.array([float(v[c]) for c in keep]),
                                   np.array([outcome[c] for c in keep]))
    return out


def criteria_taus(summary: dict, name: str) -> dict[str, float | None]:
    d = summary.get("datasets", {}).get(name, {})
    return {c: (d[c]["kendall"] if c in d else None) for c in CRITERIA_SHOWN}


def run(studies=STUDIES, extra=EXTRA, root: Path = HERE, summary: dict | None = None,
        values: dict | None = None) -> dict:
    out: dict = {"studies": {}, "extra": {}, "without_vae": {"datasets": {}, "pooled": {}}}
    nv = out["without_vae"]
    for group, items in (("studies", studies), ("extra", extra)):
        for name, sel, sweep, role in items:
            s, v = root / sel / "selection.json", root / sweep / "validation.json"
            if not (s.is_file() and v.is_file()):
                continue
            sel, val = json.loads(s.read_text()), json.loads(v.read_text())
            r = analyse(sel, val)
            r["role"] = role
            if group == "studies" and role != "selection" and any(
                    is_mlp_vae(c) for c in r["candidates"]):
                nv["datasets"][name] = without_vae(sel, val, root / sweep, values or {})
            r["criteria"] = criteria_taus(summary or {}, name)
            out[group][name] = r
    pooled = {}
    for label, keep in (("held out", lambda r: r["role"] == "held out"),
                        ("test", lambda r: r["role"] == "test"),
                        ("all", lambda r: True)):
        # (probe mean rank, outcome mean rank): both lower = better, so +1 = the same order
        pairs = [r["_pair"] for r in out["studies"].values() if keep(r)]
        names = [n for n, r in out["studies"].items() if keep(r)]
        if pairs:
            res = pooled_kendall_p(pairs)
            pooled[label] = {"datasets": names, "mean_kendall": res["mean_kendall"],
                             "p": res["p"],
                             "mean_disjoint_kendall": float(np.mean(
                                 [out["studies"][n]["disjoint"]["mean_kendall"] for n in names])),
                             "mean_one_seed_kendall": float(np.mean(
                                 [out["studies"][n]["one_seed"]["mean_kendall"] for n in names]))}
    out["pooled"] = pooled
    for who in ("probe", *CRITERIA_SHOWN):  # the held-out and test data sets read together
        pairs = [d["_pairs"][who] for d in nv["datasets"].values() if who in d["_pairs"]]
        if pairs:
            res = pooled_kendall_p(pairs)
            nv["pooled"][who] = {"n_datasets": len(pairs), "mean_kendall": res["mean_kendall"],
                                 "p": res["p"]}
    for d in nv["datasets"].values():
        d.pop("_pairs")
    if "held out" in pooled and summary:
        out["criteria_same_datasets"] = criteria_means(summary, pooled["held out"]["datasets"])
    if "test" in pooled and summary:
        out["criteria_test"] = criteria_means(summary, pooled["test"]["datasets"])
        out["ranking_criterion"] = summary.get("recommended")
    if "test" in pooled:  # said in words: the bar was fixed before the run
        pooled["test"].update(label=TEST_LABEL, bar_p=TEST_P, held=bool(pooled["test"]["p"] < TEST_P))
    for group in ("studies", "extra"):
        for r in out[group].values():
            r.pop("_pair")
    return out


def markdown(res: dict) -> str:
    head = ("| data set | candidates x seeds | probe tau [95% CI] | p | disjoint seeds: mean "
            "(min, max) | probe's first: regret (best's sd) | first = best, disjoint | "
            + " | ".join(f"`{c}` tau" for c in CRITERIA_SHOWN) + " |")
    lines = [head, "|" + "---|" * (7 + len(CRITERIA_SHOWN))]
    for group in ("studies", "extra"):
        for name, r in res[group].items():
            d = r["disjoint"]
            crit = " | ".join("" if r["criteria"][c] is None else f"{r['criteria'][c]:+.2f}"
                              for c in CRITERIA_SHOWN)
            label = name if group == "studies" else f"{name} (beside)"
            lines.append(
                f"| {label} ({r['role']}) | {r['n_candidates']} x {r['n_seeds']} | "
                f"{r['kendall']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}] | "
                f"{r['kendall_p']:.2g} | {d['mean_kendall']:+.2f} ({d['min_kendall']:+.2f}, "
                f"{d['max_kendall']:+.2f}) | {r['first_regret']:.2f} ({r['first_best_seed_sd']:.2f})"
                f" | {d['first_is_best_share']:.0%} of {d['n_splits']} | {crit} |")
    nv = res.get("without_vae", {})
    if nv.get("datasets"):
        lines += ["", "Without the MLP VAE couplings (held-out and test data sets that had them; "
                  "the outcome recomputed over the rest):", "",
                  "| data set | candidates | probe | " + " | ".join(f"`{c}`" for c in CRITERIA_SHOWN)
                  + " |", "|" + "---|" * (3 + len(CRITERIA_SHOWN))]
        for name, d in nv["datasets"].items():
            crit = " | ".join("" if d.get(c) is None else f"{d[c]:+.2f}" for c in CRITERIA_SHOWN)
            lines.append(f"| {name} | {d['n_candidates']} | {d['probe']:+.2f} | {crit} |")
        lines.append("| read together (mean, exact p) | | " + " | ".join(
            f"{nv['pooled'][w]['mean_kendall']:+.2f}, p = {nv['pooled'][w]['p']:.2g} "
            f"({nv['pooled'][w]['n_datasets']})" if w in nv["pooled"] else ""
            for w in ("probe", *CRITERIA_SHOWN)) + " |")
    lines.append("")
    for label, p in res["pooled"].items():
        verdict = ""
        if "held" in p:
            verdict = (f" ({p['label']}'s bar, p < {p['bar_p']:g}: "
                       + ("held" if p["held"] else "did not hold") + ")")
        lines.append(f"Read together ({label}: {', '.join(p['datasets'])}): probe mean Kendall "
                     f"{p['mean_kendall']:+.2f}, exact p = {p['p']:.2g}{verdict}; on disjoint "
                     f"seeds {p['mean_disjoint_kendall']:+.2f}; one probe seed against the "
                     f"others {p['mean_one_seed_kendall']:+.2f}.")
    return "\n".join(lines) + "\n"


def criteria_means(summary: dict, names: list[str]) -> dict[str, dict]:
    """Every training-free criterion's mean Kendall over those of ``names`` where
    studies/summary.json has it: ``{criterion: {"mean_kendall", "n"}}``."""
    out: dict[str, dict] = {}
    for d in names:
        for c, r in summary.get("datasets", {}).get(d, {}).items():
            if isinstance(r, dict) and "kendall" in r:
                out.setdefault(c, []).append(float(r["kendall"]))
    return {c: {"mean_kendall": float(np.mean(v)), "n": len(v)} for c, v in out.items()}


def evidence_entry(res: dict) -> dict:
    """What `featsel score` shows its users about the probe (``featsel/evidence.json``'s
    ``probe``): its cost, its agreement read after the fact, and its pre-registered test."""
    fractions = [r["probe_fraction"] for r in res["studies"].values()]
    pool = res["pooled"]
    entry = {"what": "featsel select's first rung (every candidate and seed trained for 1/9 of "
                     "the budget), read as a predictor of the full sweep's mean FD rank",
             "fraction": float(np.mean(fractions)) if fractions else math.nan}
    if "held out" in pool:
        entry["after_the_fact"] = {k: pool["held out"][k] for k in
                                   ("datasets", "mean_kendall", "p", "mean_disjoint_kendall")}
        crit = res.get("criteria_same_datasets", {})
        if crit:  # the best training-free criterion on the same data sets, for comparison
            best = max(crit, key=lambda c: crit[c]["mean_kendall"])
            entry["after_the_fact"]["best_criterion"] = {"name": best, **crit[best]}
    if "test" in pool:
        entry["test"] = {k: pool["test"][k] for k in
                         ("label", "datasets", "mean_kendall", "p", "bar_p", "held",
                          "mean_disjoint_kendall")}
        rank = res.get("ranking_criterion")
        if rank in res.get("criteria_test", {}):  # the ranking criterion on the same test
            entry["test"]["ranking_criterion"] = {"name": rank, **res["criteria_test"][rank]}
    return entry


def write_evidence(path: str | os.PathLike, entry: dict) -> None:
    """Set ``probe`` in the evidence file (written by studies/summarize.py, which keeps it)."""
    ev = json.loads(Path(path).read_text()) if Path(path).is_file() else {}
    ev["probe"] = entry
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(ev, indent=1))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(HERE / "probe" / "results.json"))
    ap.add_argument("--md", default=str(HERE / "probe" / "table.md"))
    ap.add_argument("--summary", default=str(HERE / "summary.json"),
                    help="studies/summary.json, for the criteria's tau beside the probe's")
    ap.add_argument("--evidence", help="also write the probe's record here as 'probe' "
                    "(featsel/evidence.json, shown beside every score's recommendation)")
    args = ap.parse_args(argv)
    summary = json.loads(Path(args.summary).read_text()) if Path(args.summary).is_file() else {}
    res = run(summary=summary,
              values=read_values([f"inversion_share={HERE / 'inversion' / 'results.json'}"]))
    for path, text in ((args.out, json.dumps(res, indent=1) + "\n"), (args.md, markdown(res))):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(f"{path}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    if args.evidence:
        write_evidence(args.evidence, evidence_entry(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
