"""Evaluate a run: EMA samples over an alpha sweep, measured in every evaluation featurizer.

For each alpha in `alphas` (default `cfg.eval_alphas`): `n_per_class` samples of every class
with the EMA weights; for each evaluation featurizer of the data manifest
(`featurizers.evaluation`), the Fréchet distance to the real samples of the evaluation split
(`featsel.diagnostics.frechet_distance`, float64), plus KID and precision/recall from
torch-fidelity's feature functions (`fidelity_metrics`) where they run. An evaluation
featurizer's feature vector is its last map, flattened if global, mean-pooled over positions if
spatial. Real features go through `featsel.cache.FeatureCache`, so the real side (its
statistics) is computed once per (data, split, featurizer). Writes `eval.json` in the run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from generation.sample import generate, load_run

__all__ = ["evaluate_run", "feature_vectors"]


def feature_vectors(maps: list[Tensor]) -> Tensor:
    """Last map of a featurizer as (N, D): global (N, C) as is, spatial (N, C, H, W) pooled."""
    m = maps[-1]
    return m.mean(dim=(2, 3)) if m.ndim == 4 else m.flatten(1)


def evaluate_run(
    run: str | os.PathLike,
    *,
    n_per_class: int | None = None,
    alphas: list[float] | tuple[float, ...] | None = None,
    split: str | None = None,
    featurizers: list[str] | None = None,
    decay: float | None = None,
    device: str = "cpu",
    kid: bool = True,
    seed: int = 0,
    data: Any = None,
) -> dict[str, Any]:
    """Metrics of a run's EMA generator; also written to `run/eval.json` (atomically).

    split: real split to compare with (default "test" when the manifest has it, else the
    training split). featurizers: evaluation featurizer specs (default: the manifest's).
    data: optional (u_real (N, *shape), labels, space, u_train) tuple instead of loading
    (tests). Returns {"step", "decay", "n_per_class", "split", "alphas": {alpha: {spec:
    {"fd", "kid_mean", "kid_std", "precision", "recall", "f_score"}}}}.
    """
    from featsel.cache import FeatureCache
    from featsel.diagnostics.frechet import fidelity_metrics, frechet_distance
    from featsel.features import create_featurizer, extract_features

    model, cfg, meta = load_run(run, decay=decay, device=device)
    n_per_class = n_per_class or cfg.eval_n_per_class
    alphas = tuple(alphas or cfg.eval_alphas)
    if data is None:
        data, split, featurizers = _load_eval_data(cfg, split, featurizers)
    elif not featurizers:
        raise ValueError("featurizers must be given together with data")
    u_real, _, space, u_train = data
    K = model.num_classes
    labels = torch.arange(K).repeat_interleave(n_per_class)
    cache = FeatureCache()
    feats = {spec: create_featurizer(spec, space=space, fit_data=u_train,
                                     in_shape=tuple(u_real.shape[1:])) for spec in featurizers}
    real = {}
    for spec, f in feats.items():
        data_id = {"dataset": cfg.data, "split": split or "", "space": getattr(space, "spec", "")}
        real[spec] = feature_vectors(extract_features(f, u_real, cache=cache, data_id=data_id,
                                                      device=device, progress=False))
    results: dict[str, Any] = {}
    for a in alphas:
        u_gen = generate(model, labels, float(a), seed=seed).cpu()
        res = {}
        for spec, f in feats.items():
            g = feature_vectors(extract_features(f, u_gen, device=device, progress=False))
            entry: dict[str, Any] = {"fd": frechet_distance(g, real[spec])}
            if kid:
                try:
                    m = fidelity_metrics(g, real[spec], kid=True, prc=True, seed=seed)
                    entry.update({k: v for k, v in m.items() if k != "fid"})
                except Exception as err:  # torch-fidelity refuses some shapes; FD stands
                    entry["fidelity_error"] = f"{type(err).__name__}: {err}"
            res[spec] = entry
        results[f"{float(a):g}"] = res
    out = {"run": str(run), "step": meta["step"], "decay": meta["decay"],
           "n_per_class": n_per_class, "num_classes": K, "split": split,
           "n_real": int(len(u_real)), "alphas": results}
    path = Path(run) / "eval.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, path)
    return out


def _load_eval_data(cfg, split, featurizers):
    """Real samples of `split` encoded with the training split's generation space."""
    from featsel.data import load_dataset

    train_ds = load_dataset(cfg.data, split=cfg.data_split)
    m = train_ds.manifest
    if split is None:
        split = "test" if "test" in m.splits and cfg.data_split != "test" else cfg.data_split
    ds = train_ds if split == cfg.data_split else load_dataset(cfg.data, split=split)
    space = train_ds.generation_space(cfg.space or None)
    featurizers = list(featurizers or m.evaluation)
    if not featurizers:
        raise ValueError(f"data manifest {m.name!r} lists no evaluation featurizers; pass "
                         f"featurizers=[...] (--featurizers)")

    def enc(d):
        if d.in_generation_space:
            return d.x.float()
        with torch.no_grad():
            return torch.cat([space.encode(c) for c in d.x.split(256)]).float()

    u_train = enc(train_ds)
    u_real = u_train if ds is train_ds else enc(ds)
    return (u_real, ds.labels, space, u_train), split, featurizers
