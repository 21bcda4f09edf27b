"""What a ranking criterion reads and returns: `CandidateData` (one candidate's features, the
same samples in the generation space, labels, settings) and `CriterionValue` (value, interval,
details). A criterion is a function ``compute(data: CandidateData) -> CriterionValue | None``
registered in `featsel.diagnostics.criteria.CRITERIA`; this module imports nothing of the
registry, so a criterion's module can import it without a circle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

__all__ = ["CandidateData", "CriterionValue"]


@dataclass
class CandidateData:
    """Everything a criterion may read about one candidate.

    blocks: ``{block: (n_pool, L, D)}`` the training blocks (without the input-RMS block, the
    same for every candidate); vector: ``(n_pool, D)`` the summary vector (one per sample);
    u: ``(n_pool, ...)`` the same samples in the generation space; labels: ``(n_pool,)`` or
    None; n: the draws' minibatch size; settings: the score's settings (``ScoreConfig``);
    featurizer: the candidate's featurizer, set up for the generation space (criteria that run
    it on new points, e.g. the particle flow), or None when not available.
    """

    spec: str
    blocks: dict[str, Tensor]
    vector: Tensor
    u: Tensor
    labels: np.ndarray | None
    n: int
    seed: int
    settings: Any
    featurizer: Any = None
    memo: dict[str, Any] = field(default_factory=dict)
    # progress of the draws: draw_hook(stage) -> on_draw(done, total), or None (no progress)
    draw_hook: Callable[[str], Callable[[int, int], None]] | None = None

    def on_draw(self, stage: str) -> Callable[[int, int], None] | None:
        return None if self.draw_hook is None else self.draw_hook(stage)

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]


@dataclass
class CriterionValue:
    """A criterion's value for one candidate, its interval and any details for the report."""

    mean: float
    ci_low: float
    ci_high: float
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high,
                **self.details}
