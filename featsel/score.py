"""`featsel score`: rank candidate featurizers on a data set without training.

Pipeline (each stage timed, progress bars on long work):

1. load the data set (manifest name or path) and its generation space; pool = the split
   (default "all" for fraction-split manifests, else "test"), optionally subsampled;
2. extract every candidate's and evaluation featurizer's maps (``extract_features``, cached);
3. per candidate: effective rank per block (``block_effective_rank``), Delta_OT per tau per
   block and class with bootstrap intervals (``ot_stability_report``), the Delta_OT(n) curve
   at the ranking tau, the class-grouped Sinkhorn coupling between two disjoint draws, and the
   alignment R^2 to every evaluation featurizer;
4. metric-hacking flags, ranking by Delta_OT (``featsel.ranking``);
5. ``results.json``, ``results.csv`` and ``report.html`` + PNG figures in the output directory.

Blocks for rank and Delta_OT are the training blocks (per_loc / global_mean / global_std, or
global), without the input-RMS block (identical for every candidate). Alignment and couplings
use one vector per sample, the *summary vector* (:func:`summary_vector`): per map, the map
flattened when small (<= 4096 entries) or its per-channel spatial mean and std, each part
divided by its mean row norm, concatenated.

All inputs are validated before anything is written; the outputs are built in a temporary
sibling directory and moved into place at the end, so a failed run leaves no partial output.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["ScoreConfig", "run_score", "summary_vector", "parse_featurizer_list"]

SUMMARY_FLAT_MAX = 4096


@dataclass
class ScoreConfig:
    """Settings of one `featsel score` run (one place for each default)."""

    data: str = "digits"
    featurizers: list[str] | None = None      # None: the manifest's candidates
    evaluations: list[str] | None = None      # None: the manifest's evaluation featurizers
    split: str | None = None                  # None: "all" if fraction splits, else "test"
    space: str | None = None                  # generation space spec; None: the manifest's
    max_samples: int | None = None            # subsample the pool (seeded)
    n: int | None = None                      # Delta_OT minibatch size; None: min(64, class/3)
    taus: tuple[float, ...] = (0.02, 0.05, 0.2)
    tau: float = 0.05                         # the ranking tau
    n_repeats: int = 8
    recipe: str = "converged"
    max_locations: int | None = 16            # per_loc sub-problems per block for Delta_OT
    curve: bool = True
    curve_repeats: int = 3
    coupling_size: int = 200                  # points per set in the coupling figure
    alignment_n_train: int = 1024             # the paper fits 2048; 1024 keeps score fast
    r2_threshold: float = 0.9
    device: str = "cpu"
    batch_size: int = 256
    cache: bool = True
    seed: int = 0
    progress: bool = True


def parse_featurizer_list(value: str | None) -> list[str] | None:
    """Comma-separated specs, or a YAML file holding a list of specs (or ``{candidates: [...]}``).

    Commas inside a spec's options (``vit:depth=4,tap_every=2``) are kept with their spec: a
    piece containing ``=`` but no ``:`` continues the previous spec.
    """
    if value is None or value == "":
        return None
    p = Path(value)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise FileNotFoundError(f"--featurizers: no file {value!r}")
        import yaml

        raw = yaml.safe_load(p.read_text())
        if isinstance(raw, dict):
            raw = raw.get("candidates", raw.get("featurizers"))
        if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw) or not raw:
            raise ValueError(f"--featurizers: {value!r} must hold a non-empty YAML list of "
                             "featurizer specs")
        return list(raw)
    specs: list[str] = []
    for piece in (s.strip() for s in value.split(",")):
        if not piece:
            continue
        if specs and "=" in piece and ":" not in piece.split("=", 1)[0]:
            specs[-1] += "," + piece
        else:
            specs.append(piece)
    if not specs:
        raise ValueError("--featurizers: expected at least one featurizer spec")
    return specs


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


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    from featsel import __version__

    out = {"featsel": __version__, "python": platform.python_version(),
           "platform": platform.platform(), "torch_threads": str(torch.get_num_threads())}
    for pkg in ("torch", "numpy", "scipy", "scikit-learn", "pykeops", "timm", "matplotlib",
                "jinja2", "pandas"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _default_split(manifest) -> str:
    if all(isinstance(v, int | float) for v in manifest.splits.values()):
        return "all"
    return "test" if "test" in manifest.splits else next(iter(manifest.splits))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


class _Timer:
    def __init__(self):
        self.times: dict[str, float] = {}

    def __call__(self, stage: str):
        timer = self

        class _Ctx:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                timer.times[stage] = timer.times.get(stage, 0.0) + time.perf_counter() - self.t0

        return _Ctx()


def _prepare_out(out: str | os.PathLike | None, force: bool) -> Path | None:
    if out is None:
        return None
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {str(out)!r} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ValueError(f"--out: {str(out)!r} is not empty; use --force to replace it")
    return out


def _publish(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` directory to ``out`` (replacing an old one)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def run_score(cfg: ScoreConfig, out: str | os.PathLike | None = None, *,
              force: bool = False) -> dict:
    """Run the whole pipeline; returns the results dict (also written under ``out``)."""
    from featsel.cache import FeatureCache
    from featsel.data import load_dataset, load_manifest
    from featsel.diagnostics import (
        alignment_table,
        block_effective_rank,
        class_coupling,
        metric_hacking_flags,
        ot_stability_report,
        stability_curve,
    )
    from featsel.features import create_featurizer, extract_features, to_blocks
    from featsel.ranking import CandidateScores, rank_candidates

    out_dir = _prepare_out(out, force)
    timer = _Timer()
    if float(cfg.tau) not in tuple(float(t) for t in cfg.taus):
        raise ValueError(f"--tau: the ranking tau {cfg.tau} must be one of --taus {cfg.taus}")

    # 1. data ---------------------------------------------------------------------------
    with timer("load"):
        manifest = load_manifest(cfg.data)
        split = cfg.split or _default_split(manifest)
        ds = load_dataset(manifest, split=split)
        x = ds.x
        labels = ds.labels
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
        lab_np = labels.numpy() if labels is not None else None
        counts = np.bincount(lab_np) if lab_np is not None else np.array([len(u)])
        counts = counts[counts > 0]
        smallest = int(counts.min())
        n = cfg.n if cfg.n is not None else min(64, smallest // 3)
        if n < 4:
            raise ValueError(f"data {manifest.name!r}: too few samples per class ({smallest}) "
                             f"for Delta_OT; need at least {3 * 4} per class")
        if 2 * n > smallest:
            where = "in the smallest class" if lab_np is not None else "in the pool"
            raise ValueError(f"--n: {n} is too large: {smallest} samples {where}, and Delta_OT "
                             f"needs n source + n target samples (n <= {smallest // 2})")
        cands = cfg.featurizers or list(manifest.candidates)
        evals = cfg.evaluations if cfg.evaluations is not None else list(manifest.evaluation)
        if len(set(cands)) != len(cands):
            raise ValueError(f"--featurizers: duplicate specs in {cands}")
    # 2. featurizers (created first: an unknown name fails before any long work) ----------
    with timer("featurizers"):
        feats = {}
        for spec in dict.fromkeys(cands + evals):
            feats[spec] = create_featurizer(spec, space=space, fit_data=u)
    with timer("extract"):
        cache = FeatureCache() if cfg.cache else None
        maps = {}
        for spec, f in feats.items():
            maps[spec] = extract_features(f, u, batch_size=cfg.batch_size, device=cfg.device,
                                          progress=cfg.progress, cache=cache,
                                          data_id=ds.data_id(space.spec))
            for m in maps[spec]:
                if not bool(torch.isfinite(m).all()):
                    raise ValueError(f"featurizer {spec!r}: features contain NaN or infinite "
                                     "values")
    vectors = {spec: summary_vector(m) for spec, m in maps.items()}

    # 3. diagnostics ------------------------------------------------------------------------
    diagnostics: dict[str, dict] = {}
    scores: list[CandidateScores] = []
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(len(u))
    csize = min(cfg.coupling_size, len(u) // 2)
    ia, ib = perm[:csize], perm[csize : 2 * csize]
    curve_ns = sorted({int(v) for v in np.geomspace(8, n, 4).round()}) if n > 8 else [n]
    iterator = cands
    if cfg.progress:
        from tqdm.auto import tqdm

        iterator = tqdm(cands, desc="candidates", unit="featurizer")
    for spec in iterator:
        f = feats[spec]
        blocks = {k: b.x for k, b in to_blocks(maps[spec], f.map_names, None).items()}
        d: dict[str, Any] = {"spec": spec, "map_names": list(f.map_names),
                             "blocks": {k: list(v.shape[1:]) for k, v in blocks.items()}}
        with timer("effective_rank"):
            rk = block_effective_rank(blocks)
        d["rank"] = rk.to_dict()
        with timer("delta_ot"):
            st = ot_stability_report(blocks, n=n, labels=lab_np, seed=cfg.seed,
                                     taus=tuple(cfg.taus), n_repeats=cfg.n_repeats,
                                     recipe=cfg.recipe, max_sub_problems=cfg.max_locations)
        d["stability"] = st.to_dict()
        curve = None
        if cfg.curve:
            with timer("delta_ot_curve"):
                curve = stability_curve(blocks, ns=curve_ns, tau=cfg.tau, labels=lab_np,
                                        seed=cfg.seed, n_repeats=cfg.curve_repeats,
                                        recipe=cfg.recipe, max_sub_problems=cfg.max_locations)
            d["curve"] = curve.to_dict()
        with timer("coupling"):
            cp = None
            if lab_np is not None:
                v = vectors[spec]
                cp = class_coupling(v[ia], v[ib], x_labels=lab_np[ia], y_labels=lab_np[ib],
                                    tau=cfg.tau, tol=1e-4)
                d["coupling"] = cp.to_dict(include_plan=True)
        with timer("alignment"):
            if evals:
                tab = alignment_table(vectors[spec], {e: vectors[e] for e in evals},
                                      n_train=cfg.alignment_n_train, seed=cfg.seed)
                d["alignment"] = {e: r.to_dict() for e, r in tab.items()}
        diagnostics[spec] = d
        scores.append(CandidateScores(
            name=spec,
            delta={t: {"mean": v.mean, "ci_low": v.ci_low, "ci_high": v.ci_high}
                   for t, v in st.per_tau.items()},
            effective_rank=rk.effective_rank, participation_ratio=rk.participation_ratio,
            alignment={e: r["r2"] for e, r in d.get("alignment", {}).items()},
            same_class_mass=cp.same_class_mass if cp else None,
            chance_mass=cp.chance if cp else None,
            curve_slope=curve.slope if curve else None,
            dim=int(vectors[spec].shape[1]),
        ))
    # 4. flags and ranking ----------------------------------------------------------------
    flags = metric_hacking_flags({s.name: s.alignment for s in scores}, candidates=cands,
                                 evaluations=evals, threshold=cfg.r2_threshold,
                                 fingerprints={k: f.fingerprint() for k, f in feats.items()})
    ranking = rank_candidates(scores, tau=cfg.tau, flags=flags)
    settings = {**asdict(cfg), "data": manifest.name, "manifest": str(manifest.file or ""),
                "split": split, "n_pool": len(u), "n": n, "classes": ds.class_names,
                "generation_space": space.spec, "featurizers": cands, "evaluations": evals,
                "curve_ns": curve_ns, "coupling_size": csize}
    results = {
        "title": f"featsel score: {manifest.name} ({len(cands)} candidates)",
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": settings,
        "versions": _versions(),
        "ranking": ranking.to_dict(),
        "evaluations": evals,
        "diagnostics": diagnostics,
    }
    # 5. outputs --------------------------------------------------------------------------
    if out_dir is not None:
        with timer("report"):
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp"))
            try:
                results["timings"] = dict(timer.times)
                write_outputs(results, tmp, ranking.to_frame())
                _publish(tmp, out_dir)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    results["timings"] = dict(timer.times)
    results["timings"]["total"] = float(sum(timer.times.values()))
    if out_dir is not None:
        tmp_json = out_dir / ".results.json.tmp"
        tmp_json.write_text(json.dumps(_jsonable(results), indent=1))
        os.replace(tmp_json, out_dir / "results.json")
    return _jsonable(results)


def write_outputs(results: dict, out_dir: Path, frame=None) -> None:
    """results.json, results.csv and report.html (+ figures) into ``out_dir``."""
    import pandas as pd

    from reports import build_report

    out_dir.mkdir(parents=True, exist_ok=True)
    clean = _jsonable(results)
    tmp = out_dir / ".results.json.tmp"
    tmp.write_text(json.dumps(clean, indent=1))
    os.replace(tmp, out_dir / "results.json")
    df = frame if frame is not None else pd.DataFrame(clean["ranking"]["table"])
    tmp = out_dir / ".results.csv.tmp"
    df.to_csv(tmp, index=False)
    os.replace(tmp, out_dir / "results.csv")
    build_report(clean, out_dir)


def render_existing(out_dir: str | os.PathLike) -> Path:
    """`featsel report DIR`: re-render report.html and the figures from DIR/results.json."""
    from reports import build_report

    path = Path(out_dir) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"DIR: no results.json in {str(out_dir)!r} (run featsel score)")
    try:
        results = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"DIR: {str(path)!r} is not valid JSON: {err}") from err
    return build_report(results, out_dir)
