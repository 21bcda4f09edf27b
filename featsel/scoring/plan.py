"""Stage 1 of `featsel score`: what will be scored, resolved before any feature is extracted.

The data set and its generation space, the pool (the split, optionally subsampled), the draws'
minibatch size n and the classes too small for it, the candidates and evaluation featurizers,
and the fixed sample indices of the coupling and the Delta_OT(n) curve's sizes.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from featsel import defaults as D
from featsel.scoring.config import ScoreConfig
from featsel.scoring.progress import Timer

__all__ = ["ScorePlan", "choose_n", "plan_score"]


@dataclass
class ScorePlan:
    """Everything `featsel score` decided from the settings and the data.

    u: ``(n_pool, ...)`` the pool in the generation space; labels: ``(n_pool,)`` or None;
    draw_index: ``(n_draw_pool,)`` pool indices of the classes with at least 2n samples (the
    draws' pool); left_out: the other classes' names and sizes; coupling_a, coupling_b:
    ``(coupling_size,)`` disjoint pool indices of the coupling's two sets; curve_ns: the
    minibatch sizes of the Delta_OT(n) curve.
    """

    manifest: Any
    split: str
    dataset: Any
    space: Any
    u: Tensor
    labels: np.ndarray | None
    n: int
    left_out: dict[str, int]
    draw_index: Tensor
    candidates: list[str]
    evaluations: list[str]
    coupling_a: np.ndarray
    coupling_b: np.ndarray
    curve_ns: list[int]

    @property
    def data_id(self) -> dict[str, str]:
        """The feature cache's name for this pool in this generation space."""
        return self.dataset.data_id(self.space.spec)


def choose_n(counts: Sequence[int], n: int | None = None) -> tuple[int, list[int]]:
    """The draws' minibatch size and the classes (indices into ``counts``) it leaves out.

    Each class needs 2n samples (n sources + n targets, disjoint). Default: the largest n in
    [N_MIN, N_MAX] that keeps at least half of the classes, n <= (median class size) / 3 so that
    the two target draws do not cover a typical class; below N_MIN (to N_FLOOR) only when no
    class allows N_MIN. Classes with fewer than 2n samples are left out (returned), instead of
    capping n for every class at the smallest one.
    """
    counts = [int(c) for c in counts]
    if not counts or min(counts) < 1:
        raise ValueError(f"counts: expected positive class sizes, got {counts}")
    if n is None:
        n = min(D.N_MAX, int(np.median(counts)) // 3)
        if n < D.N_MIN:
            n = D.N_MIN if max(counts) >= 2 * D.N_MIN else max(counts) // 2
        if n < D.N_FLOOR:
            raise ValueError(f"data: too few samples per class (largest class {max(counts)}) "
                             f"for the draws; need at least {2 * D.N_FLOOR} in some class")
    elif n < 2:
        raise ValueError(f"--n: expected at least 2, got {n}")
    left_out = [i for i, c in enumerate(counts) if c < 2 * n]
    if len(left_out) == len(counts):
        raise ValueError(f"--n: {n} is too large: every class has fewer than 2n = {2 * n} "
                         f"samples (largest {max(counts)}); use --n {max(counts) // 2} or less")
    return int(n), left_out


def plan_score(cfg: ScoreConfig, timer: Timer) -> ScorePlan:
    """Load the pool (timed as "load"), choose n, resolve the featurizer lists; warns once about
    left-out classes. Raises one clear error for a bad data set, --n or featurizer list."""
    with timer("load"):
        manifest, split, ds, space, u, labels = _load_pool(cfg)
        if labels is not None:
            classes, counts = np.unique(labels, return_counts=True)
        else:
            classes, counts = np.array([0]), np.array([len(u)])
        n, left = choose_n(counts.tolist(), cfg.n)
        cnames = list(ds.class_names or [])

        def _cname(c) -> str:
            return cnames[int(c)] if labels is not None and int(c) < len(cnames) else str(c)

        left_out = {_cname(classes[i]): int(counts[i]) for i in left}
        if left_out:
            warnings.warn(f"classes with fewer than 2n = {2 * n} samples are left out of the "
                          f"draws: {left_out}", stacklevel=3)
        # the draws' pool: the classes large enough for n sources + n targets
        keep = (np.isin(labels, np.delete(classes, left)) if labels is not None
                else np.ones(len(u), bool))
        cands = cfg.featurizers or list(manifest.candidates)
        evals = cfg.evaluations if cfg.evaluations is not None else list(manifest.evaluation)
        if len(set(cands)) != len(cands):
            raise ValueError(f"--featurizers: duplicate specs in {cands}")
    # the coupling's two sets: the same disjoint draws for every candidate
    perm = np.random.default_rng(cfg.seed).permutation(len(u))
    csize = min(cfg.coupling_size, len(u) // 2)
    return ScorePlan(
        manifest=manifest, split=split, dataset=ds, space=space, u=u, labels=labels, n=n,
        left_out=left_out, draw_index=torch.as_tensor(np.flatnonzero(keep)),
        candidates=cands, evaluations=evals,
        coupling_a=perm[:csize], coupling_b=perm[csize : 2 * csize],
        curve_ns=sorted({int(v) for v in np.geomspace(8, n, 4).round()}) if n > 8 else [n],
    )


def _default_split(manifest: Any) -> str:
    if all(isinstance(v, int | float) for v in manifest.splits.values()):
        return "all"
    return "test" if "test" in manifest.splits else next(iter(manifest.splits))


def _load_pool(cfg: ScoreConfig) -> tuple[Any, str, Any, Any, Tensor, np.ndarray | None]:
    """The data set, its generation space and the pool: (manifest, split, dataset, space,
    u ``(n_pool, ...)``, labels ``(n_pool,)`` or None)."""
    from featsel.data import load_dataset, load_manifest

    manifest = load_manifest(cfg.data)
    split = cfg.split or _default_split(manifest)
    ds = load_dataset(manifest, split=split, data_root=cfg.data_root)
    x, labels = ds.x, ds.labels
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"data {manifest.name!r}: the samples contain NaN or infinite values")
    if cfg.max_samples is not None and cfg.max_samples < len(x):
        if cfg.max_samples < 2:
            raise ValueError(f"--max-samples: expected >= 2, got {cfg.max_samples}")
        g = torch.Generator().manual_seed(cfg.seed)
        keep = torch.randperm(len(x), generator=g)[: cfg.max_samples].sort().values
        x = x[keep]
        labels = labels[keep] if labels is not None else None
    space = ds.generation_space(cfg.space, fit_on=x) if not ds.in_generation_space else \
        ds.generation_space(cfg.space)
    u = x if ds.in_generation_space else space.encode(x)
    return manifest, split, ds, space, u, (labels.numpy() if labels is not None else None)
