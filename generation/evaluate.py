"""Evaluate a run: EMA samples over an alpha sweep, measured in every evaluation featurizer.

For each alpha in `alphas` (default `cfg.eval_alphas`) and each evaluation featurizer of the
data manifest (`featurizers.evaluation`), against the real samples of the evaluation split
(`featsel.diagnostics.frechet`, float64):

- `fd` (unconditional): Fréchet distance between all generated and all real samples. The
  generated labels follow the real split's class proportions (`proportional_counts`, largest
  remainder, N = n_per_class * K in all), so the generated mixture targets the same marginal as
  the real split: on an imbalanced data set (pbmc68k) a class-balanced sample would be far from
  the real marginal even for a perfect generator;
- `cond_fd` (conditional): the mean over classes of the per-class FD between generated class c
  (`n_per_class` samples) and real class c, kept per class in `cond_fd_per_class`; classes with
  fewer than 2 real samples have no covariance and are skipped (`cond_classes_skipped`);
- the real side: a featurizer that decodes through the generation space (`ambient`,
  `cnn-teacher`, `inception`, `mlp-vae`, a ViT on pixels: it has a `pixel_space`) sees the real
  samples themselves, not their reconstructions decode(encode(x)), as FID of a latent-diffusion
  model is measured against real images (`real_feature_vectors`); the reconstruction error of a
  lossy generation space (a VAE, a PCA) then counts against it, and FDs of generators in
  different generation spaces share one reference. Featurizers of the generation space itself
  (identity, pca, vae-latent) see the encoded real samples;
- KID and precision/recall of the unconditional set from torch-fidelity's feature functions
  (`fidelity_metrics`) where they run;
- `collapse`: whether the conditional set is collapsed in that space
  (`featsel.confirmation.collapse_stats`): the mean over classes of tv(generated class c) /
  tv(real class c) (total variance = trace of the covariance), the share of generated class-c
  samples nearest to real class c's centroid, the class coverage, and `collapsed` with its
  reasons under `collapse_rule` (default: variance ratio < 0.1 or coverage < 0.5);
- `support`: k-NN precision and recall of the unconditional set against half of the real
  split, beside the other half's own (`featsel.diagnostics.frechet.support_metrics`): samples
  that drift off the data without collapsing have precision far below the real samples'.

One generation per alpha serves both sets (`plan_labels`): class c gets
m_c = max(n_per_class, N_c) samples; the conditional set takes the first n_per_class of them and
the unconditional set the first N_c (N_c the proportional count), so the two sets share samples
and nothing is generated twice. An evaluation featurizer's feature vector is its last map,
flattened if global, mean-pooled over positions if spatial. Real features go through
`featsel.cache.FeatureCache`, so the real side is computed once per (data, split, featurizer).
Writes `eval.json` in the run.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from featsel.rundir import atomic_write_json
from generation.run import EVAL_JSON
from generation.sample import check_alphas, generate, load_run

__all__ = ["evaluate_run", "feature_vectors", "proportional_counts", "plan_labels",
           "conditional_fd", "real_feature_vectors"]


def feature_vectors(maps: list[Tensor]) -> Tensor:
    """Last map of a featurizer as (N, D): global (N, C) as is, spatial (N, C, H, W) pooled."""
    m = maps[-1]
    return m.mean(dim=(2, 3)) if m.ndim == 4 else m.flatten(1)


def real_feature_vectors(
    f, u_real: Tensor, x_real: Tensor | None, *, cache=None, data_id: dict | None = None,
    device: str = "cpu",
) -> tuple[Tensor, str]:
    """Real-side feature vectors (N, D) of featurizer `f` and which samples it saw.

    u_real: (N, *space.shape) encoded real samples; x_real: (N, *ambient) the same samples
    before encoding, or None (data stored already encoded, e.g. SD-VAE latent shards). When `f`
    decodes through the space (`f.pixel_space` set) and x_real is given, `f` runs on x_real with
    its decoding switched off: returns (features, "ambient"); else (features of u_real,
    "generation").
    """
    from featsel.features import extract_features

    space = getattr(f, "pixel_space", None)
    if space is None or x_real is None:
        return feature_vectors(extract_features(f, u_real, cache=cache, data_id=data_id,
                                                device=device, progress=False)), "generation"
    did = {**(data_id or {}), "reference": "ambient"}
    f.pixel_space = None  # the same weights, fed the real samples themselves
    try:
        maps = extract_features(f, x_real.float(), cache=cache, data_id=did, device=device,
                                progress=False)
    finally:
        f.pixel_space = space
    return feature_vectors(maps), "ambient"


def proportional_counts(class_counts, total: int) -> list[int]:
    """Split ``total`` samples over classes in proportion to ``class_counts: (K,)`` (Hamilton's
    largest-remainder method): N_c = floor(total p_c), then the remaining samples go one each to
    the largest remainders (ties to the lower class index). Sums to ``total`` exactly and is
    deterministic; a class with no real sample gets none."""
    n = np.asarray(class_counts, dtype=np.int64)
    if n.ndim != 1 or n.size == 0 or (n < 0).any() or n.sum() == 0:
        raise ValueError(f"class_counts: expected non-negative counts (K,) with a positive sum, "
                         f"got {n.tolist()}")
    if total < 0:
        raise ValueError(f"total: expected >= 0, got {total}")
    quota = n * total / n.sum()
    out = np.floor(quota).astype(np.int64)
    rest = total - int(out.sum())
    order = sorted(range(n.size), key=lambda c: (-(quota[c] - out[c]), c))
    for c in order[:rest]:
        out[c] += 1
    return [int(v) for v in out]


def plan_labels(real_labels: Tensor, num_classes: int, n_per_class: int) -> dict[str, Any]:
    """Labels of one generation that serves both the conditional and the unconditional set.

    real_labels: (N_real,) int codes in [0, K). Class c gets m_c = max(n_cond_c, n_unc_c)
    consecutive samples, n_cond_c = n_per_class (0 when real class c has fewer than 2 samples)
    and n_unc_c the proportional count of ``n_per_class * K``. Returns ``{"labels": (M,),
    "cond_index": (sum n_cond,), "uncond_index": (n_per_class * K,), "n_uncond": [K],
    "n_real": [K], "skipped": [class]}``; the index tensors select from ``labels``.
    """
    if n_per_class < 2:
        raise ValueError(f"n_per_class: expected >= 2 (a per-class covariance), got {n_per_class}")
    y = torch.as_tensor(real_labels).long().flatten()
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"real labels: expected codes in [0, {num_classes}), got "
                         f"[{int(y.min())}, {int(y.max())}]")
    n_real = torch.bincount(y, minlength=num_classes).tolist()
    n_unc = proportional_counts(n_real, n_per_class * num_classes)
    skipped = [c for c in range(num_classes) if n_real[c] < 2]
    labels, cond, unc = [], [], []
    start = 0
    for c in range(num_classes):
        n_cond = 0 if c in skipped else n_per_class
        m = max(n_cond, n_unc[c])
        labels += [c] * m
        cond += range(start, start + n_cond)
        unc += range(start, start + n_unc[c])
        start += m
    return {"labels": torch.tensor(labels, dtype=torch.long),
            "cond_index": torch.tensor(cond, dtype=torch.long),
            "uncond_index": torch.tensor(unc, dtype=torch.long),
            "n_uncond": n_unc, "n_real": n_real, "skipped": skipped}


def _fd(gen: Tensor, real: Tensor, refs: dict, key: Any) -> float:
    """FD of gen (n_g, D) vs real (n_r, D). With both clouds larger than D the real side's
    `FrechetReference` (its covariance factor) is built once under ``key`` and reused across
    alphas; otherwise `frechet_distance`'s feature route, exact for rank-deficient covariances."""
    from featsel.diagnostics.frechet import FrechetReference, frechet_distance

    if min(len(gen), len(real)) > real.shape[1]:
        if key not in refs:
            refs[key] = FrechetReference.from_features(real)
        return refs[key].distance_to_features(gen)
    return frechet_distance(gen, real)


def conditional_fd(gen: Tensor, gen_labels: Tensor, real: Tensor, real_labels: Tensor, *,
                   refs: dict | None = None) -> dict[str, Any]:
    """Mean over classes of FD(generated class c, real class c), float64.

    gen: (n_g, D), gen_labels: (n_g,); real: (n_r, D), real_labels: (n_r,). A class is used
    when it has at least 2 real samples and at least 2 generated ones; the others are listed in
    ``skipped`` with their counts. refs: optional cache of per-class real references (reused
    across alphas). Returns ``{"cond_fd": mean (NaN when no class is usable),
    "per_class": {str(c): FD}, "skipped": [{"class", "n_real", "n_generated"}]}``.
    """
    refs = {} if refs is None else refs
    gl, rl = torch.as_tensor(gen_labels).long(), torch.as_tensor(real_labels).long()
    per, skipped = {}, []
    for c in sorted(set(gl.tolist()) | set(rl.tolist())):
        g, r = gen[gl == c], real[rl == c]
        if len(g) < 2 or len(r) < 2:
            skipped.append({"class": c, "n_real": int(len(r)), "n_generated": int(len(g))})
            continue
        per[str(c)] = _fd(g, r, refs, ("class", c))
    mean = float(np.mean(list(per.values()))) if per else float("nan")
    return {"cond_fd": mean, "per_class": per, "skipped": skipped}


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
    collapse_rule: dict[str, float] | None = None,
    classify: bool = True,
    support: bool = True,
) -> dict[str, Any]:
    """Metrics of a run's EMA generator; also written to `run/eval.json` (atomically).

    split: real split to compare with (default "test" when the manifest has it, else the
    training split). featurizers: evaluation featurizer specs (default: the manifest's).
    data: optional (u_real (N, *shape), labels (N,), space, u_train[, x_real (N, *ambient)])
    tuple instead of loading (tests); without x_real every featurizer sees u_real.
    collapse_rule: thresholds of `featsel.confirmation.collapse_verdict` (``min_variance_ratio``,
    ``min_coverage``, ``min_share``; default its defaults).
    classify: also the class accuracy of the samples (`ClassJudge`: a logistic regression fitted
    on half of the real split in the generation space; its accuracy on the other half, the
    ceiling, is reported beside) under "class_accuracy".
    support: also the k-NN precision/recall of the unconditional set against the real split
    (``support_metrics``) under each space's "support".
    Returns {"step", "decay", "n_per_class", "num_classes", "split", "n_real",
    "n_real_per_class": [K], "n_uncond_per_class": [K], "uncond_labels": "proportional",
    "cond_classes_skipped": [class], "class_names", "real_reference": {spec: "ambient" |
    "generation"}, "alphas": {alpha: {spec: {"fd", "cond_fd",
    "cond_fd_per_class": {class: FD}, "kid_mean", "kid_std", "precision", "recall",
    "f_score", "collapse": {"collapsed", "reasons", "variance_ratio", "coverage",
    "variance_ratio_per_class", "nearest_share_per_class", ...}, "support": {"precision",
    "recall", "precision_real", "recall_real", "k", "n_reference"}}}}.
    """
    from featsel.cache import FeatureCache
    from featsel.confirmation import collapse_stats
    from featsel.diagnostics.frechet import fidelity_metrics, support_metrics
    from featsel.features import create_featurizer, extract_features

    model, cfg, meta = load_run(run, decay=decay, device=device)
    # None means "the run's config"; 0 or [] are errors, not the default (0 silently became 100)
    n_per_class = cfg.eval_n_per_class if n_per_class is None else n_per_class
    if n_per_class < 2:
        raise ValueError(f"--n-per-class: expected >= 2, got {n_per_class}")
    alphas = tuple(cfg.eval_alphas if alphas is None else alphas)
    check_alphas(alphas, "--alphas")
    class_names = None
    if data is None:
        data, split, featurizers, class_names = _load_eval_data(cfg, split, featurizers)
    elif not featurizers:
        raise ValueError("featurizers must be given together with data")
    u_real, real_labels, space, u_train, *rest = data
    x_real = rest[0] if rest else None
    if real_labels is None or len(real_labels) != len(u_real):
        raise ValueError("data: the real split needs one label per sample for the conditional "
                         "FD (manifest key 'label')")
    real_labels = torch.as_tensor(real_labels).long()
    K = model.num_classes
    plan = plan_labels(real_labels, K, n_per_class)
    if len(plan["skipped"]) == K:
        raise ValueError(f"split {split!r}: no class has 2 or more real samples; the "
                         f"conditional FD needs a per-class covariance")
    labels, cond_idx, unc_idx = plan["labels"], plan["cond_index"], plan["uncond_index"]
    cache = FeatureCache()
    feats = {spec: create_featurizer(spec, space=space, fit_data=u_train,
                                     in_shape=tuple(u_real.shape[1:])) for spec in featurizers}
    real, reference = {}, {}
    for spec, f in feats.items():
        data_id = {"dataset": cfg.data, "split": split or "", "space": getattr(space, "spec", "")}
        real[spec], reference[spec] = real_feature_vectors(f, u_real, x_real, cache=cache,
                                                           data_id=data_id, device=device)
    refs: dict[str, dict] = {spec: {} for spec in feats}   # real-side references, all alphas
    judge = None
    if classify:
        try:
            judge = ClassJudge.fit(u_real, real_labels, seed=seed)
        except ValueError as err:  # e.g. one class only in a half: no accuracy, say why
            warnings.warn(f"class accuracy skipped: {err}", stacklevel=2)
    results: dict[str, Any] = {}
    accuracy: dict[str, float] = {}
    for a in alphas:
        u_gen = generate(model, labels, float(a), seed=seed).cpu()
        if judge is not None:
            accuracy[f"{float(a):g}"] = judge.accuracy(u_gen, labels)
        res = {}
        for spec, f in feats.items():
            g_all = feature_vectors(extract_features(f, u_gen, device=device, progress=False))
            g = g_all[unc_idx]
            cond = conditional_fd(g_all[cond_idx], labels[cond_idx], real[spec], real_labels,
                                  refs=refs[spec])
            entry: dict[str, Any] = {"fd": _fd(g, real[spec], refs[spec], "all"),
                                     "cond_fd": cond["cond_fd"],
                                     "cond_fd_per_class": cond["per_class"]}
            # collapse on the class-balanced conditional set, float64 (numpy)
            entry["collapse"] = collapse_stats(
                g_all[cond_idx].detach().cpu().double().numpy(), labels[cond_idx].numpy(),
                real[spec].detach().cpu().double().numpy(), real_labels.cpu().numpy(),
                **(collapse_rule or {}))
            if support:
                try:
                    entry["support"] = support_metrics(g, real[spec], seed=seed)
                except ValueError as err:  # too few samples for k-NN balls: FD stands
                    entry["support_error"] = str(err)
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
           "n_real": int(len(u_real)), "n_real_per_class": plan["n_real"],
           "uncond_labels": "proportional", "n_uncond_per_class": plan["n_uncond"],
           "cond_classes_skipped": plan["skipped"], "class_names": class_names,
           "real_reference": reference, "alphas": results}
    if judge is not None:
        out["class_accuracy"] = {"classifier": judge.describe(), "real": judge.real_accuracy,
                                 "alphas": accuracy}
    atomic_write_json(Path(run) / EVAL_JSON, out)
    return out


class ClassJudge:
    """Does a sample look like its class? A scikit-learn ``LogisticRegression`` fitted on a
    stratified half of the real split (at most ``max_fit`` samples, in the generation space,
    standardised), scored on the other half (``real_accuracy``: the ceiling a perfect generator
    reaches) and on generated samples with their asked labels. Independent of every
    featurizer: a generator cannot have been trained to please it. A fit that has not converged
    in ``max_iter`` iterations (many correlated dimensions, e.g. 200 hyperspectral bands) is
    kept and said so in ``describe()``, instead of one scikit-learn warning per evaluation."""

    def __init__(self, model, real_accuracy: float, n_fit: int, converged: bool = True):
        self.model, self.real_accuracy, self.n_fit = model, real_accuracy, n_fit
        self.converged = converged

    @classmethod
    def fit(cls, u: Tensor, labels: Tensor, *, seed: int = 0, max_fit: int = 5000,
            max_iter: int = 500) -> ClassJudge:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = u.reshape(len(u), -1).double().numpy()
        y = labels.numpy()
        counts = np.bincount(y)
        strat = y if counts[counts > 0].min() >= 2 else None
        tr, te = train_test_split(np.arange(len(y)), test_size=0.5, random_state=seed,
                                  stratify=strat)
        tr = tr[:max_fit]
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf.fit(x[tr], y[tr])
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        return cls(clf, float(clf.score(x[te], y[te])), len(tr), converged)

    def accuracy(self, u: Tensor, labels: Tensor) -> float:
        return float(self.model.score(u.reshape(len(u), -1).double().numpy(), labels.numpy()))

    def describe(self) -> str:
        note = "" if self.converged else f" (not converged in {self.model[-1].max_iter} iterations)"
        return (f"logistic regression on {self.n_fit} real samples (generation space), "
                f"scored on the held-out half{note}")


def _load_eval_data(cfg, split, featurizers):
    """Real samples of `split` encoded with the training split's generation space; returns
    ((u_real, labels, space, u_train, x_real or None), split, featurizers, class_names)."""
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
    names = list(ds.class_names) if ds.class_names else None
    x_real = None if ds.in_generation_space else ds.x
    return (u_real, ds.labels, space, u_train, x_real), split, featurizers, names


def format_table(res: dict[str, Any]) -> str:
    """The text table `featsel evaluate` prints: one row per (alpha, evaluation featurizer)
    with FD, conditional FD, KID, precision, recall and the collapse verdict, then the class
    accuracy per alpha beside the real-data ceiling."""
    def num(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    cols = ["alpha", "featurizer", "FD", "cond FD", "KID", "precision", "recall", "collapsed"]
    rows = []
    for a, per in res["alphas"].items():
        for spec, e in per.items():
            rows.append([a, spec, num(e.get("fd"), ".4g"), num(e.get("cond_fd"), ".4g"),
                         num(e.get("kid_mean"), ".3g"), num(e.get("precision"), ".2f"),
                         num(e.get("recall"), ".2f"),
                         "yes" if (e.get("collapse") or {}).get("collapsed") else "no"])
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    line = "  ".join
    out = [f"{res['run']}: step {res['step']}, EMA {res['decay']}, {res['n_per_class']} samples "
           f"per class vs {res['n_real']} real ({res['split']})",
           line(c.ljust(w) for c, w in zip(cols, widths)),
           line("-" * w for w in widths)]
    out += [line(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    acc = res.get("class_accuracy")
    if acc:
        out.append("class accuracy: " + ", ".join(f"alpha {a} {v:.3f}"
                                                 for a, v in acc["alphas"].items())
                   + f" (real data {acc['real']:.3f}; {acc['classifier']})")
    return "\n".join(out)
