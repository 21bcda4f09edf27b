"""Issue 14: does `featsel score` at its (cheaper) defaults order the candidates as the fuller
settings do (Delta_OT at the paper's three taus, 8 transport draws over 16 locations)?

    python -m benchmarks.score_agreement digits     # also pbmc68k, mnist (test split, 3,000)

Writes benchmarks/results/score_agreement_<data>.json: both orders (candidates and controls,
by the ranking criterion), the recommendation and the wall time of each.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from featsel.defaults import PAPER_TAUS
from featsel.rundir import atomic_write_json
from featsel.score import ScoreConfig, run_score

FULL = dict(taus=PAPER_TAUS, transport_repeats=8, transport_max_locations=16, n_repeats=8)
DATA = {"digits": {}, "pbmc68k": dict(split="all"), "mnist": dict(split="test", max_samples=3000)}


def main(argv: list[str] | None = None) -> dict:
    data = (argv if argv is not None else sys.argv[1:] or ["digits"])[0]
    if data not in DATA:
        raise SystemExit(f"data: expected one of {sorted(DATA)}, got {data!r}")
    out: dict = {}
    for name, kw in (("defaults", {}), ("full", FULL)):
        t = time.time()
        r = run_score(ScoreConfig(data=data, progress=False, **DATA[data], **kw))
        out[name] = {"order": list(r["ranking"]["order"]),
                     "recommended": r["ranking"].get("recommended"),
                     "seconds": round(time.time() - t, 1)}
        print(name, json.dumps(out[name]), flush=True)
    out["same_order"] = out["defaults"]["order"] == out["full"]["order"]
    out["same_top3"] = out["defaults"]["order"][:3] == out["full"]["order"][:3]
    atomic_write_json(Path("benchmarks/results") / f"score_agreement_{data}.json", out)
    return out


if __name__ == "__main__":
    main()
