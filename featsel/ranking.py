"""Rank candidate featurizers by one criterion, with every other diagnostic beside it.

Order: by the ranking criterion (``criterion``, a name in
``featsel.diagnostics.criteria.CRITERIA``; without it, ascending Delta_OT at the chosen tau,
the paper's criterion). Two candidates are *tied* when their bootstrap intervals overlap;
the ranking states the ties instead of hiding them. When the recommendation is tied with another
real candidate, ``tied_best`` names them and ``tie_break`` says how to separate them (more draws
where the criterion's interval comes from draws, else training both), so a headline never names
one "best" the intervals cannot tell apart.

Controls (``CandidateScores.control``: features with no information about the data) are
ranked with the others, so a reader sees where they land, but the recommendation never names
one: it is the best real candidate, and only when the criterion ranks every control below every
real candidate (``valid``). A criterion that places a control above a real candidate measures
something other than what the features can teach a generator on this data, so it recommends
nothing here (``recommended`` None, ``invalid_reason`` says why). A recommendation of effective
rank below ``featsel.defaults.LOW_EFFECTIVE_RANK`` is kept with a ``caution`` (nearly 1-d
sub-problems; :func:`low_rank_caution`), as is one made by a featurizer kind in
``featsel.defaults.CAUTION_KINDS`` (:func:`encoder_caution`). Each candidate gets a one-line explanation
of its place. :func:`mean_fd_rank` is the paper's Table 4 aggregate: rank configurations within
each evaluation metric (1 = lowest FD, ties share the mean rank), then average over metrics.

Inputs and outputs are plain data (dataclasses with ``to_dict``), so ``reports`` can render them
without importing featsel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["CandidateScores", "RankedCandidate", "Ranking", "rank_candidates", "mean_fd_rank",
           "tie_advice", "low_rank_caution", "encoder_caution"]


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
    criteria: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> mean/ci
    control: bool = False
    kind: str | None = None  # the featurizer's registry name (e.g. mlp-vae for a checkpoint)


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

    def row(self, tau: float, criterion: str | None = None) -> dict:
        s = self.scores
        key = criterion or f"delta_ot@{tau:g}"  # the ranking column, its interval beside it
        out = {"rank": self.rank, "candidate": self.name, "control": s.control, key: self.delta,
               "ci_low": self.ci_low, "ci_high": self.ci_high,
               "tied_with": ", ".join(self.tied_with)}
        for name, v in s.criteria.items():
            if name != criterion and name != "delta_ot":
                out[name] = v.get("mean")
            if v.get("unconditional") is not None:  # the whole-pool draw beside the per-class
                out[f"{name}[all]"] = v["unconditional"]
        for t in sorted(s.delta):
            out.setdefault(f"delta_ot@{t:g}", s.delta[t]["mean"])
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
    criterion: str | None = None          # None: Delta_OT at tau (the paper's)
    lower_is_better: bool = True
    recommended: str | None = None        # the best real candidate, when the criterion is valid
    valid: bool = True                    # every control ranked below every real candidate
    invalid_reason: str = ""
    validity: dict[str, dict] = field(default_factory=dict)  # every criterion's control check
    tied_best: list[str] = field(default_factory=list)      # real candidates tied with the best
    tied_controls: list[str] = field(default_factory=list)  # controls tied with the best
    tie_break: str = ""                   # how to separate a tied recommendation
    caution: str = ""                     # e.g. the recommendation's effective rank is < 2
    flag_summary: dict = field(default_factory=dict)  # what the flags change (see flag_summary)

    @property
    def order(self) -> list[str]:
        return [c.name for c in self.candidates]

    def rows(self) -> list[dict]:
        return [c.row(self.tau, self.criterion) for c in self.candidates]

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
            "criterion": self.criterion or f"delta_ot@{self.tau:g}",
            "lower_is_better": self.lower_is_better,
            "recommended": self.recommended,
            "valid": self.valid,
            "invalid_reason": self.invalid_reason,
            "controls": [c.name for c in self.candidates if c.scores.control],
            "validity": dict(self.validity),
            "tied_best": list(self.tied_best),
            "tied_controls": list(self.tied_controls),
            "caution": self.caution,
            "tie_break": self.tie_break,
            "flag_summary": dict(self.flag_summary),
        }


def _scores_dict(s: CandidateScores) -> dict:
    d = asdict(s)
    d["delta"] = {f"{t:g}": v for t, v in s.delta.items()}
    return d


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _overlap(da: dict, db: dict) -> bool:
    return da["ci_low"] <= db["ci_high"] and db["ci_low"] <= da["ci_high"]


def control_violations(values: Mapping[str, float], controls: Sequence[str], *,
                       lower_is_better: bool) -> list[tuple[str, str]]:
    """``[(control, real candidate)]`` pairs where the control's value is strictly better.

    values: ``{candidate: value}`` (None/NaN values are left out); controls: the control names.
    """
    sign = 1.0 if lower_is_better else -1.0
    ok = {k: float(v) for k, v in values.items() if v is not None and np.isfinite(v)}
    ctrl = [c for c in ok if c in set(controls)]
    real = [c for c in ok if c not in set(controls)]
    return [(c, r) for c in ctrl for r in real if sign * ok[c] < sign * ok[r]]


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


def low_rank_caution(name: str, effective_rank: float,
                     threshold: float | None = None) -> str:
    """A caution for a recommendation whose effective rank is below ``threshold`` (default
    ``featsel.defaults.LOW_EFFECTIVE_RANK``), else "". Nearly 1-d OT sub-problems match little
    beyond per-location marginals; whether that trains a good generator is an empirical
    question (it did on the bundled digits), so the caution asks for a check, not a switch."""
    from featsel import defaults as D

    t = D.LOW_EFFECTIVE_RANK if threshold is None else float(threshold)
    if not effective_rank < t:
        return ""
    return (f"{name} has effective rank {effective_rank:.2f} (below {t:g}): its OT sub-problems "
            "are nearly one-dimensional, so matching in it constrains per-location marginals "
            "more than joint structure; confirm it against a higher-rank candidate with "
            "featsel validate")


def encoder_caution(name: str, kind: str | None, kinds: Sequence[str] | None = None) -> str:
    """A caution for a recommendation made by a featurizer kind in ``kinds`` (default
    ``featsel.defaults.CAUTION_KINDS``: the MLP VAE encoders of ``featsel pretrain vae``), else
    "". In the project's studies such couplings were often ranked first without training and
    trained below the PCA candidates, their generators off the data: no training-free criterion
    saw it, a first rung of ``featsel select`` did every time."""
    from featsel import defaults as D

    if kind is None or kind not in (D.CAUTION_KINDS if kinds is None else tuple(kinds)):
        return ""
    return (f"{name} is a {kind} encoder: in every study of the project such a coupling trained "
            "below every PCA candidate (where measured, its generators off the data), while "
            "training-free criteria often ranked it first (README, 'What predicts the trained "
            "outcome'); confirm it with featsel select before training it in full")


def tie_advice(best: str, tied: Sequence[str], *, from_draws: bool,
               repeats_option: str | None) -> str:
    """One sentence on how to separate ``best`` from the candidates tied with it.

    from_draws: the criterion's intervals come from random draws (more draws narrow them);
    repeats_option: the command-line option that sets those draws, when there is one.
    """
    both = ",".join([best, *tied])
    train = f"train them and compare (featsel validate --featurizers {both}, same --data)"
    if from_draws and repeats_option:
        return (f"more draws narrow the intervals (rerun with a larger {repeats_option}); "
                f"if they still overlap, {train}")
    if from_draws:
        return f"no option adds draws behind this criterion's intervals, so {train}"
    return f"the criterion has no interval to narrow, so {train}"


def rank_candidates(candidates: Sequence[CandidateScores], *, tau: float = 0.05,
                    flags: Sequence = (), criterion: str | None = None,
                    lower_is_better: bool = True, label: str | None = None,
                    evaluations: Sequence[str] | None = None,
                    repeats_option: str | None = None) -> Ranking:
    """Order by ``criterion`` (``CandidateScores.criteria[criterion]``; default: Delta_OT at
    ``tau``), state ties, explain each place in one line, check the controls.

    flags: metric-hacking flags (objects with candidate/evaluation/r2, or dicts);
    evaluations: every evaluation featurizer (for ``flag_summary``; default: those flagged);
    repeats_option: the command-line option that adds draws behind this criterion's
    intervals, named in ``tie_break`` (None: no option does).
    """
    if not candidates:
        raise ValueError("candidates: expected at least one candidate")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ValueError(f"candidates: names must be unique, got {names}")
    tau = float(tau)
    if criterion is None:
        label = label or "Delta_OT"
        for c in candidates:
            if tau not in c.delta:
                raise ValueError(f"candidates[{c.name!r}]: no Delta_OT at tau={tau:g} "
                                 f"(has {sorted(c.delta)})")
        value = {c.name: c.delta[tau] for c in candidates}
        where = f" at tau={tau:g}"
    else:
        label = label or criterion
        missing = [c.name for c in candidates if c.criteria.get(criterion) is None
                   or c.criteria[criterion].get("mean") is None]
        if missing:
            raise ValueError(f"criterion: {criterion!r} was not computed for {missing}")
        value = {c.name: c.criteria[criterion] for c in candidates}
        where = ""
    sign = 1.0 if lower_is_better else -1.0
    flag_dicts = [f.to_dict() if hasattr(f, "to_dict") else dict(f) for f in flags]
    ordered = sorted(candidates, key=lambda c: (sign * value[c.name]["mean"], c.name))
    controls = [c.name for c in candidates if c.control]
    viol = control_violations({k: v["mean"] for k, v in value.items()}, controls,
                              lower_is_better=lower_is_better)
    real = [c for c in ordered if not c.control]
    valid = not viol
    reason = ""
    if viol:
        pairs = ", ".join(f"{c} above {r}" for c, r in viol[:4]) + (" ..." if len(viol) > 4 else "")
        reason = (f"{label} ranks a control above a real candidate ({pairs}): on this data it "
                  "does not measure what the features can teach a generator, so it recommends "
                  "nothing")
    recommended = real[0].name if (real and valid) else None
    best = real[0] if real else ordered[0]
    better = "lowest" if lower_is_better else "highest"
    fdr = mean_fd_rank({c.name: c.fd for c in ordered}) if all(c.fd for c in ordered) else {}
    out: list[RankedCandidate] = []
    for i, c in enumerate(ordered):
        d = value[c.name]
        ties = [o.name for o in ordered if o is not c and _overlap(d, value[o.name])]
        parts = [f"{_ordinal(i + 1)} of {len(ordered)}"]
        if c.control:
            parts.append("control (features without information about the data)")
        if c is best and not c.control:
            among = " among the real candidates" if controls else ""
            parts.append(f"{better} {label} {d['mean']:.3g} (95% CI {d['ci_low']:.3g}-"
                         f"{d['ci_high']:.3g}){where}{among}")
        else:
            parts.append(f"{label} {d['mean']:.3g} (95% CI {d['ci_low']:.3g}-{d['ci_high']:.3g}),"
                         f" {d['mean'] - value[best.name]['mean']:+.3g} vs the best ({best.name})")
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
    tied_best: list[str] = []
    tied_controls: list[str] = []
    advice = ""
    if recommended is not None:
        ties = next(c.tied_with for c in out if c.name == recommended)
        is_control = {c.name: c.control for c in candidates}
        tied_best = [t for t in ties if not is_control[t]]
        tied_controls = [t for t in ties if is_control[t]]
        if tied_best:
            from_draws = any(v["ci_high"] > v["ci_low"] for v in value.values())
            advice = tie_advice(recommended, tied_best, from_draws=from_draws,
                                repeats_option=repeats_option)
    caution = ""  # the recommendation is real[0] when there is one
    if recommended is not None:
        parts = [low_rank_caution(recommended, real[0].effective_rank)
                 if real[0].effective_rank is not None else "",
                 encoder_caution(recommended, real[0].kind)]
        caution = "; also ".join(p for p in parts if p)
    # imported here: featsel.diagnostics pulls in torch, and ranking is plain-data code
    from featsel.diagnostics.hacking import flag_summary

    real_names = [c.name for c in candidates if not c.control]
    return Ranking(tau, out, flag_dicts, fdr, criterion=criterion,
                   lower_is_better=lower_is_better, recommended=recommended, valid=valid,
                   invalid_reason=reason, tied_best=tied_best, tied_controls=tied_controls,
                   tie_break=advice, caution=caution,
                   flag_summary=flag_summary(flag_dicts, real_names, evaluations, recommended))
