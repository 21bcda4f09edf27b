"""Stage 2 of `featsel score`: every featurizer's features on the pool, extracted once for all
diagnostics, and the noise controls added to the candidates.

Blocks for rank and Delta_OT are the training blocks (per_loc / global_mean / global_std, or
global), without the input-RMS block (identical for every candidate). Alignment and couplings
use one vector per sample, the *summary vector* (:func:`summary_vector`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from featsel.scoring.config import ScoreConfig
from featsel.scoring.plan import ScorePlan
from featsel.scoring.progress import Timer

__all__ = ["SUMMARY_FLAT_MAX", "ScoreFeatures", "featurize", "summary_vector"]

SUMMARY_FLAT_MAX = 4096


@dataclass
class ScoreFeatures:
    """The features every diagnostic reads.

    featurizers: spec -> featurizer, for candidates, controls and evaluation featurizers;
    vectors: spec -> ``(n_pool, D)`` summary vector, for the same specs; blocks: scored spec ->
    ``{block: (n_pool, L, D)}`` training blocks; controls: the scored controls (candidates that
    are controls, then the added ones); scored: candidates, then added controls.
    """

    featurizers: dict[str, Any]
    vectors: dict[str, Tensor]
    blocks: dict[str, dict[str, Tensor]]
    controls: list[str]
    scored: list[str]


def summary_vector(maps: list[Tensor]) -> Tensor:
    """maps: list of (N, C, H, W) / (N, C) -> (N, D): per map, the flattened map when it has
    at most ``SUMMARY_FLAT_MAX`` entries per sample (pixels, small latents), else its spatial
    mean and std per channel; each part divided by its mean row norm; concatenated (the form
    used by alignment and couplings)."""
    parts = []
    for m in maps:
        m = m.float()
        if m.ndim == 4 and m[0].numel() > SUMMARY_FLAT_MAX:
            f = m.flatten(2)
            v = torch.cat([f.mean(2), f.std(2, correction=0)], dim=1)
        else:
            v = m.reshape(len(m), -1)
        scale = v.norm(dim=1).mean().clamp_min(1e-12)
        parts.append(v / scale)
    return torch.cat(parts, dim=1)


def featurize(plan: ScorePlan, cfg: ScoreConfig, timer: Timer) -> ScoreFeatures:
    """Create every featurizer (timed as "featurizers"; all are created before any extraction,
    so an unknown name fails before long work), extract their maps (timed as "extract",
    cached), then add the controls. Raises one clear error for non-finite features."""
    from featsel.cache import FeatureCache
    from featsel.features import create_featurizer, extract_features, to_blocks
    from featsel.features.controls import is_control

    cache = FeatureCache() if cfg.cache else None
    feats: dict[str, Any] = {}
    maps: dict[str, list[Tensor]] = {}

    def extract(specs: list[str]) -> None:
        with timer("featurizers"):
            for spec in specs:
                feats[spec] = create_featurizer(spec, space=plan.space, fit_data=plan.u)
        with timer("extract"):
            for spec in specs:
                maps[spec] = extract_features(feats[spec], plan.u, batch_size=cfg.batch_size,
                                              device=cfg.device, progress=cfg.progress,
                                              cache=cache, data_id=plan.data_id)
                for m in maps[spec]:
                    if not bool(torch.isfinite(m).all()):
                        raise ValueError(f"featurizer {spec!r}: features contain NaN or "
                                         "infinite values")

    def training_blocks(spec: str) -> dict[str, Tensor]:
        return {k: b.x for k, b in to_blocks(maps[spec], feats[spec].map_names, None).items()}

    cands = plan.candidates
    extract(list(dict.fromkeys(cands + plan.evaluations)))
    vectors = {spec: summary_vector(m) for spec, m in maps.items()}
    blocks = {c: training_blocks(c) for c in cands}
    controls = ([c for c in cands if is_control(c)] +
                (_controls_for(cands, {c: max(v.shape[-1] for v in blocks[c].values())
                                       for c in cands}) if cfg.controls else []))
    new = [c for c in controls if c not in feats]
    if new:
        extract(new)
        vectors.update({spec: summary_vector(maps[spec]) for spec in new})
    # a control may already be an evaluation featurizer: its maps are there, its blocks not
    blocks.update({c: training_blocks(c) for c in controls if c not in blocks})
    return ScoreFeatures(featurizers=feats, vectors=vectors, blocks=blocks, controls=controls,
                         scored=list(dict.fromkeys(cands + controls)))


def _controls_for(cands: list[str], dims: dict[str, int]) -> list[str]:
    """noise:dim=1 and noise:dim=<largest block dimension of the candidates> (the largest OT
    sub-problem any candidate poses), unless already candidates."""
    want = ["noise:dim=1", f"noise:dim={max(dims.values())}"]
    return [c for c in dict.fromkeys(want) if c not in cands]
