"""The registry of ranking criteria: ``name -> Criterion(compute, lower_is_better, ...)``.

`featsel score` computes every registered criterion for every candidate (and control),
`featsel validate` correlates each with the trained outcome, and the report shows them all;
``featsel.defaults.RANK_CRITERION`` names the one that orders the candidates. Adding a criterion
is one module with a function ``compute(data: CandidateData) -> CriterionValue | None`` (the
types are in :mod:`featsel.diagnostics.candidate`, which imports nothing of the registry) and
one line in :data:`CRITERIA`.

A criterion's ``compute(data: CandidateData) -> CriterionValue | None`` reads one candidate's
features; ``None`` means "not defined here" (e.g. a class-coupling mass without labels). Costly
intermediate results that several criteria or the report share (the Delta_OT report over all
taus, the spectra) go through ``data.memo`` so they are computed once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from featsel.diagnostics.candidate import CandidateData, CriterionValue

__all__ = ["CRITERIA", "CandidateData", "Criterion", "CriterionValue", "get_criterion"]


@dataclass(frozen=True)
class Criterion:
    """A registered criterion: how to compute it and which direction is better."""

    name: str
    compute: Callable[[CandidateData], CriterionValue | None]
    lower_is_better: bool
    label: str            # short name for tables and sentences
    description: str      # one line: what it measures
    # the ScoreConfig flag that turns it on (a costly criterion computed only when asked);
    # None: always computed
    enabled_by: str | None = None
    # how many draws it reports through data.on_draw under these settings (sizes the progress
    # bar of a score; 0: it reports none)
    draws: Callable[[object], int] = lambda settings: 0

    def enabled(self, settings) -> bool:
        """Whether a score with these settings computes this criterion: always, when asked,
        or when it is the criterion that ranks (`--criterion`)."""
        return (self.enabled_by is None or bool(getattr(settings, self.enabled_by, False))
                or getattr(settings, "criterion", None) == self.name)


def _delta_ot(data: CandidateData) -> CriterionValue:
    st = data.cached("stability", lambda: _stability_report(data))
    t = st.per_tau[float(data.settings.tau)]
    return CriterionValue(t.mean, t.ci_low, t.ci_high, {"tau": float(data.settings.tau)})


def _stability_report(data: CandidateData):
    from featsel.diagnostics.stability import ot_stability_report

    s = data.settings
    return ot_stability_report(data.blocks, n=data.n, labels=data.labels, seed=data.seed,
                               taus=tuple(s.taus), n_repeats=s.n_repeats, recipe=s.recipe,
                               max_sub_problems=s.max_locations,
                               on_draw=data.on_draw("Delta_OT"))


def _rank(data: CandidateData):
    from featsel.diagnostics.rank import block_effective_rank

    return data.cached("rank", lambda: block_effective_rank(data.blocks))


def _effective_rank(data: CandidateData) -> CriterionValue:
    v = _rank(data).effective_rank
    return CriterionValue(v, v, v)


def _participation_ratio(data: CandidateData) -> CriterionValue:
    v = _rank(data).participation_ratio
    return CriterionValue(v, v, v)


def _transport(kind: str, **fixed) -> Callable[[CandidateData], CriterionValue]:
    def compute(data: CandidateData) -> CriterionValue:
        from featsel.diagnostics import transport

        s = data.settings
        fn = getattr(transport, kind)
        opts = {"eps_rule": s.eps_rule, "perplexity": s.perplexity, "tau": s.tau,
                "n_repeats": s.transport_repeats, "max_sub_problems": s.transport_max_locations,
                **fixed}
        r = fn(data.blocks, data.u, n=data.n, labels=data.labels, seed=data.seed,
               on_draw=data.on_draw(kind + ("_tau" if fixed else "")), **opts)
        return CriterionValue(r.mean, r.ci_low, r.ci_high,
                              {"unconditional": r.unconditional, "per_class": r.per_class,
                               "per_block": r.per_block, "perplexity": r.perplexity,
                               "eps_rule": r.eps_rule, "skipped_classes": r.skipped_classes,
                               "max_marginal_error": r.max_marginal_error})
    return compute


def _null_share(data: CandidateData) -> CriterionValue:
    from featsel.diagnostics.alignment import alignment

    v = data.vector.double()
    if float(v.std(0).max()) <= 1e-12:  # constant features predict nothing
        return CriterionValue(1.0, 1.0, 1.0, {"r2": 0.0, "constant_features": True})
    u = data.u.reshape(len(data.u), -1).double()
    r = alignment(v, u, n_train=data.settings.alignment_n_train, seed=data.seed,
                  normalise_psi=False)
    share = 1.0 - r.r2  # R^2 < 0 (worse than the mean) gives a share above 1
    return CriterionValue(share, share, share, {"r2": r.r2, "gamma": r.gamma, "ridge": r.ridge,
                                                "n_train": r.n_train, "n_test": r.n_test})


def _flow_fidelity(data: CandidateData) -> CriterionValue | None:
    from featsel.diagnostics.flow import particle_flow

    if data.featurizer is None:  # a criterion of features alone cannot run the flow
        return None
    s = data.settings
    r = particle_flow(data.featurizer, data.u, n=data.n, labels=data.labels, seed=data.seed,
                      steps=s.flow_steps, lr=s.flow_lr, on_draw=data.on_draw("flow"))
    return CriterionValue(r.mean, r.ci_low, r.ci_high,
                          {"per_class": r.per_class, "start": r.start, "end": r.end,
                           "moved": r.moved, "steps": r.steps,
                           "skipped_classes": r.skipped_classes})


def _inversion_share(data: CandidateData) -> CriterionValue | None:
    from featsel.diagnostics.inversion import inversion_share

    if data.featurizer is None:  # a criterion of features alone cannot follow the gradient
        return None
    r = inversion_share(data.featurizer, data.u, n=data.n, labels=data.labels, seed=data.seed,
                        steps=data.settings.inversion_steps, on_draw=data.on_draw("inversion"))
    return CriterionValue(r.mean, r.ci_low, r.ci_high,
                          {"per_class": r.per_class, "moved": r.moved,
                           "final_loss": r.final_loss, "steps": r.steps,
                           "skipped_classes": r.skipped_classes})


def _same_class_mass(data: CandidateData) -> CriterionValue | None:
    cp = data.memo.get("coupling")
    if cp is None:
        return None
    v = float(cp.same_class_mass)
    return CriterionValue(v, v, v, {"chance": float(cp.chance)})


# The registry: one line per criterion.
CRITERIA: dict[str, Criterion] = {c.name: c for c in (
    Criterion("transport_fidelity", _transport("transport_fidelity"), True, "pc_u",
              "cost in the generation space of the feature plans, relative to the independent "
              "coupling (1 = no information; matched perplexity)",
              draws=lambda s: s.transport_repeats),
    Criterion("transport_fidelity_tau", _transport("transport_fidelity", eps_rule="tau"), True,
              "pc_u@tau", "transport fidelity with eps = tau std(C_feat) instead of matched "
              "perplexity", draws=lambda s: s.transport_repeats),
    Criterion("target_stability", _transport("target_stability"), True, "stab_u",
              "disagreement in the generation space of the targets of two target draws",
              draws=lambda s: s.transport_repeats),
    Criterion("null_share", _null_share, True, "1-R2(u)",
              "share of the generation space the features do not predict (held-out kernel "
              "ridge)"),
    Criterion("flow_fidelity", _flow_fidelity, True, "flow_u",
              "energy distance to held-out data of particles moved by the training field, "
              "relative to their start (1 = not moved; particle flow)", enabled_by="flow",
              draws=lambda s: s.flow_steps),
    Criterion("inversion_share", _inversion_share, True, "inv_u",
              "share of the way from one sample to another that following the features' "
              "gradient does not cover, in the generation space (1 = not moved)",
              enabled_by="inversion", draws=lambda s: 2 * s.inversion_steps),
    Criterion("delta_ot", _delta_ot, True, "Delta_OT",
              "feature-space disagreement of two minibatch transport targets (paper eq. 16)",
              draws=lambda s: s.n_repeats),
    Criterion("effective_rank", _effective_rank, False, "erank",
              "effective rank of the feature blocks (RankMe), mean over blocks"),
    Criterion("participation_ratio", _participation_ratio, False, "PR",
              "participation ratio of the feature blocks, mean over blocks"),
    Criterion("same_class_mass", _same_class_mass, False, "same-class mass",
              "mass of the feature coupling between same-class samples"),
)}


def get_criterion(name: str) -> Criterion:
    """The registered criterion ``name``; an unknown name is one clear error."""
    if name not in CRITERIA:
        raise ValueError(f"criterion: unknown {name!r}; known: {sorted(CRITERIA)}")
    return CRITERIA[name]
