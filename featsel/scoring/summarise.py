"""Stage 4 of `featsel score`: from the diagnostics to the results dict.

Unconverged Sinkhorn solves are marked and warned about; then the metric-hacking flags, the
ranking by the chosen criterion (``featsel.ranking``), every criterion's control check, the
settings actually used, the project's evidence for the criterion and the versions.
"""

from __future__ import annotations

import json
import platform
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from featsel import defaults as D
from featsel.ranking import CandidateScores, Ranking
from featsel.scoring.config import ScoreConfig
from featsel.scoring.featurize import ScoreFeatures
from featsel.scoring.plan import ScorePlan

__all__ = ["Summary", "evidence", "summarise", "unconverged"]


@dataclass
class Summary:
    """results: what results.json holds, but for ``timings`` (added when published);
    ranking: the same ranking as an object (its table is results.csv)."""

    results: dict[str, Any]
    ranking: Ranking


def summarise(plan: ScorePlan, features: ScoreFeatures, diagnostics: dict[str, dict],
              cfg: ScoreConfig) -> Summary:
    """The ranking and the results dict of one score (``diagnostics``: spec -> dict, as
    :func:`featsel.scoring.diagnose.diagnose` returns; not modified)."""
    from featsel.diagnostics import metric_hacking_flags
    from featsel.diagnostics.criteria import get_criterion
    from featsel.ranking import rank_candidates

    diagnostics, run_warnings = _mark_unconverged(diagnostics, cfg)
    controls, evals, cands = features.controls, plan.evaluations, plan.candidates
    scores = [_candidate_scores(spec, d, control=spec in controls,
                                dim=int(features.vectors[spec].shape[1]),
                                kind=getattr(features.featurizers.get(spec), "name", None))
              for spec, d in diagnostics.items()]
    flags = metric_hacking_flags({s.name: s.alignment for s in scores if not s.control},
                                 candidates=[c for c in cands if c not in controls],
                                 evaluations=evals, threshold=cfg.r2_threshold,
                                 fingerprints={k: f.fingerprint()
                                               for k, f in features.featurizers.items()})
    rank_by = get_criterion(cfg.criterion)
    ranking = rank_candidates(scores, tau=cfg.tau, flags=flags, criterion=rank_by.name,
                              lower_is_better=rank_by.lower_is_better, label=rank_by.label,
                              evaluations=evals,
                              repeats_option="--repeats" if rank_by.name == "delta_ot" else None)
    ranking.validity = _validity(scores, controls)
    settings = {**asdict(cfg), "data": plan.manifest.name,
                "manifest": str(plan.manifest.file or ""), "split": plan.split,
                "n_pool": len(plan.u), "n": plan.n, "classes": plan.dataset.class_names,
                "classes_left_out": plan.left_out, "n_draw_pool": len(plan.draw_index),
                "generation_space": plan.space.spec, "featurizers": cands, "controls": controls,
                "evaluations": evals, "curve_ns": plan.curve_ns,
                "coupling_size": len(plan.coupling_a)}
    results = {
        "warnings": run_warnings,
        "evidence": evidence(),
        "title": f"featsel score: {plan.manifest.name} ({len(cands)} candidates"
                 + (f" + {len(controls)} controls)" if controls else ")"),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": settings,
        "versions": _versions(),
        "ranking": ranking.to_dict(),
        "evaluations": evals,
        "diagnostics": diagnostics,
    }
    return Summary(results=results, ranking=ranking)


def unconverged(d: Any, limit: float, skip: tuple[str, ...] = (), path: str = "") -> list[str]:
    """Where in one candidate's diagnostics ``d`` a solve's ``max_marginal_error`` exceeds
    ``limit`` (dotted paths; sections named in ``skip`` are not searched)."""
    out: list[str] = []
    if isinstance(d, dict):
        for k, v in d.items():
            if k in skip and not path:
                continue
            where = f"{path}.{k}" if path else str(k)
            if k == "max_marginal_error" and isinstance(v, int | float) and v > limit:
                out.append(f"{path or 'solve'} ({v:.2g})")
            else:
                out += unconverged(v, limit, (), where)
    return out


def evidence() -> dict:
    """The project's record for its ranking criterion: ``featsel/evidence.json``, written by
    ``studies/summarize.py`` from the confirmation studies (Kendall tau of the criterion against
    the trained outcome per data set, with its interval and the data set's role). Empty when
    the file is missing."""
    path = Path(__file__).resolve().parents[1] / "evidence.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _mark_unconverged(diagnostics: dict[str, dict],
                      cfg: ScoreConfig) -> tuple[dict[str, dict], list[str]]:
    """The diagnostics with ``unconverged`` (where) added to each candidate whose solves did
    not converge, and one warning per such candidate (also warned: printed by the CLI). The
    paper recipe's Delta_OT solves stop at 4 iterations by design: not searched."""
    marked: dict[str, dict] = {}
    run_warnings: list[str] = []
    skip = ("stability",) if cfg.recipe == "paper" else ()
    for spec, d in diagnostics.items():
        bad = unconverged(d, D.MAX_MARGINAL_ERROR, skip=skip)
        marked[spec] = {**d, "unconverged": bad} if bad else d
        if bad:
            run_warnings.append(f"{spec}: Sinkhorn solves did not converge (L1 marginal error "
                                f"above {D.MAX_MARGINAL_ERROR:g}) in {', '.join(bad[:3])}"
                                + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
                                + "; their values are not trustworthy (raise tau/--taus)")
            warnings.warn(run_warnings[-1], stacklevel=4)
    return marked, run_warnings


def _candidate_scores(spec: str, d: dict, *, control: bool, dim: int,
                      kind: str | None = None) -> CandidateScores:
    """One candidate's diagnostics ``d`` as the ranking reads them."""
    st = d.get("stability", {}).get("per_tau", {})
    cp = d.get("coupling")
    return CandidateScores(
        name=spec,
        delta={float(t): {"mean": v["mean"], "ci_low": v["ci_low"], "ci_high": v["ci_high"]}
               for t, v in st.items()},
        effective_rank=d.get("rank", {}).get("effective_rank"),
        participation_ratio=d.get("rank", {}).get("participation_ratio"),
        alignment={e: r["r2"] for e, r in d.get("alignment", {}).items()},
        same_class_mass=cp["same_class_mass"] if cp else None,
        chance_mass=cp["chance"] if cp else None,
        curve_slope=d.get("curve", {}).get("slope"),
        dim=dim,
        criteria={k: {"mean": v["mean"], "ci_low": v["ci_low"], "ci_high": v["ci_high"],
                      **({"unconditional": v["unconditional"]}
                         if v.get("unconditional") is not None else {})}
                  for k, v in d["criteria"].items()},
        control=control,
        kind=kind,
    )


def _validity(scores: list[CandidateScores], controls: list[str]) -> dict[str, dict]:
    """Every computed criterion's control check: valid when it ranks every control below every
    real candidate (``control_above``: the pairs where it does not)."""
    from featsel.diagnostics.criteria import CRITERIA
    from featsel.ranking import control_violations

    validity = {}
    for name, crit in CRITERIA.items():
        vals = {s.name: s.criteria[name]["mean"] for s in scores if name in s.criteria}
        if not vals:
            continue
        viol = control_violations(vals, controls, lower_is_better=crit.lower_is_better)
        validity[name] = {"valid": not viol, "label": crit.label,
                          "lower_is_better": crit.lower_is_better,
                          "description": crit.description,
                          "control_above": [list(p) for p in viol]}
    return validity


def _cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else ``platform.processor()``. Recorded
    because BLAS libraries choose float kernels by CPU: the same code and seeds can give results
    that differ in the last digits between machines (seen: studies/mnist, addendum 6)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    from featsel import __version__

    out = {"featsel": __version__, "python": platform.python_version(),
           "platform": platform.platform(), "cpu": _cpu_model(),
           "torch_threads": str(torch.get_num_threads())}
    for pkg in ("torch", "numpy", "scipy", "scikit-learn", "pykeops", "timm", "matplotlib",
                "jinja2", "pandas"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out
