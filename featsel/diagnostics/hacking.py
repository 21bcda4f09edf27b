"""Metric-hacking flags (paper Section 4.3, Appendix D).

A training featurizer aligned with an evaluation featurizer (kernel-ridge R^2 near 1, or the same
network) can improve that evaluation's Fréchet distance without better samples: the generator is
optimised directly in (a linear image of) the evaluation space. Such an FD is flagged as not
independent evidence for that candidate. The rule is a threshold on the alignment R^2
(``threshold``, default 0.9) or identity of the two featurizers (same name, or same weights
fingerprint when fingerprints are given).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

__all__ = ["HackingFlag", "metric_hacking_flags", "flag_summary", "DEFAULT_R2_THRESHOLD"]

DEFAULT_R2_THRESHOLD = 0.9


@dataclass
class HackingFlag:
    """FD of ``candidate``'s generator measured by ``evaluation`` is not independent evidence."""

    candidate: str
    evaluation: str
    reason: str
    r2: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.candidate} -> FD[{self.evaluation}]: {self.reason}"


def metric_hacking_flags(r2: Mapping[str, Mapping[str, float]] | None = None, *,
                         candidates: Iterable[str] | None = None,
                         evaluations: Iterable[str] | None = None,
                         threshold: float = DEFAULT_R2_THRESHOLD,
                         same_network: Iterable[tuple[str, str]] = (),
                         fingerprints: Mapping[str, str] | None = None) -> list[HackingFlag]:
    """Flags for every (candidate, evaluation) pair that is aligned or the same network.

    r2: ``{candidate: {evaluation: R^2}}``; candidates / evaluations default to r2's keys;
    same_network: explicit (candidate, evaluation) pairs sharing a network; fingerprints:
    ``{featurizer name: weights fingerprint}`` (equal fingerprints = same network).
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold: expected a value in (0, 1], got {threshold}")
    r2 = r2 or {}
    cands = list(candidates) if candidates is not None else list(r2)
    evals = list(evaluations) if evaluations is not None else sorted(
        {e for row in r2.values() for e in row})
    same = {(str(c), str(e)) for c, e in same_network}
    fps = dict(fingerprints or {})
    flags: list[HackingFlag] = []
    for c in cands:
        for e in evals:
            val = r2.get(c, {}).get(e)
            reasons = []
            if c == e or (c, e) in same or (c in fps and e in fps and fps[c] == fps[e]):
                reasons.append("same network as the evaluation featurizer")
            if val is not None and val >= threshold:
                reasons.append(f"features predict the evaluation features (R^2 = {val:.3f} "
                               f">= {threshold:g})")
            if reasons:
                flags.append(HackingFlag(c, e, "; ".join(reasons) +
                                         ": this FD is not independent evidence", val))
    return flags


def flag_summary(flags: Sequence[Mapping], candidates: Sequence[str],
                 evaluations: Sequence[str] | None = None,
                 recommended: str | None = None) -> dict:
    """What the flags change for the choice, so a report can say it in a sentence instead of
    listing every pair: on data where most candidates are aligned with the evaluation spaces
    most pairs are flagged, and only these consequences matter.

    flags: flag dicts (candidate, evaluation, reason); candidates: the real candidates;
    evaluations: every evaluation featurizer (default: those flagged). Returns ``{"pairs":
    candidates x evaluations, "flagged", "same_network": flagged pairs that share a network
    (featsel validate leaves those FDs out), "evaluations_all_flagged": evaluations flagged for
    every candidate (their FDs favour every candidate alike, so they cannot referee between
    them), "candidates_all_flagged": candidates flagged in every evaluation (no FD is
    independent evidence for them), "recommended_flagged": the recommendation's flagged
    evaluations}``.
    """
    cands = list(candidates)
    evals = list(evaluations) if evaluations is not None else sorted(
        {str(f.get("evaluation")) for f in flags})
    pairs = {(str(f.get("candidate")), str(f.get("evaluation"))) for f in flags}
    pairs = {(c, e) for c, e in pairs if c in cands and e in evals}
    same = {(str(f.get("candidate")), str(f.get("evaluation"))) for f in flags
            if "same network" in str(f.get("reason", ""))} & pairs
    return {
        "pairs": len(cands) * len(evals),
        "flagged": len(pairs),
        "same_network": len(same),
        "evaluations_all_flagged": [e for e in evals
                                    if len(cands) >= 2 and all((c, e) in pairs for c in cands)],
        "candidates_all_flagged": [c for c in cands
                                   if evals and all((c, e) in pairs for e in evals)],
        "recommended_flagged": [e for e in evals if (recommended, e) in pairs],
    }
