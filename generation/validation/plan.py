"""Plan a `featsel validate` sweep: its settings and their checks, one job per (candidate,
seed), the evaluation steps, and each job's training config and ``featsel train`` command."""

from __future__ import annotations

import hashlib
import math
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featsel import defaults as D
from featsel.confirmation import (
    COLLAPSE_MIN_COVERAGE,
    COLLAPSE_MIN_SHARE,
    COLLAPSE_MIN_VARIANCE_RATIO,
    STILL_IMPROVING_THRESHOLD,
)
from featsel.features.registry import is_differentiable

__all__ = ["ValidateConfig", "Job", "candidate_dirname", "plan_jobs", "eval_steps",
           "resolve_lists", "check_settings", "collapse_rule", "job_identity", "train_config",
           "train_args", "train_command"]


@dataclass
class ValidateConfig:
    """Settings of one `featsel validate` sweep (one place for each default)."""

    data: str = "digits"
    featurizers: list[str] | None = None    # candidates; None: the manifest's
    evaluations: list[str] | None = None    # evaluation featurizers; None: the manifest's
    budget: int = D.VALIDATE_BUDGET         # training steps per job (same for every job)
    seeds: int = D.VALIDATE_SEEDS           # seeds 0 .. seeds-1 per candidate
    config: str | None = None               # base TrainConfig YAML (configs/...)
    overrides: list[str] = field(default_factory=list)  # TrainConfig key=value overrides
    jobs: int = 1                           # local worker processes; 1 = in this process
    executor: str = D.EXECUTOR              # "local" (process pool) | "ray" (generation.executors)
    address: str | None = None              # ray: auto | ray://HOST:PORT | HOST:PORT; None: start
    cpus_per_job: float = D.CPUS_PER_JOB    # ray: num_cpus per job (torch threads)
    gpus_per_job: float | None = None       # ray: num_gpus per job; None: 1 on cuda, else 0
    eval_n_per_class: int | None = None     # None: the TrainConfig's eval_n_per_class
    eval_alpha: float = D.EVAL_ALPHA        # guidance alpha whose FDs are the outcome
    tau: float = D.TAU                      # Delta_OT's headline tau
    criterion: str | None = None            # the score's ranking criterion; None: the default
    score_max_samples: int | None = None    # subsample the score pool
    score_repeats: int = D.N_REPEATS        # Delta_OT draws in score
    score_n: int | None = None              # Delta_OT minibatch size; None: score's default
    score_split: str | None = None          # split scored; None: the training config's split
    score_curve: bool = False               # also the Delta_OT(n) curves (figures only)
    score_flow: bool = D.FLOW               # also the particle flow (flow_fidelity; costly)
    score_inversion: bool = D.INVERSION     # also the inversion share under another criterion
    exclude_aligned: bool = False           # also exclude pairs flagged by alignment R^2
    figures: bool = True                    # sample grid (images) / UMAP (vectors) per candidate
    figure_n: int = 8                       # samples per class in the figures
    n_boot: int = D.N_BOOT                  # bootstrap resamples of the seeds
    nproc: int = 0                          # processes per job (torchrun, DDP); 0: in-process
    device: str = "cpu"
    seed: int = 0                           # score / bootstrap seed
    progress: bool = True
    # trustworthy outcomes (training_health): evaluation steps as fractions of the budget (the
    # outcome is read at the final step), the still-improving warning and the collapse rule
    eval_fractions: tuple[float, ...] = D.EVAL_FRACTIONS
    improving_threshold: float = STILL_IMPROVING_THRESHOLD  # warn: FD fell > 5% in last quarter
    collapse_min_variance_ratio: float = COLLAPSE_MIN_VARIANCE_RATIO  # per-class tv ratio
    collapse_min_coverage: float = COLLAPSE_MIN_COVERAGE    # fraction of real classes covered
    collapse_min_share: float = COLLAPSE_MIN_SHARE          # share that covers a class


@dataclass
class Job:
    """One (candidate, seed) training run."""

    candidate: str
    seed: int
    run_dir: str
    overrides: dict[str, Any]


def candidate_dirname(spec: str) -> str:
    """A file-system-safe folder name for a featurizer spec: the spec with every character
    outside ``[A-Za-z0-9._-]`` replaced by ``_``, plus 8 hex of its sha1 when anything was
    replaced (so two specs never share a folder)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", spec).strip("._") or "candidate"
    if safe != spec:
        safe = f"{safe[:60]}-{hashlib.sha1(spec.encode()).hexdigest()[:8]}"
    return safe


def plan_jobs(cfg: ValidateConfig, candidates: list[str], out: str | os.PathLike) -> list[Job]:
    """One job per (candidate, seed) under ``out/runs/<candidate>/seed<k>``."""
    if cfg.budget < 1:
        raise ValueError(f"--budget: expected >= 1 training steps, got {cfg.budget}")
    if cfg.seeds < 1:
        raise ValueError(f"--seeds: expected >= 1, got {cfg.seeds}")
    eval_steps(cfg.eval_fractions, cfg.budget)  # bad --eval-fractions fail before any work
    if len(set(candidates)) != len(candidates):
        raise ValueError(f"--featurizers: duplicate specs in {candidates}")
    jobs = []
    for c in candidates:
        for k in range(cfg.seeds):
            run = Path(out) / "runs" / candidate_dirname(c) / f"seed{k}"
            jobs.append(Job(c, k, str(run), {"data": cfg.data, "featurizer": c,
                                             "steps": cfg.budget, "seed": k, "out": str(run)}))
    return jobs


def train_config(cfg: ValidateConfig, job: Job):
    from generation.config import apply_overrides, config_from_dict, load_config

    base = load_config(cfg.config, list(cfg.overrides)).to_dict()
    d = apply_overrides(base, {**job.overrides, "device": cfg.device, "progress": False})
    return config_from_dict(d).validate()


def train_command(cfg: ValidateConfig, job: Job) -> str:
    """The shell command that runs ``job`` (``featsel train``, or torchrun when nproc > 0)."""
    head = (["torchrun", f"--nproc_per_node={cfg.nproc}", "-m", "featsel.cli"] if cfg.nproc
            else ["featsel"])
    return shlex.join(head + train_args(cfg, job))


def train_args(cfg: ValidateConfig, job: Job) -> list[str]:
    args = ["train"]
    if cfg.config:
        args += ["--config", cfg.config]
    o = job.overrides
    args += ["--data", o["data"], "--featurizer", o["featurizer"], "--steps", str(o["steps"]),
             "--out", o["out"], "--set", f"seed={o['seed']}"]
    for s in cfg.overrides:
        args += ["--set", s]
    if not is_differentiable(o["featurizer"]):
        # a control trained as the sweep's baseline: featsel train refuses it otherwise
        args += ["--allow-no-gradient"]
    args += ["--resume"]  # harmless on a fresh folder; continues a killed job
    return args


def collapse_rule(cfg: ValidateConfig) -> dict[str, float]:
    """The thresholds of the collapse verdict (``featsel.confirmation.collapse_verdict``)."""
    return {"min_variance_ratio": cfg.collapse_min_variance_ratio,
            "min_coverage": cfg.collapse_min_coverage, "min_share": cfg.collapse_min_share}


def job_identity(job: Job) -> dict[str, Any]:
    """What a job's checkpoint must hold to be this job's (``generation.run.checkpoint_step``)."""
    return {k: job.overrides[k] for k in ("data", "featurizer", "seed")}


def eval_steps(fractions, budget: int) -> list[int]:
    """The training steps every job is evaluated at: for each fraction f in (0, 1] the step
    ``max(1, floor(f * budget + 1/2))`` (rounded half up), deduplicated and ascending, with the
    budget itself always included (the outcome is read at the final step). E.g. the default
    (0.25, 0.5, 0.75, 1.0) of 300 steps gives [75, 150, 225, 300]; of 2 steps, [1, 2]."""
    try:
        fr = [float(f) for f in fractions]
    except (TypeError, ValueError):
        fr = []
    if not fr or any(not 0 < f <= 1 for f in fr):
        raise ValueError(f"--eval-fractions: expected fractions of the budget in (0, 1], got "
                         f"{fractions!r}")
    if budget < 1:
        raise ValueError(f"--budget: expected >= 1 training steps, got {budget}")
    return sorted({max(1, math.floor(f * budget + 0.5)) for f in fr} | {int(budget)})



def resolve_lists(cfg: ValidateConfig) -> tuple[list[str], list[str]]:
    from featsel.data import load_manifest

    m = load_manifest(cfg.data)
    cands = list(cfg.featurizers or m.candidates)
    evals = list(cfg.evaluations if cfg.evaluations is not None else m.evaluation)
    if not cands:
        raise ValueError(f"--featurizers: no candidates given and manifest {m.name!r} lists none")
    if not evals:
        raise ValueError(f"--eval-featurizers: no evaluation featurizers given and manifest "
                         f"{m.name!r} lists none")
    return cands, evals


def check_settings(cfg: ValidateConfig) -> None:
    """Every number of the sweep checked before any work (one line naming the flag)."""
    def bad(flag: str, want: str, got: Any) -> None:
        raise ValueError(f"{flag}: expected {want}, got {got}")

    # --budget, --seeds and --eval-fractions are checked by plan_jobs, also before any work
    ints = {"--jobs": cfg.jobs, "--score-repeats": cfg.score_repeats, "--n-boot": cfg.n_boot}
    for flag, v in ints.items():
        if v < 1:
            bad(flag, "an integer >= 1", v)
    if cfg.nproc < 0:
        bad("--nproc", "0 (in-process) or a number of processes >= 1", cfg.nproc)
    if cfg.eval_n_per_class is not None and cfg.eval_n_per_class < 2:
        bad("--eval-n-per-class", "an integer >= 2", cfg.eval_n_per_class)
    if not (math.isfinite(cfg.eval_alpha) and cfg.eval_alpha >= 1):
        bad("--eval-alpha", "a finite guidance scale >= 1", cfg.eval_alpha)
    if not (math.isfinite(cfg.tau) and cfg.tau > 0):
        bad("--tau", "a finite number > 0", cfg.tau)
    if cfg.score_n is not None and cfg.score_n < 2:
        bad("--score-n", "an integer >= 2", cfg.score_n)
    if cfg.score_max_samples is not None and cfg.score_max_samples < 2:
        bad("--score-max-samples", "an integer >= 2", cfg.score_max_samples)
    from featsel.device import check_device

    check_device(cfg.device)
    if cfg.criterion is not None:
        from featsel.diagnostics.criteria import get_criterion

        get_criterion(cfg.criterion)

