"""Training-free diagnostics of a feature space (definitions: docs/science.md, "Training-free
diagnostics"). Each is usable alone on tensors ``(num_samples, dim)``:

    effective_rank(h) -> float                  participation_ratio(h) -> float
    block_effective_rank(blocks) -> BlockRank   (per block, weighted by sub-problem count)
    ot_stability(pool, *, n, tau=0.05, source=None, labels=None, seed=0, ...) -> float
    ot_stability_report(pool, *, n, ...) -> StabilityResult   (all taus, per block/class, CI)
    stability_curve(pool, *, ns=None, tau=0.05, ...) -> StabilityCurve (Delta_OT(n), slope)
    alignment_r2(phi, psi, ...) -> float        alignment(phi, psi, ...) -> AlignmentResult
    frechet_distance(a, b) -> float             frechet_distance_from_statistics(mu1, s1, mu2, s2)
    FrechetReference, FrechetStatistics, save_statistics, load_statistics, fidelity_metrics
    class_coupling(x, y, *, x_labels, y_labels, tau) -> CouplingResult
    metric_hacking_flags(r2, ...) -> list[HackingFlag]
    transport_fidelity(features, u, *, n, labels=None, ...) -> TransportResult   (pc_u)
    target_stability(features, u, *, n, labels=None, ...) -> TransportResult
    CRITERIA: the registry of ranking criteria (featsel.diagnostics.criteria)
"""

from featsel.diagnostics.alignment import (
    AlignmentConfig,
    AlignmentResult,
    alignment,
    alignment_r2,
    alignment_table,
    fit_kernel_ridge,
)
from featsel.diagnostics.couplings import CouplingResult, class_coupling
from featsel.diagnostics.criteria import CRITERIA, Criterion, get_criterion
from featsel.diagnostics.frechet import (
    FrechetReference,
    FrechetStatistics,
    fidelity_metrics,
    frechet_distance,
    frechet_distance_from_statistics,
    gaussian_statistics,
    load_statistics,
    save_statistics,
)
from featsel.diagnostics.hacking import HackingFlag, metric_hacking_flags
from featsel.diagnostics.rank import (
    BlockRank,
    block_effective_rank,
    effective_rank,
    participation_ratio,
    spectrum,
)
from featsel.diagnostics.stability import (
    DEFAULT_TAUS,
    StabilityConfig,
    StabilityCurve,
    StabilityResult,
    barycentric_disagreement,
    bootstrap_interval,
    ot_stability,
    ot_stability_report,
    stability_curve,
)
from featsel.diagnostics.transport import (
    TransportConfig,
    TransportResult,
    target_stability,
    transport_fidelity,
)

__all__ = [
    "CRITERIA",
    "Criterion",
    "TransportConfig",
    "TransportResult",
    "get_criterion",
    "target_stability",
    "transport_fidelity",
    "AlignmentConfig",
    "AlignmentResult",
    "BlockRank",
    "CouplingResult",
    "DEFAULT_TAUS",
    "FrechetReference",
    "FrechetStatistics",
    "HackingFlag",
    "StabilityConfig",
    "StabilityCurve",
    "StabilityResult",
    "alignment",
    "alignment_r2",
    "alignment_table",
    "barycentric_disagreement",
    "block_effective_rank",
    "bootstrap_interval",
    "class_coupling",
    "effective_rank",
    "fidelity_metrics",
    "fit_kernel_ridge",
    "frechet_distance",
    "frechet_distance_from_statistics",
    "gaussian_statistics",
    "load_statistics",
    "metric_hacking_flags",
    "ot_stability",
    "ot_stability_report",
    "participation_ratio",
    "save_statistics",
    "spectrum",
    "stability_curve",
]
