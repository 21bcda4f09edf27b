"""Rank candidate featurizers by OT matching stability, with every other diagnostic beside it.

Order: ascending Delta_OT at the chosen tau (the paper's criterion: lower = more stable
minibatch transport targets). Two candidates are *tied* when their bootstrap intervals overlap;
the ranking states the ties instead of hiding them. Each candidate gets a one-line explanation
of its place. :func:`mean_fd_rank` is the paper's Table 4 aggregate: rank configurations within
each evaluation metric (1 = lowest FD, ties share the mean rank), then average over metrics.

Inputs and outputs are plain data (dataclasses with ``to_dict``), so ``reports`` can render them
without importing featsel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["CandidateScores", "RankedCandidate", "Ranking", "rank_candidates", "mean_fd_rank"]


@dataclass
class CandidateScores:
    """Diagnostics of one candidate featurizer.

    delta: ``{tau: {"mean", "ci_low", "ci_high"}}``; alignment: ``{evaluation: R^2}``;
    fd: ``{evaluation: FD}`` (optional, e.g. from trained generators).
    """

    name: str
    delta: dict[float, dict[str, float]]
    effective_rank: float | None = None
    participation_ratio: float | None = None
    alignment: dict[str, float] = field(default_factory=dict)
    same_class_mass: float | None = None
    chance_mass: float | None = None
    curve_slope: float | None = None
    fd: dict[str, float] = field(default_factory=dict)
    dim: int | None = None


@dataclass
class RankedCandidate:
    rank: int
    name: str
    delta: float
    ci_low: float
    ci_high: float
    tied_with: list[str]
    explanation: str
    scores: CandidateScores

    def row(self, tau: float) -> dict:
        s = self.scores
        out = {
            "rank": self.rank, "candidate": self.name, f"delta_ot@{tau:g}": self.delta,
            "ci_low": self.ci_low, "ci_high": self.ci_high,
            "tied_with": ", ".join(self.tied_with),
        }
        for t in sorted(s.delta):
            if t != tau:
                out[f"delta_ot@{t:g}"] = s.delta[t]["mean"]
        out.update({
            "effective_rank": s.effective_rank, "participation_ratio": s.participation_ratio,
            "same_class_mass": s.same_class_mass, "chance_mass": s.chance_mass,
            "curve_slope": s.curve_slope, "dim": s.dim,
        })
        for e, v in sorted(s.alignment.items()):
            out[f"r2[{e}]"] = v
        for e, v in sorted(s.fd.items()):
            out[f"fd[{e}]"] = v
        out["explanation"] = self.explanation
        return out


@dataclass
class Ranking:
    tau: float
    candidates: list[RankedCandidate]
    flags: list[dict] = field(default_factory=list)
    mean_fd_rank: dict[str, float] = field(default_factory=dict)

    @property
    def order(self) -> list[str]:
        return [c.name for c in self.candidates]

    def rows(self) -> list[dict]:
        return [c.row(self.tau) for c in self.candidates]

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows())

    def to_dict(self) -> dict:
        return {
            "tau": self.tau,
            "order": self.order,
            "table": self.rows(),
            "explanations": {c.name: c.explanation for c in self.candidates},
            "flags": list(self.flags),
            "mean_fd_rank": dict(self.mean_fd_rank),
            "candidates": {c.name: _scores_dict(c.scores) for c in self.candidates},
        }


def _scores_dict(s: CandidateScores) -> dict:
    d = asdict(s)
    d["delta"] = {f"{t:g}": v for t, v in s.delta.items()}
    return d


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _overlap(a: CandidateScores, b: CandidateScores, tau: float) -> bool:
    da, db = a.delta[tau], b.delta[tau]
    return da["ci_low"] <= db["ci_high"] and db["ci_low"] <= da["ci_high"]


def mean_fd_rank(fd: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Paper Table 4: ``{config: {metric: FD}}`` -> ``{config: mean rank over metrics}``.

    Within each metric, configurations are ranked by FD (1 = best; equal FDs share the average
    rank); only metrics reported for every configuration are used.
    """
    from scipy.stats import rankdata

    names = list(fd)
    if not names:
        return {}
    metrics = sorted(set.intersection(*(set(fd[n]) for n in names)))
    if not metrics:
        raise ValueError("fd: no evaluation metric is reported for every configuration")
    ranks = np.stack([rankdata([fd[n][m] for n in names]) for m in metrics])  # (metrics, names)
    return {n: float(r) for n, r in zip(names, ranks.mean(0))}


def rank_candidates(candidates: Sequence[CandidateScores], *, tau: float = 0.05,
                    flags: Sequence = ()) -> Ranking:
    """Order by Delta_OT at ``tau`` (ascending), state ties, explain each place in one line.

    flags: metric-hacking flags (objects with candidate/evaluation/r2, or dicts).
    """
    if not candidates:
        raise ValueError("candidates: expected at least one candidate")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ValueError(f"candidates: names must be unique, got {names}")
    tau = float(tau)
    for c in candidates:
        if tau not in c.delta:
            raise ValueError(f"candidates[{c.name!r}]: no Delta_OT at tau={tau:g} "
                             f"(has {sorted(c.delta)})")
    flag_dicts = [f.to_dict() if hasattr(f, "to_dict") else dict(f) for f in flags]
    ordered = sorted(candidates, key=lambda c: (c.delta[tau]["mean"], c.name))
    best = ordered[0]
    fdr = mean_fd_rank({c.name: c.fd for c in ordered}) if all(c.fd for c in ordered) else {}
    out: list[RankedCandidate] = []
    for i, c in enumerate(ordered):
        d = c.delta[tau]
        ties = [o.name for o in ordered if o is not c and _overlap(c, o, tau)]
        parts = [f"{_ordinal(i + 1)} of {len(ordered)}"]
        if i == 0:
            parts.append(f"lowest Delta_OT {d['mean']:.3g} (95% CI {d['ci_low']:.3g}-"
                         f"{d['ci_high']:.3g}) at tau={tau:g}")
        else:
            parts.append(f"Delta_OT {d['mean']:.3g} (95% CI {d['ci_low']:.3g}-{d['ci_high']:.3g}),"
                         f" {d['mean'] - best.delta[tau]['mean']:+.3g} vs the best ({best.name})")
        parts.append(f"tied with {', '.join(ties)} (intervals overlap)" if ties
                     else "separated from the others")
        if c.effective_rank is not None:
            parts.append(f"effective rank {c.effective_rank:.1f}")
        if c.same_class_mass is not None and c.chance_mass:
            parts.append(f"same-class coupling mass {c.same_class_mass:.2f} "
                         f"(chance {c.chance_mass:.2f})")
        mine = [f for f in flag_dicts if f.get("candidate") == c.name]
        if mine:
            parts.append("FD not independent evidence for " +
                         ", ".join(str(f.get("evaluation")) for f in mine))
        if fdr:
            parts.append(f"mean FD rank {fdr[c.name]:.2f}")
        out.append(RankedCandidate(i + 1, c.name, d["mean"], d["ci_low"], d["ci_high"], ties,
                                   "; ".join(parts) + ".", c))
    return Ranking(tau, out, flag_dicts, fdr)
