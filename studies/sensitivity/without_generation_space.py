"""Sensitivity check (exploratory, every data set seen): each criterion's Kendall tau with the
trained outcome when the generation space itself (``ambient`` / ``identity``) is left out.

`null_share` and `inversion_share` give the generation space itself 0 by construction (its
features predict u exactly), so part of their agreement on the tabular studies comes from
placing it first. This reads the same committed results as ``studies/summarize.py`` (the same
outcome statistics: mean FD rank over the remaining candidates, metric-hacking pairs left out,
bootstrap interval over seeds, exact permutation p) with that one candidate removed. Indian
Pines, MAGIC, phoneme, ringnorm, twonorm and marketing (PROTOCOL addenda 12 to 15, designed after
this check) have no such candidate and enter the held-out reading as they are.

Usage, from the repository root (the pbmc68k scores in runs/selection, as summarize.sh):
    python studies/sensitivity/without_generation_space.py --out studies/sensitivity/results.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # studies/summarize.py: the same statistics and inputs

import summarize as S  # noqa: E402

from featsel.diagnostics.criteria import CRITERIA  # noqa: E402

ROOT = HERE.parent.parent
SELF = ("ambient", "identity")  # the generation space itself, as the studies name it
# indian_pines, magic, phoneme, ring, twonorm and marketing (addenda 12 to 15) were designed
# without it: they enter as they are
HELD_OUT = ("texture", "mnist", "penbased", "letter", "segment", "vehicle", "indian_pines", "magic",
            "phoneme", "ring", "twonorm", "marketing")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--selection", default="runs/selection")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    values = S.read_values(["inversion_share=studies/inversion/results.json"])
    data = (S.pbmc(Path(a.selection), values) if (Path(a.selection) / "ambient").is_dir()
            else {})
    for d in ("satimage", "digits", *HELD_OUT):
        if (ROOT / "studies" / d / "results").is_dir():
            data.update(S.study(ROOT / "studies" / d / "results", d, "", values))
    out: dict[str, dict] = {}
    inputs: dict[str, tuple] = {}
    for name, per in data.items():
        vals, fd, excl, real = per["_inputs"]
        rest = [c for c in real if c not in SELF]
        if (len(rest) == len(real) and name not in HELD_OUT) or len(rest) < 3:
            continue  # the generation space is not a candidate here (pbmc68k/pca), or too few
        res = S._agreements(vals, fd, excl, rest)
        inputs[name] = (vals, fd, excl, rest)
        out[name] = {"left_out": [c for c in real if c in SELF], "n_candidates": len(rest),
                     **{n: {k: r[k] for k in ("kendall", "ci_low", "ci_high", "kendall_p")}
                        for n, r in res.items()},
                     "with_it": {n: per[n]["kendall"] for n in res if n in per}}
    held = [d for d in HELD_OUT if d in out]
    pooled = (S.pooled({d: {**out[d], "_inputs": inputs[d]} for d in held}, held)
              if held else {})
    result = {"note": __doc__.splitlines()[0], "datasets": out,
              "pooled_held_out": {n: {k: r[k] for k in ("datasets", "mean_kendall", "p")}
                                  for n, r in pooled.items()}}
    tmp = a.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, a.out)
    for name, r in out.items():
        print(f"{name} (without {', '.join(r['left_out']) or 'nothing'}, {r['n_candidates']} candidates):")
        for n in CRITERIA:
            if n in r:
                print(f"  {n:24s} {r[n]['kendall']:+.2f} [{r[n]['ci_low']:+.2f}, "
                      f"{r[n]['ci_high']:+.2f}] p={r[n]['kendall_p']:.2f}  "
                      f"(with it {r['with_it'].get(n, float('nan')):+.2f})")
    for n, r in result["pooled_held_out"].items():
        print(f"pooled {','.join(r['datasets'])}: {n:24s} {r['mean_kendall']:+.2f} p={r['p']:.3f}")


if __name__ == "__main__":
    main()
