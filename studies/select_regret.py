"""How good was a `featsel select` choice? Compare it with a full `featsel validate` sweep.

    python studies/select_regret.py --selection runs/texture/select8/selection.json \
        --sweep runs/texture/ambient8/validation.json [--alias SELECT_NAME=SWEEP_NAME] [--json]

- the sweep's **best** is the real candidate with the lowest mean FD rank (paper Table 4 over
  its metrics, metric-hacking pairs left out: the sweep's own ``mean_fd_rank``);
- **regret** = the sweep's mean FD rank of the chosen candidate minus the best's;
- the best's **seed sd**: the standard deviation over seeds (ddof 1) of its mean FD rank
  computed within each seed alone (every candidate's FDs of that seed ranked per metric, the
  same exclusions); issue 12's goal is regret <= that sd;
- **fraction**: the selection's candidate-steps over the full sweep's (real candidates x seeds
  x budget), and its wall time, from ``selection.json``.

An alias maps a candidate name of the selection onto the sweep's (e.g. a featurizer file
pretrained in another folder by the same seeded command).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summarize import fd_per_seed  # noqa: E402  (a sibling script, not a package)
from summarize import per_seed_mean_rank as seed_ranks  # noqa: E402


def per_seed_mean_rank(val: dict, candidates: list[str]) -> dict[str, list[float]]:
    """validation.json -> {candidate: [mean FD rank within seed k, for each seed k]}."""
    fd, excl = fd_per_seed(val)
    return seed_ranks(fd, excl, candidates)


def compare(selection: dict, val: dict, alias: dict[str, str] | None = None) -> dict:
    alias = alias or {}
    chosen = alias.get(selection["chosen"], selection["chosen"])
    controls = set(val.get("controls") or [])
    ranks = {c: r for c, r in val["mean_fd_rank"].items() if c not in controls}
    if chosen not in ranks:
        raise SystemExit(f"--selection: chosen candidate {chosen!r} is not in the sweep "
                         f"({sorted(ranks)}); map it with --alias")
    best = min(ranks, key=lambda c: (ranks[c], c))
    seeds = per_seed_mean_rank(val, sorted(ranks))
    sd = float(np.std(seeds[best], ddof=1)) if len(seeds[best]) > 1 else float("nan")
    comp = selection["compute"]
    regret = ranks[chosen] - ranks[best]
    return {"chosen": chosen, "best": best, "chosen_mean_fd_rank": ranks[chosen],
            "best_mean_fd_rank": ranks[best], "regret": regret, "best_seed_sd": sd,
            "within_one_sd": bool(regret <= sd + 1e-12) if np.isfinite(sd) else regret == 0,
            "candidate_steps": comp["candidate_steps"],
            "full_sweep_candidate_steps": comp["full_sweep_candidate_steps"],
            "fraction": comp["fraction"], "n_candidates": comp["n_candidates"],
            "seeds": comp["seeds"], "budget": comp["budget"],
            "select_wall_s": selection.get("timings", {}).get("total_s"),
            "per_candidate": {c: {"sweep_mean_fd_rank": ranks[c],
                                  "per_seed": seeds[c],
                                  "select_stopped_at_rung": selection["stopped_at"].get(
                                      next((k for k, v in alias.items() if v == c), c))}
                              for c in sorted(ranks, key=ranks.get)}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--selection", required=True, help="a featsel select folder's selection.json")
    ap.add_argument("--sweep", required=True, help="a featsel validate folder's validation.json")
    ap.add_argument("--alias", action="append", default=[], metavar="SELECT_NAME=SWEEP_NAME")
    ap.add_argument("--json", action="store_true", help="print the comparison as JSON")
    args = ap.parse_args(argv)
    alias = dict(a.split("=", 1) for a in args.alias)
    sel = json.loads(Path(args.selection).read_text())
    if not sel.get("complete"):
        raise SystemExit(f"--selection: {args.selection} is not complete (rerun select --resume)")
    r = compare(sel, json.loads(Path(args.sweep).read_text()), alias)
    if args.json:
        print(json.dumps(r, indent=1))
        return
    print(f"chosen {r['chosen']} (sweep mean FD rank {r['chosen_mean_fd_rank']:.2f}); best "
          f"{r['best']} ({r['best_mean_fd_rank']:.2f}, seed sd {r['best_seed_sd']:.2f}); regret "
          f"{r['regret']:.2f} ({'within' if r['within_one_sd'] else 'NOT within'} one seed sd); "
          f"{r['candidate_steps']:,} of {r['full_sweep_candidate_steps']:,} candidate-steps "
          f"({100 * r['fraction']:.1f}%), {r['n_candidates']} candidates; select wall "
          f"{r['select_wall_s']} s")


if __name__ == "__main__":
    main()
