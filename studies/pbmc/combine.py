"""Paper Table 4 over both generation spaces of the PBMC study: one mean FD rank across all
(generation space / coupling space) configurations, as the paper ranks its six together.

Reads RUN/ambient/validation.json and RUN/pca/validation.json (written by run_full.sh). Every
evaluation featurizer measures against the same real cells in both generation spaces (`ambient`
and the VAE decode the generated cells to genes and compare with the raw cells; PCA-50 of the
PCA generation space is a rotation of PCA-50 of the genes, fitted on the same training cells), so
the FDs are comparable across the two sweeps. A configuration whose coupling space is an
evaluation space has both FDs there left out (metric hacking), as `featsel validate` does.
Delta_OT (tau 0.05) is each sweep's own score of the coupling space on its generation space's
samples.

Usage, from the repository root: python studies/pbmc/combine.py [RUN] [OUT]
(defaults runs/pbmc_full and studies/pbmc/full). Writes OUT/combined.json and OUT/combined.md.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from featsel.confirmation import bootstrap_agreement, mean_fd_over_seeds, mean_fd_rank_excluding

GEN = {"ambient": "ambient", "pca": "PCA-50"}


def short(spec: str) -> str:
    """A readable name for a candidate or evaluation spec."""
    if spec.endswith("featurizer.pt"):
        return "VAE-10"
    return {"ambient": "ambient", "pca:dim=50": "PCA-50", "pca:dim=16": "PCA-16"}.get(spec, spec)


def main(run: str = "runs/pbmc_full", out: str = "studies/pbmc/full") -> dict:
    fd: dict[str, dict[str, list[float]]] = {}
    delta: dict[str, float] = {}
    exclude: set[tuple[str, str]] = set()
    metrics: list[str] = []
    for sub, gname in GEN.items():
        v = json.loads((Path(run) / sub / "validation.json").read_text())
        tau = f"delta_ot@{float(v['settings']['tau']):g}"
        for m in v["fd_metrics"]:
            name = f"{m['kind']}[{short(m['evaluation'])}]"
            if name not in metrics:
                metrics.append(name)
        for row in v["table"]:
            c = row["candidate"]
            cfg = f"{gname} / {short(c)}"
            delta[cfg] = row[tau]
            fd[cfg] = {f"{m['kind']}[{short(m['evaluation'])}]":
                       v[m["kind"]][c][m["evaluation"]] for m in v["fd_metrics"]}
        for h in v["metric_hacking"]:
            cfg = f"{gname} / {short(h['candidate'])}"
            for k in ("fd", "cond_fd"):
                exclude.add((cfg, f"{k}[{short(h['evaluation'])}]"))
    table4 = mean_fd_rank_excluding(mean_fd_over_seeds(fd), exclude)
    agree = bootstrap_agreement(delta, fd, exclude=exclude, n_boot=1000, seed=0)
    within = {}
    for gname in GEN.values():
        sub = [c for c in fd if c.startswith(gname + " /")]
        within[gname] = bootstrap_agreement({c: delta[c] for c in sub}, {c: fd[c] for c in sub},
                                            exclude=exclude, n_boot=1000, seed=0)
    order = sorted(fd, key=lambda c: (table4["mean_rank"][c], c))
    res = {"configs": order, "delta_ot@0.05": delta, "mean_fd_rank": table4["mean_rank"],
           "ranks": table4["ranks"], "metrics": metrics, "excluded": sorted(map(list, exclude)),
           "mean_fd": mean_fd_over_seeds(fd), "agreement_all": agree,
           "agreement_within_generation_space": within}
    lines = ["| config (generation / coupling) | Delta_OT@0.05 | "
             + " | ".join(metrics) + " | mean FD rank |",
             "|---|---|" + "---|" * len(metrics) + "---|"]
    for c in order:
        cells = []
        for m in metrics:
            val = res["mean_fd"][c][m]
            cells.append(f"{val:.3g}" + ("*" if (c, m) in exclude else ""))
        mr = table4["mean_rank"][c]
        mr_s = f"{mr:.2f}" if math.isfinite(mr) else "-"
        lines.append(f"| {c} | {delta[c]:.3f} | " + " | ".join(cells) + f" | {mr_s} |")
    lines.append("")
    lines.append(f"Spearman (Delta_OT vs mean FD rank, all {len(fd)} configs): "
                 f"{agree['spearman']:+.2f} [{agree['spearman_ci'][0]:+.2f}, "
                 f"{agree['spearman_ci'][1]:+.2f}], Kendall {agree['kendall']:+.2f}")
    for g, a in within.items():
        lines.append(f"Within the {g} generation space: Spearman {a['spearman']:+.2f} "
                     f"[{a['spearman_ci'][0]:+.2f}, {a['spearman_ci'][1]:+.2f}], "
                     f"Kendall {a['kendall']:+.2f}")
    o = Path(out)
    o.mkdir(parents=True, exist_ok=True)
    for name, text in (("combined.json", json.dumps(res, indent=1, default=float)),
                       ("combined.md", "\n".join(lines) + "\n")):
        tmp = o / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, o / name)
    print("\n".join(lines))
    return res


if __name__ == "__main__":
    main(*sys.argv[1:3])
