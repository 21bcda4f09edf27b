"""Effective rank (RankMe) and participation ratio of a feature cloud, per block and aggregated.

For centred features ``H`` (n x D) with singular values ``s_k``:

    p_k   = s_k / sum_j s_j
    erank = exp(-sum_k p_k log p_k)                       (RankMe; 1 <= erank <= min(n, D))
    PR    = (sum_k lambda_k)^2 / sum_k lambda_k^2,  lambda_k = s_k^2  (participation ratio)

A featurizer's value is the average over its blocks weighted by each block's number of
OT sub-problems (``H*W`` for a per-location block, 1 for a global one). A block is a tensor
``(n, D)`` (one sub-problem) or ``(n, L, D)`` (``L`` independent sub-problems, e.g. locations);
the value of an ``(n, L, D)`` block is the mean over its ``L`` sub-problems.

Computed in float64 with ``torch.linalg.svdvals`` (no library offers RankMe directly; it is
three lines on top of an SVD).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from featsel.diagnostics._blocks import as_blocks

__all__ = [
    "effective_rank",
    "participation_ratio",
    "spectrum",
    "BlockRank",
    "block_effective_rank",
]


def _check_features(h: Tensor, name: str = "h", min_samples: int = 2) -> Tensor:
    """Validate features ``h: (n, D)`` or ``(n, L, D)``; returns a float64 tensor."""
    if not isinstance(h, Tensor):
        h = torch.as_tensor(h)
    if h.ndim not in (2, 3):
        raise ValueError(f"{name}: expected a tensor of shape (num_samples, dim) or "
                         f"(num_samples, L, dim), got shape {tuple(h.shape)}")
    if h.shape[0] < min_samples:
        raise ValueError(f"{name}: expected at least {min_samples} samples, got {h.shape[0]}")
    if h.shape[-1] < 1:
        raise ValueError(f"{name}: expected dim >= 1, got shape {tuple(h.shape)}")
    if not h.is_floating_point():
        h = h.to(torch.float64)
    if not bool(torch.isfinite(h).all()):
        raise ValueError(f"{name}: features contain NaN or infinite values")
    return h.to(torch.float64)


def spectrum(h: Tensor) -> Tensor:
    """Singular values of the centred features, descending, float64.

    h: (n, D) -> (min(n, D),);  h: (n, L, D) -> (L, min(n, D)) (one spectrum per sub-problem).
    """
    h = _check_features(h)
    if h.ndim == 3:
        h = h.transpose(0, 1)  # (L, n, D)
    hc = h - h.mean(dim=-2, keepdim=True)
    return torch.linalg.svdvals(hc)


def _erank_from_s(s: Tensor) -> Tensor:
    """s: (..., k) singular values -> (...,) RankMe; 0 for an all-zero spectrum."""
    total = s.sum(-1, keepdim=True)
    p = s / total.clamp_min(torch.finfo(s.dtype).tiny)
    ent = -(torch.where(p > 0, p * torch.log(p), torch.zeros_like(p))).sum(-1)
    out = torch.exp(ent)
    return torch.where(total.squeeze(-1) > 0, out, torch.zeros_like(out))


def _pr_from_s(s: Tensor) -> Tensor:
    """s: (..., k) singular values -> (...,) participation ratio of lambda = s^2."""
    lam = s.square()
    num = lam.sum(-1).square()
    den = lam.square().sum(-1)
    return torch.where(den > 0, num / den.clamp_min(torch.finfo(s.dtype).tiny),
                       torch.zeros_like(num))


def effective_rank(h: Tensor) -> float:
    """RankMe effective rank of features ``h: (num_samples, dim)`` (float).

    For an ``(n, L, D)`` block, the mean over the ``L`` sub-problems. A constant cloud gives 0.
    """
    return float(_erank_from_s(spectrum(h)).mean())


def participation_ratio(h: Tensor) -> float:
    """Participation ratio ``(sum lambda)^2 / sum lambda^2`` of the covariance spectrum of
    ``h: (num_samples, dim)`` (mean over sub-problems for ``(n, L, D)``)."""
    return float(_pr_from_s(spectrum(h)).mean())


@dataclass
class BlockRank:
    """Effective rank per block and the block-weighted aggregate.

    ``per_block[name]`` and ``participation[name]``: the block's value; ``weights[name]``: its
    weight in the aggregate (1 per block by default, or its number of sub-problems);
    ``spectra[name]``: mean normalised spectrum ``p_k`` (for plots).
    """

    effective_rank: float
    participation_ratio: float
    per_block: dict[str, float] = field(default_factory=dict)
    participation: dict[str, float] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)
    spectra: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "effective_rank": self.effective_rank,
            "participation_ratio": self.participation_ratio,
            "per_block": dict(self.per_block),
            "participation": dict(self.participation),
            "weights": dict(self.weights),
            "spectra": {k: list(v) for k, v in self.spectra.items()},
        }


BLOCK_WEIGHTINGS = ("block", "problems")


def block_effective_rank(blocks: Mapping[str, object] | Tensor,
                         weights: Mapping[str, int] | None = None, *,
                         weighting: str = "block") -> BlockRank:
    """Effective rank and participation ratio per block, aggregated over blocks.

    blocks: ``{name: (n, D) or (n, L, D) or featsel.features.Block}`` (a bare tensor is one
    block named "features"). A block's value is the mean over its L sub-problems.
    weighting: ``"block"`` (default): every block weighs the same, ``w_b = 1``: the L
    sub-problems of a per-location block are L estimates of one view of the features, not L
    views, and counting them L times let 1-d per-pixel blocks of grey images (effective rank 1)
    drown every other block; ``"problems"``: ``w_b = L_b`` (the earlier rule, and the
    training loss's gradient weight). weights: explicit ``w_b`` per block (overrides both).

        aggregate = sum_b w_b * erank_b / sum_b w_b
    """
    if weighting not in BLOCK_WEIGHTINGS:
        raise ValueError(f"weighting: expected one of {BLOCK_WEIGHTINGS}, got {weighting!r}")
    blocks = as_blocks(blocks, "blocks")
    per, part, wts, spec = {}, {}, {}, {}
    for name, h in blocks.items():
        s2 = spectrum(h)  # (L, k)
        per[name] = float(_erank_from_s(s2).mean())
        part[name] = float(_pr_from_s(s2).mean())
        p = s2 / s2.sum(-1, keepdim=True).clamp_min(torch.finfo(s2.dtype).tiny)
        spec[name] = p.mean(0).tolist()
        default_w = int(s2.shape[0]) if weighting == "problems" else 1
        w = default_w if weights is None else int(weights.get(name, default_w))
        if w < 1:
            raise ValueError(f"weights[{name!r}]: expected a positive integer, got {w}")
        wts[name] = w
    total = sum(wts.values())
    agg = sum(wts[k] * per[k] for k in per) / total
    agg_pr = sum(wts[k] * part[k] for k in part) / total
    return BlockRank(agg, agg_pr, per, part, wts, spec)
