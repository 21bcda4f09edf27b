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
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from featsel import defaults as D

__all__ = ["ScoreConfig", "choose_n", "run_score", "summary_vector", "parse_featurizer_list"]

SUMMARY_FLAT_MAX = 4096


@dataclass
class ScoreConfig:
    """Settings of one `featsel score` run; the defaults come from ``featsel.defaults``."""

    data: str = "digits"
    featurizers: list[str] | None = None      # None: the manifest's candidates
    evaluations: list[str] | None = None      # None: the manifest's evaluation featurizers
    split: str | None = None                  # None: "all" if fraction splits, else "test"
    data_root: str | None = None              # None: $FEATSEL_DATA_DIR or ~/.cache/featsel/data
    space: str | None = None                  # generation space spec; None: the manifest's
    max_samples: int | None = None            # subsample the pool (seeded)
    n: int | None = None                      # draws' minibatch size; None: choose_n()
    taus: tuple[float, ...] = D.TAUS
    tau: float = D.TAU                        # Delta_OT's headline tau; the tau rule's tau
    n_repeats: int = D.N_REPEATS
    recipe: str = D.RECIPE
    max_locations: int | None = D.MAX_LOCATIONS  # per_loc sub-problems per block
    criterion: str = D.RANK_CRITERION         # the criterion that ranks (studies/PROTOCOL.md)
    controls: bool = D.CONTROLS               # add noise:dim=1 and noise:dim=<largest dim>
    eps_rule: str = D.EPS_RULE                # generation-space criteria: "perplexity" | "tau"
    perplexity: float = D.PERPLEXITY
    transport_repeats: int = D.TRANSPORT_REPEATS
    transport_max_locations: int | None = D.TRANSPORT_MAX_LOCATIONS
    curve: bool = D.CURVE
    curve_repeats: int = 3
    coupling_size: int = 200                  # points per set in the coupling figure
    alignment_n_train: int = 1024             # the paper fits 2048; 1024 keeps score fast
    r2_threshold: float = D.R2_THRESHOLD
    device: str = "cpu"
    batch_size: int = 256
    cache: bool = True
    seed: int = 0
    progress: bool = True


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


def parse_featurizer_list(value: str | None) -> list[str] | None:
    """Comma-separated specs, or a YAML file holding a list of specs (or ``{candidates: [...]}``).

    Commas inside a spec's options (``vit:depth=4,tap_every=2``) are kept with their spec: a
    piece ``key=value`` whose key is an option name continues the previous spec.
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
        # an option continues the previous spec only when its key is an option name (a path
        # such as runs/a=b/featurizer.pt, with '=' in it, starts a new spec)
        if specs and "=" in piece and re.fullmatch(r"[A-Za-z_][\w-]*", piece.split("=", 1)[0]):
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


class _Progress:
    """The score's progress bar: one unit per stage and per draw of every candidate, so it
    moves every few seconds and its ETA means something; the text names the candidate, the
    stage and the draw (``pca:dim=16 · transport_fidelity draw 2/4``). Disabled: no output."""

    def __init__(self, enabled: bool, n_candidates: int, per_candidate: int):
        self.bar = None
        self.per, self.k, self.spec = per_candidate, 0, ""
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=n_candidates * per_candidate, desc="score", unit="step",
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} "
                                       "{postfix}")

    def candidate(self, spec: str) -> None:
        """A new candidate: the previous one's units are all counted (a criterion that drew
        less than planned, e.g. undefined without labels, does not leave the bar behind)."""
        if self.bar is not None and self.k:
            self.bar.n = self.k * self.per
            self.bar.refresh()
        self.k += 1
        self.spec = spec[:32]

    def stage(self, name: str, done: int = 0) -> None:
        if self.bar is not None:
            self.bar.update(done)
            self.bar.set_postfix_str(f"[{self.k}] {self.spec} · {name}")

    def draw_hook(self, stage: str):
        def on_draw(i: int, total: int) -> None:
            if self.bar is not None:
                self.bar.update(1)
                self.bar.set_postfix_str(f"[{self.k}] {self.spec} · {stage} draw {i}/{total}")
        return on_draw

    def close(self) -> None:
        if self.bar is not None:
            self.bar.n = self.bar.total
            self.bar.refresh()
            self.bar.close()


def _prepare_out(out: str | os.PathLike | None, force: bool) -> Path | None:
    """Check ``--out`` before any work (featsel.rundir's rule): a non-empty folder needs
    ``force``; the old folder stays until the new one is published in one step."""
    from featsel.rundir import guard_replace

    if out is None:
        return None
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {str(out)!r} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ValueError(f"--out: {str(out)!r} is not empty; use --force to replace it")
        guard_replace(out)
    return out


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
    path = Path(__file__).resolve().parent / "evidence.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _load_pool(cfg: ScoreConfig):
    """Stage 1: the data set, its generation space and the pool (u, labels)."""
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


def _controls_for(cands: list[str], dims: dict[str, int]) -> list[str]:
    """noise:dim=1 and noise:dim=<largest block dimension of the candidates> (the largest OT
    sub-problem any candidate poses), unless already candidates."""
    want = ["noise:dim=1", f"noise:dim={max(dims.values())}"]
    return [c for c in dict.fromkeys(want) if c not in cands]


def _candidate_scores(spec: str, values: dict, d: dict, control: bool, dim: int):
    from featsel.ranking import CandidateScores

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
                  for k, v in values.items()},
        control=control,
    )


def run_score(cfg: ScoreConfig, out: str | os.PathLike | None = None, *,
              force: bool = False) -> dict:
    """Run the whole pipeline; returns the results dict (also written under ``out``)."""
    import warnings

    from featsel.cache import FeatureCache
    from featsel.diagnostics import alignment_table, class_coupling, metric_hacking_flags
    from featsel.diagnostics.criteria import CRITERIA, CandidateData, get_criterion
    from featsel.diagnostics.stability import stability_curve
    from featsel.features import create_featurizer, extract_features, to_blocks
    from featsel.features.controls import is_control
    from featsel.ranking import control_violations, rank_candidates

    out_dir = _prepare_out(out, force)
    timer = _Timer()
    if float(cfg.tau) not in tuple(float(t) for t in cfg.taus):
        raise ValueError(f"--tau: the ranking tau {cfg.tau} must be one of --taus {cfg.taus}")
    rank_by = get_criterion(cfg.criterion)
    if cfg.eps_rule not in ("perplexity", "tau"):
        raise ValueError(f"--eps-rule: expected 'perplexity' or 'tau', got {cfg.eps_rule!r}")
    if not cfg.perplexity >= 1:  # also rejects NaN
        raise ValueError(f"--perplexity: expected a number >= 1, got {cfg.perplexity}")
    if not (cfg.tau > 0 and all(t > 0 for t in cfg.taus)):
        raise ValueError(f"--tau/--taus: expected positive values, got {cfg.tau}, {cfg.taus}")
    from featsel.device import check_device

    check_device(cfg.device)
    if cfg.n is not None and cfg.n < 2:
        raise ValueError(f"--n: expected a minibatch size >= 2, got {cfg.n}")
    if cfg.max_samples is not None and cfg.max_samples < 2:
        raise ValueError(f"--max-samples: expected >= 2, got {cfg.max_samples}")
    if cfg.max_locations is not None and cfg.max_locations < 0:
        raise ValueError(f"--max-locations: expected >= 0 (0 = all), got {cfg.max_locations}")
    if cfg.n_repeats < 1 or cfg.transport_repeats < 1:
        raise ValueError(f"--repeats: expected >= 1, got n_repeats={cfg.n_repeats}, "
                         f"transport_repeats={cfg.transport_repeats}")

    # 1. data ---------------------------------------------------------------------------
    with timer("load"):
        manifest, split, ds, space, u, lab_np = _load_pool(cfg)
        if lab_np is not None:
            classes, counts = np.unique(lab_np, return_counts=True)
        else:
            classes, counts = np.array([0]), np.array([len(u)])
        n, left = choose_n(counts.tolist(), cfg.n)
        cnames = list(ds.class_names or [])

        def _cname(c) -> str:
            return cnames[int(c)] if lab_np is not None and int(c) < len(cnames) else str(c)

        left_out = {_cname(classes[i]): int(counts[i]) for i in left}
        if left_out:
            warnings.warn(f"classes with fewer than 2n = {2 * n} samples are left out of the "
                          f"draws: {left_out}", stacklevel=2)
        # the draws' pool: the classes large enough for n sources + n targets
        keep = (np.isin(lab_np, np.delete(classes, left)) if lab_np is not None
                else np.ones(len(u), bool))
        cands = cfg.featurizers or list(manifest.candidates)
        evals = cfg.evaluations if cfg.evaluations is not None else list(manifest.evaluation)
        if len(set(cands)) != len(cands):
            raise ValueError(f"--featurizers: duplicate specs in {cands}")
    # 2. featurizers (created first: an unknown name fails before any long work) ----------
    cache = FeatureCache() if cfg.cache else None
    feats: dict[str, Any] = {}
    maps: dict[str, list[Tensor]] = {}

    def _extract(specs: list[str]) -> None:
        with timer("featurizers"):
            for spec in specs:
                feats[spec] = create_featurizer(spec, space=space, fit_data=u)
        with timer("extract"):
            for spec in specs:
                maps[spec] = extract_features(feats[spec], u, batch_size=cfg.batch_size,
                                              device=cfg.device, progress=cfg.progress,
                                              cache=cache, data_id=ds.data_id(space.spec))
                for m in maps[spec]:
                    if not bool(torch.isfinite(m).all()):
                        raise ValueError(f"featurizer {spec!r}: features contain NaN or "
                                         "infinite values")

    _extract(list(dict.fromkeys(cands + evals)))
    vectors = {spec: summary_vector(m) for spec, m in maps.items()}
    # the training blocks (n_pool, L, D) of every scored featurizer, made once
    block_maps = {c: {k: b.x for k, b in to_blocks(maps[c], feats[c].map_names, None).items()}
                  for c in cands}
    controls = ([c for c in cands if is_control(c)] +
                (_controls_for(cands, {c: max(v.shape[-1] for v in block_maps[c].values())
                                       for c in cands}) if cfg.controls else []))
    new = [c for c in controls if c not in feats]
    if new:
        _extract(new)
        vectors.update({spec: summary_vector(maps[spec]) for spec in new})
        block_maps.update({c: {k: b.x for k, b in to_blocks(maps[c], feats[c].map_names,
                                                             None).items()} for c in new})
    scored = list(dict.fromkeys(cands + controls))

    # 3. diagnostics ------------------------------------------------------------------------
    diagnostics: dict[str, dict] = {}
    scores = []
    run_warnings: list[str] = []  # also printed (warnings.warn) and shown in the report
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(len(u))
    csize = min(cfg.coupling_size, len(u) // 2)
    ia, ib = perm[:csize], perm[csize : 2 * csize]
    curve_ns = sorted({int(v) for v in np.geomspace(8, n, 4).round()}) if n > 8 else [n]
    kidx = torch.as_tensor(np.flatnonzero(keep))
    u_keep = u[kidx]
    lab_keep = lab_np[keep] if lab_np is not None else None
    n_stages = len(CRITERIA) + 2 + int(cfg.curve)  # criteria, coupling, alignment, curve
    per_cand = n_stages + cfg.n_repeats + 3 * cfg.transport_repeats  # + the draws
    progress = _Progress(cfg.progress, len(scored), per_cand)
    for spec in scored:
        progress.candidate(spec)
        f = feats[spec]
        blocks = block_maps[spec]
        d: dict[str, Any] = {"spec": spec, "map_names": list(f.map_names),
                             "control": spec in controls,
                             "blocks": {k: list(v.shape[1:]) for k, v in blocks.items()}}
        data = CandidateData(spec=spec, blocks={k: v[kidx] for k, v in blocks.items()},
                             vector=vectors[spec][kidx], u=u_keep, labels=lab_keep, n=n,
                             seed=cfg.seed, settings=cfg, draw_hook=progress.draw_hook)
        progress.stage("coupling")
        with timer("coupling"):
            if lab_np is not None:
                v = vectors[spec]
                cp = class_coupling(v[ia], v[ib], x_labels=lab_np[ia], y_labels=lab_np[ib],
                                    tau=cfg.tau, tol=1e-4)
                data.memo["coupling"] = cp
                d["coupling"] = cp.to_dict(include_plan=True)
        values: dict[str, dict] = {}
        for name, crit in CRITERIA.items():
            progress.stage(name, done=1)
            with timer(name), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # left-out classes were reported once above
                r = crit.compute(data)
            if r is not None:
                values[name] = r.to_dict()
        d["criteria"] = values
        if "rank" in data.memo:
            d["rank"] = data.memo["rank"].to_dict()
        if "stability" in data.memo:
            d["stability"] = data.memo["stability"].to_dict()
        if cfg.curve:
            progress.stage("Delta_OT(n) curve", done=1)
            with timer("delta_ot_curve"):
                # the point at the ranking's n is the table's Delta_OT (same draws)
                known = {n: data.memo["stability"]} if "stability" in data.memo else None
                curve = stability_curve(data.blocks, ns=curve_ns, tau=cfg.tau, labels=lab_keep,
                                        seed=cfg.seed, n_repeats=cfg.curve_repeats,
                                        recipe=cfg.recipe, max_sub_problems=cfg.max_locations,
                                        known=known)
            d["curve"] = curve.to_dict()
        progress.stage("alignment R^2", done=1)
        with timer("alignment"):
            if evals:
                tab = alignment_table(vectors[spec], {e: vectors[e] for e in evals},
                                      n_train=cfg.alignment_n_train, seed=cfg.seed)
                d["alignment"] = {e: r.to_dict() for e, r in tab.items()}
        diagnostics[spec] = d
        bad = unconverged(d, D.MAX_MARGINAL_ERROR, skip=("stability",) if cfg.recipe == "paper"
                          else ())
        if bad:
            d["unconverged"] = bad
            run_warnings.append(f"{spec}: Sinkhorn solves did not converge (L1 marginal error "
                                f"above {D.MAX_MARGINAL_ERROR:g}) in {', '.join(bad[:3])}"
                                + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
                                + "; their values are not trustworthy (raise tau/--taus)")
            warnings.warn(run_warnings[-1], stacklevel=2)
        scores.append(_candidate_scores(spec, values, d, spec in controls,
                                        int(vectors[spec].shape[1])))
    progress.close()
    # 4. flags, control checks and ranking -----------------------------------------------
    flags = metric_hacking_flags({s.name: s.alignment for s in scores if not s.control},
                                 candidates=[c for c in cands if c not in controls],
                                 evaluations=evals, threshold=cfg.r2_threshold,
                                 fingerprints={k: f.fingerprint() for k, f in feats.items()})
    ranking = rank_candidates(scores, tau=cfg.tau, flags=flags, criterion=rank_by.name,
                              lower_is_better=rank_by.lower_is_better, label=rank_by.label,
                              evaluations=evals,
                              repeats_option="--repeats" if rank_by.name == "delta_ot" else None)
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
    ranking.validity = validity
    settings = {**asdict(cfg), "data": manifest.name, "manifest": str(manifest.file or ""),
                "split": split, "n_pool": len(u), "n": n, "classes": ds.class_names,
                "classes_left_out": left_out, "n_draw_pool": int(keep.sum()),
                "generation_space": space.spec, "featurizers": cands, "controls": controls,
                "evaluations": evals, "curve_ns": curve_ns, "coupling_size": csize}
    results = {
        "warnings": run_warnings,
        "evidence": evidence(),
        "title": f"featsel score: {manifest.name} ({len(cands)} candidates"
                 + (f" + {len(controls)} controls)" if controls else ")"),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": settings,
        "versions": _versions(),
        "ranking": ranking.to_dict(),
        "evaluations": evals,
        "diagnostics": diagnostics,
    }
    # 5. outputs: built in a sibling folder, then published in one step ----------------------
    if out_dir is not None:
        from featsel.rundir import publish_dir, write_marker

        with timer("report"):
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp"))
            os.chmod(tmp, 0o755)  # mkdtemp makes 0700; a report folder is meant to be shared
            try:
                results["timings"] = dict(timer.times)
                write_outputs(results, tmp, ranking.to_frame())
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    results["timings"] = dict(timer.times)
    results["timings"]["total"] = float(sum(timer.times.values()))
    if out_dir is not None:
        try:
            from featsel.rundir import atomic_write_json

            atomic_write_json(tmp / "results.json", _jsonable(results))
            write_marker(tmp, "score", _jsonable(settings))
            publish_dir(tmp, out_dir, force=force)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return _jsonable(results)


def write_outputs(results: dict, out_dir: Path, frame=None) -> None:
    """results.json, results.csv and report.html (+ figures) into ``out_dir``."""
    import pandas as pd

    from featsel.rundir import atomic_save, atomic_write_json
    from reports import build_report

    out_dir.mkdir(parents=True, exist_ok=True)
    clean = _jsonable(results)
    atomic_write_json(out_dir / "results.json", clean)
    df = frame if frame is not None else pd.DataFrame(clean["ranking"]["table"])
    atomic_save(out_dir / "results.csv", lambda p: df.to_csv(p, index=False))
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
