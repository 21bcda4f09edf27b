"""`featsel validate`: train one generator per candidate featurizer and check the ranking.

Stages (every stage resumable: a killed sweep continues where it stopped):

1. ``OUT/score``: ``featsel score`` of every candidate (``featsel.score.run_score``, the same
   code path as the command); reused when its ``results.json`` already lists the candidates;
2. ``OUT/runs/<candidate>/seed<k>``: one training job per (candidate, seed), all with the same
   config and step budget (``generation.train.train``). Jobs run on an executor
   (``generation.executors``: a local process pool of ``jobs`` workers, 1 = in this process, or
   Ray tasks with ``executor="ray"``, on this machine or a cluster at ``address``). A finished
   job (checkpoint at the budget and ``eval.json``) is skipped; an unfinished one (a checkpoint
   below the budget) continues with ``resume`` and is refused without it. ``dry_run`` returns
   one ``featsel train`` command per job (prefixed ``torchrun --nproc_per_node G -m
   featsel.cli`` when ``nproc`` > 0) for a scheduler (those jobs train straight to the budget:
   their curves hold the final step only);
3. each run is evaluated in every evaluation space (``generation.evaluate.evaluate_run``,
   ``eval.json`` in the run) at every step of ``eval_steps`` (``eval_fractions`` of the budget,
   default 25/50/75/100%): a job trains to the first such step, is evaluated, resumes to the
   next, ... (``eval_curve.json`` in the run holds one point per step; ``eval.json`` is the
   final step's, as before); see ``_run_job``;
4. ``OUT/validation.json`` and ``OUT/validation.csv``: per candidate the FD per metric (mean and
   per seed; two metrics per evaluation space, the unconditional ``fd[<space>]`` and the
   conditional ``cond_fd[<space>]``, paper Table 3), the mean FD rank over all those metrics
   (paper Table 4) with metric-hacking pairs excluded (a hacked (candidate, space) pair leaves
   both metrics of that space), Spearman and
   Kendall correlations between the Delta_OT ranking and the outcome with a bootstrap interval
   over seeds, the same for the other diagnostics and which predicted best
   (``featsel.confirmation``), and a one-paragraph verdict that says so when the ranking did
   not predict the outcome; and whether the outcome can be trusted (``training_health``): per
   candidate and metric the FD-vs-step curve (mean over seeds per step), a warning when a
   candidate's mean curve or the best run of a metric was still improving by more than
   ``improving_threshold`` (5%) over the last quarter of the budget, and every collapsed run
   (``collapsed: true`` with its reasons and numbers; its FDs are kept).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from featsel import defaults as D
from featsel.confirmation import (
    COLLAPSE_MIN_COVERAGE,
    COLLAPSE_MIN_SHARE,
    COLLAPSE_MIN_VARIANCE_RATIO,
    STILL_IMPROVING_THRESHOLD,
)
from featsel.rundir import MARKER, atomic_save, atomic_write, atomic_write_json, claim_dir

__all__ = ["ValidateConfig", "Job", "plan_jobs", "job_status", "run_validate", "train_command",
           "eval_steps", "read_curve", "training_health"]


@dataclass
class ValidateConfig:
    """Settings of one `featsel validate` sweep (one place for each default)."""

    data: str = "digits"
    featurizers: list[str] | None = None    # candidates; None: the manifest's
    evaluations: list[str] | None = None    # evaluation featurizers; None: the manifest's
    budget: int = 300                       # training steps per job (same for every job)
    seeds: int = 3                          # seeds 0 .. seeds-1 per candidate
    config: str | None = None               # base TrainConfig YAML (configs/...)
    overrides: list[str] = field(default_factory=list)  # TrainConfig key=value overrides
    jobs: int = 1                           # local worker processes; 1 = in this process
    executor: str = D.EXECUTOR              # "local" (process pool) | "ray" (generation.executors)
    address: str | None = None              # ray: auto | ray://HOST:PORT | HOST:PORT; None: start
    cpus_per_job: float = D.CPUS_PER_JOB    # ray: num_cpus per job (torch threads)
    gpus_per_job: float | None = None       # ray: num_gpus per job; None: 1 on cuda, else 0
    eval_n_per_class: int | None = None     # None: the TrainConfig's eval_n_per_class
    eval_alpha: float = 1.0                 # guidance alpha whose FDs are the outcome
    tau: float = 0.05                       # Delta_OT's headline tau
    criterion: str | None = None            # the score's ranking criterion; None: the default
    score_max_samples: int | None = None    # subsample the score pool
    score_repeats: int = 8                  # Delta_OT draws in score
    score_n: int | None = None              # Delta_OT minibatch size; None: score's default
    score_split: str | None = None          # split scored; None: the training config's split
    score_curve: bool = False               # also the Delta_OT(n) curves (figures only)
    exclude_aligned: bool = False           # also exclude pairs flagged by alignment R^2
    figures: bool = True                    # sample grid (images) / UMAP (vectors) per candidate
    figure_n: int = 8                       # samples per class in the figures
    n_boot: int = 1000                      # bootstrap resamples of the seeds
    nproc: int = 0                          # processes per job (torchrun, DDP); 0: in-process
    device: str = "cpu"
    seed: int = 0                           # score / bootstrap seed
    progress: bool = True
    # trustworthy outcomes (training_health): evaluation steps as fractions of the budget (the
    # outcome is read at the final step), the still-improving warning and the collapse rule
    eval_fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
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


def _train_config(cfg: ValidateConfig, job: Job):
    from generation.config import apply_overrides, config_from_dict, load_config

    base = load_config(cfg.config, list(cfg.overrides)).to_dict()
    d = apply_overrides(base, {**job.overrides, "device": cfg.device, "progress": False})
    return config_from_dict(d).validate()


def train_command(cfg: ValidateConfig, job: Job) -> str:
    """The shell command that runs ``job`` (``featsel train``, or torchrun when nproc > 0)."""
    head = (["torchrun", f"--nproc_per_node={cfg.nproc}", "-m", "featsel.cli"] if cfg.nproc
            else ["featsel"])
    return shlex.join(head + _train_args(cfg, job))


def _train_args(cfg: ValidateConfig, job: Job) -> list[str]:
    args = ["train"]
    if cfg.config:
        args += ["--config", cfg.config]
    o = job.overrides
    args += ["--data", o["data"], "--featurizer", o["featurizer"], "--steps", str(o["steps"]),
             "--out", o["out"], "--set", f"seed={o['seed']}"]
    for s in cfg.overrides:
        args += ["--set", s]
    args += ["--resume"]  # harmless on a fresh folder; continues a killed job
    return args


def train_stage(cfg: ValidateConfig, job: Job, until: int) -> dict:
    """Train ``job`` to step ``until`` (resuming its checkpoint). ``cfg.nproc`` = 0: in this
    process; N >= 1: ``torchrun --standalone --nproc_per_node N`` runs ``featsel train`` as a
    DDP job (the classes of a step shared out across N processes: NCCL on GPUs, gloo on a
    CPU), its summary read back from the checkpoint. Returns train's summary keys."""
    from generation.train import train

    if not cfg.nproc:
        return train(_train_config(cfg, job), resume=True, until=until)
    import subprocess
    import sys

    run = Path(job.run_dir)
    before = _checkpoint_step(run) or 0
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={cfg.nproc}", "-m", "featsel.cli",
            *_train_args(cfg, job), "--until", str(until), "--quiet", "--device", cfg.device]
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if "error:" in ln] or \
            done.stderr.strip().splitlines()[-1:]
        raise RuntimeError(f"job {job.run_dir}: torchrun with {cfg.nproc} processes failed "
                           f"(exit {done.returncode}): {lines[0] if lines else ''}")
    after = _checkpoint_step(run) or 0
    return {"out": str(run), "steps": cfg.budget, "stopped_at": after, "resumed_from": before,
            "steps_run": after - before, "time_s": round(time.perf_counter() - t0, 3),
            "nproc": cfg.nproc}


def _checkpoint_step(run: Path, job: Job | None = None) -> int | None:
    """The step of ``run``'s checkpoint (None without one). With ``job``, a checkpoint of
    another data set, featurizer or seed raises ValueError (never resume someone else's run)."""
    from generation.checkpoint import CHECKPOINT_NAME, load_checkpoint

    if not (run / CHECKPOINT_NAME).is_file():
        return None
    st = load_checkpoint(run / CHECKPOINT_NAME)
    if job is not None:
        have = st.get("config") or {}
        for k in ("data", "featurizer", "seed"):
            if k in have and have[k] != job.overrides[k]:
                raise ValueError(f"--out: {str(run)!r} holds a run with {k}={have[k]!r}, not "
                                 f"{job.overrides[k]!r}; use another --out or delete that run")
    return int(st["step"])


def _read_eval(run: Path) -> dict | None:
    p = run / "eval.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except ValueError:
        return None


def job_status(job: Job, budget: int, evaluations: list[str], alpha: float) -> str:
    """'done' (trained to the budget and evaluated in every space, conditional FD included),
    'trained' (needs the evaluation), 'partial' (a checkpoint below the budget) or 'new'."""
    run = Path(job.run_dir)
    step = _checkpoint_step(run, job)
    if step is None:
        return "new"
    if step < budget:
        return "partial"
    ev = _read_eval(run)
    got = (ev or {}).get("alphas", {}).get(f"{float(alpha):g}", {})
    # an eval.json written before the conditional FD (no cond_fd), before real references
    # in the ambient space (no real_reference) or before the collapse statistics (no
    # collapse) is evaluated again
    if (ev and ev.get("step") == step and "real_reference" in ev
            and all("cond_fd" in got.get(e, {}) and "collapse" in got.get(e, {})
                    for e in evaluations)):
        return "done"
    return "trained"


def _run_job(cfg: ValidateConfig, job: Job, evaluations: list[str]) -> dict:
    """Train (or continue) and evaluate one job at every step of ``eval_steps``; runs on the
    executor (a worker process, a Ray task, or in-process).

    Staged training: train to the first evaluation step s_1 (``train(..., until=s_1)``, which
    checkpoints there), evaluate, record the point in ``eval_curve.json``, resume to s_2, ...,
    up to the budget (whose evaluation is also ``eval.json``). Chosen over keeping a checkpoint
    per step because it reuses the one resume mechanism (the run is a pure function of
    (config, step), so the staged run equals a straight one), keeps one checkpoint per run on
    disk, and a sweep killed anywhere resumes: a checkpoint at an evaluation step without its
    point is evaluated first, one between steps trains on to the next. A step the checkpoint
    has already passed (a run trained before this sweep asked for it) cannot be evaluated any
    more: its curve lacks that point (``training_health`` warns)."""
    from generation.evaluate import evaluate_run

    status = job_status(job, cfg.budget, evaluations, cfg.eval_alpha)
    t0 = time.perf_counter()
    stages, evaluated = [], []
    run = Path(job.run_dir)
    if status != "done":
        step = _checkpoint_step(run, job) or 0
        curve = read_curve(run)
        rule = {"min_variance_ratio": cfg.collapse_min_variance_ratio,
                "min_coverage": cfg.collapse_min_coverage, "min_share": cfg.collapse_min_share}

        def evaluate_here() -> dict[int, dict]:
            """Evaluate the checkpoint (eval.json) and add it to the curve."""
            ev = evaluate_run(job.run_dir, n_per_class=cfg.eval_n_per_class,
                              alphas=[cfg.eval_alpha], featurizers=evaluations,
                              device=cfg.device, kid=False, collapse_rule=rule)
            evaluated.append(int(ev["step"]))
            return _add_curve_point(run, ev, cfg.budget)

        for s in eval_steps(cfg.eval_fractions, cfg.budget):
            if s < step:
                continue
            if s > step:
                stages.append(train_stage(cfg, job, s))
                step = s
            # the final step is always evaluated here (the job was not done); an intermediate
            # one unless a killed sweep already recorded it
            if s == cfg.budget or not _point_complete(curve.get(s), evaluations,
                                                      cfg.eval_alpha):
                curve = evaluate_here()
        if status == "trained" and not evaluated:  # a checkpoint past the budget (a smaller
            evaluate_here()                        # --budget): evaluated there, as before
    trained = None
    if stages:  # one summary: where it resumed from and what all stages ran
        trained = {**stages[-1], "resumed_from": stages[0]["resumed_from"],
                   "steps_run": sum(t["steps_run"] for t in stages),
                   "time_s": round(sum(t["time_s"] for t in stages), 3), "stages": len(stages)}
    return {"candidate": job.candidate, "seed": job.seed, "status_before": status,
            "train": trained, "evaluated": bool(evaluated), "evaluated_steps": evaluated,
            "time_s": round(time.perf_counter() - t0, 3)}


def _write_json(path: Path, obj: Any) -> None:
    """Strict JSON (NaN / inf written as null), atomically."""
    atomic_write(path, json.dumps(_clean(obj), indent=1, allow_nan=False))


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _score(cfg: ValidateConfig, candidates: list[str], evaluations: list[str] | None,
           out: Path) -> dict:
    """Run (or reuse) `featsel score` into out/score, on the training config's split (or
    `score_split`, e.g. "all" when the training split's smallest class is too small for the
    Delta_OT minibatch) and generation space (the samples the generators are trained on)."""
    from featsel.score import ScoreConfig, run_score
    from generation.config import load_config

    tcfg = load_config(cfg.config, list(cfg.overrides))
    sdir = out / "score"
    res_path = sdir / "results.json"
    if res_path.is_file():
        try:
            old = json.loads(res_path.read_text())
            s = old["settings"]
            want = {"featurizers": candidates, "n_repeats": cfg.score_repeats,
                    "max_samples": cfg.score_max_samples, "seed": cfg.seed,
                    "curve": cfg.score_curve, "split": cfg.score_split or tcfg.data_split,
                    "space": tcfg.space or None}
            if evaluations is not None:
                want["evaluations"] = evaluations
            if cfg.score_n is not None:
                want["n"] = cfg.score_n
            if cfg.criterion:
                want["criterion"] = cfg.criterion
            if (all(s.get(k) == v for k, v in want.items())
                    and float(old["ranking"]["tau"]) == float(cfg.tau)):
                return old
        except (ValueError, KeyError):
            pass
    scfg = ScoreConfig(data=cfg.data, featurizers=candidates, evaluations=evaluations,
                       split=cfg.score_split or tcfg.data_split, space=tcfg.space or None,
                       max_samples=cfg.score_max_samples, n_repeats=cfg.score_repeats,
                       tau=cfg.tau, taus=tuple(sorted({*D.PAPER_TAUS, float(cfg.tau)})),
                       curve=cfg.score_curve, n=cfg.score_n,
                       **({"criterion": cfg.criterion} if cfg.criterion else {}),
                       device=cfg.device, seed=cfg.seed, progress=cfg.progress)
    _check_own_score(sdir)
    return run_score(scfg, sdir, force=True)


# what `featsel score` writes; a score/ folder holding anything else is not replaced
_SCORE_FILES = {"results.json", "results.csv", "report.html", "figures", MARKER}


def _check_own_score(sdir: Path) -> None:
    """A sweep rescoring (other settings) replaces its score/ folder; refuse when that folder
    holds files `featsel score` did not write (they would be deleted)."""
    if not sdir.is_dir():
        return
    extra = sorted(p.name for p in sdir.iterdir() if p.name not in _SCORE_FILES)
    figs = sdir / "figures"
    if figs.is_dir():
        extra += sorted(f"figures/{p.name}" for p in figs.iterdir() if p.suffix != ".png")
    if extra:
        raise ValueError(f"--out: {str(sdir)!r} holds files featsel score did not write "
                         f"({', '.join(extra[:3])}); move them, or pass --force to replace "
                         f"the whole sweep folder")


def _resolve_lists(cfg: ValidateConfig) -> tuple[list[str], list[str]]:
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


# settings that define a sweep's finished jobs; others (budget, seeds, candidates, jobs, ...)
# may change between reruns of one sweep
SWEEP_IDENTITY = ("data", "config", "overrides", "eval_alpha", "eval_n_per_class")


def _recorded_sweep(out: Path, ident: dict) -> dict | None:
    """A sweep folder written before markers existed (only what validate writes in it): the
    settings of its validation.json, or ``ident`` for one killed before writing it."""
    own = {"runs", "score", "figures", "validation.json", "validation.csv", "validation.html"}
    if not all(p.name in own for p in out.iterdir()):
        return None
    if not (out / "validation.json").is_file():
        return ident
    try:
        s = json.loads((out / "validation.json").read_text())["settings"]
        return {k: s.get(k) for k in SWEEP_IDENTITY}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_validate(cfg: ValidateConfig, out: str | os.PathLike, *, dry_run: bool = False,
                 resume: bool = False, force: bool = False) -> dict:
    """The whole sweep (module docstring). Returns the validation dict (also written to
    ``out/validation.json`` and rendered as ``out/validation.html``); with ``dry_run``,
    ``{"commands": [...], "jobs": [...]}`` only."""
    from generation.executors import EXECUTORS

    check_settings(cfg)
    if cfg.executor not in EXECUTORS:
        raise ValueError(f"--executor: expected one of {', '.join(EXECUTORS)}, got "
                         f"{cfg.executor!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {str(out)!r} exists and is not a directory")
    cands, evals = _resolve_lists(cfg)
    jobs = plan_jobs(cfg, cands, out)
    _train_config(cfg, jobs[0])  # a bad --config / --set fails before any work
    if dry_run:
        return {"commands": [train_command(cfg, j) for j in jobs],
                "jobs": [asdict(j) for j in jobs]}
    status = {j.run_dir: job_status(j, cfg.budget, evals, cfg.eval_alpha) for j in jobs}
    partial = [j.run_dir for j in jobs if status[j.run_dir] == "partial"]
    if partial and not resume:
        raise ValueError(f"--out: {len(partial)} unfinished job(s) hold checkpoints below the "
                         f"budget (e.g. {partial[0]!r}); pass --resume to continue them")
    from generation.executors import make_executor

    # made before anything is written: Ray missing or an unreachable --address fails here
    with make_executor(cfg.executor, jobs=cfg.jobs, address=cfg.address,
                       cpus_per_job=cfg.cpus_per_job, gpus_per_job=cfg.gpus_per_job,
                       device=cfg.device) as ex:
        # the folder rule (featsel.rundir); finished jobs are always reused, so a rerun with
        # the same identity continues the sweep (its unfinished jobs need --resume, above)
        ident = {k: _clean(getattr(cfg, k)) for k in SWEEP_IDENTITY}
        claim_dir(out, "validate", ident, force=force, resume=True, compatible=("select",),
                  recorded=lambda d: _recorded_sweep(d, ident))
        return _sweep(cfg, out, cands, evals, jobs, status, ex)


def _sweep(cfg: ValidateConfig, out: Path, cands: list[str], evals: list[str], jobs: list[Job],
           status: dict[str, str], ex) -> dict:
    """Score, run the unfinished jobs on executor ``ex``, summarise and write (run_validate)."""
    t0 = time.perf_counter()
    score = _score(cfg, cands, evals, out)
    t_score = time.perf_counter() - t0
    todo = [j for j in jobs if status[j.run_dir] != "done"]
    results = []
    t0 = time.perf_counter()
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="validate jobs",
               disable=not cfg.progress)
    for r in ex.map(_run_job, [(cfg, j, evals) for j in todo]):
        results.append(r)
        bar.update(1)
    bar.close()
    t_jobs = time.perf_counter() - t0
    report = summarize(cfg, cands, evals, jobs, score)
    t0 = time.perf_counter()
    report["figures"] = _figures(cfg, jobs, out) if cfg.figures else {}
    t_fig = time.perf_counter() - t0
    report["timings"] = {"score_s": round(t_score, 3), "jobs_s": round(t_jobs, 3),
                         "figures_s": round(t_fig, 3)}
    report["jobs_run"] = results
    report["executor"] = ex.describe()
    report["jobs_skipped"] = [j.run_dir for j in jobs if status[j.run_dir] == "done"]
    _write_outputs(report, out)
    from reports import render_validation_report

    # the HTML page beside validation.json (Delta_OT intervals from the score table)
    render_validation_report(report, out, score_table=score["ranking"].get("table"))
    return report


def _figures(cfg: ValidateConfig, jobs: list[Job], out: Path) -> dict[str, str]:
    """Paper Figure 4 / 5 per candidate, from its seed-0 run at ``eval_alpha``: a sample grid
    (one row per class, ``figure_n`` samples) for images, or a UMAP of generated vs real samples
    coloured by label for vectors (``reports.validation_figures.umap_figure``). Existing figures
    are kept (resume). Returns ``{candidate: path relative to out}``."""
    import torch

    from featsel.data import load_dataset
    from generation.sample import decode, generate, load_run

    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    # the checkpoint step each figure was drawn from: a resumed sweep with a larger budget
    # redraws them (they showed the old, shorter-trained generators)
    steps_path = fig_dir / "steps.json"
    try:
        drawn = json.loads(steps_path.read_text())
    except (OSError, ValueError):
        drawn = {}
    paths = {}
    for j in jobs:
        if j.seed != 0:
            continue
        stem = f"samples_{candidate_dirname(j.candidate)}"
        step = _checkpoint_step(Path(j.run_dir))
        done = [p for p in (fig_dir / f"{stem}.png", fig_dir / f"{stem}_umap.png") if p.is_file()]
        if done and drawn.get(stem) == step:
            paths[j.candidate] = str(done[0].relative_to(out))
            continue
        model, tcfg, _ = load_run(j.run_dir, device=cfg.device)
        ds = load_dataset(tcfg.data, split=tcfg.data_split)
        space = ds.generation_space(tcfg.space or None)
        labels = torch.arange(model.num_classes).repeat_interleave(cfg.figure_n)
        with torch.no_grad():
            x = decode(space, generate(model, labels, float(cfg.eval_alpha), seed=0).cpu())
        if x.ndim == 4:
            from torchvision.utils import save_image

            target = fig_dir / f"{stem}.png"
            grid = x[:, :3].clamp(-1, 1)
            atomic_save(target, lambda tmp, grid=grid: save_image(
                grid, tmp, nrow=cfg.figure_n, normalize=True, value_range=(-1, 1)),
                suffix=".png")
        else:
            from reports.validation_figures import umap_figure

            target = fig_dir / f"{stem}_umap.png"
            real = ds.x.reshape(len(ds.x), -1).float().numpy()
            real_labels = (ds.labels.numpy() if ds.labels is not None
                           else torch.zeros(len(real), dtype=torch.long).numpy())
            umap_figure(real, real_labels, x.reshape(len(x), -1).numpy(), labels.numpy(), target,
                        class_names=list(ds.class_names) if ds.class_names else None,
                        title=f"{j.candidate} (seed {j.seed}, alpha {cfg.eval_alpha:g})",
                        seed=cfg.seed)
        paths[j.candidate] = str(target.relative_to(out))
        drawn[stem] = step
        atomic_write_json(steps_path, drawn)
    return paths


FD_KINDS = ("fd", "cond_fd")  # unconditional, conditional (mean of per-class FDs)


def fd_metric(kind: str, evaluation: str) -> str:
    """The name of one FD metric: ``fd[<space>]`` (unconditional) or ``cond_fd[<space>]``."""
    return f"{kind}[{evaluation}]"


def collect_fd(jobs: list[Job], evaluations: list[str], alpha: float) -> dict:
    """``{candidate: {metric: [FD per seed]}}`` from every job's ``eval.json``; two metrics per
    evaluation space, ``fd[<space>]`` and ``cond_fd[<space>]`` (`fd_metric`)."""
    fd: dict[str, dict[str, list[float]]] = {}
    key = f"{float(alpha):g}"
    for j in sorted(jobs, key=lambda j: (j.candidate, j.seed)):
        ev = _read_eval(Path(j.run_dir))
        if ev is None or key not in ev.get("alphas", {}):
            raise FileNotFoundError(f"no evaluation at alpha={key} in {j.run_dir}/eval.json")
        row = fd.setdefault(j.candidate, {})
        for e in evaluations:
            entry = ev["alphas"][key].get(e)
            if entry is None:
                raise FileNotFoundError(f"no evaluation in space {e!r} in {j.run_dir}/eval.json")
            if "cond_fd" not in entry:
                raise ValueError(f"{j.run_dir}/eval.json predates the conditional FD (no "
                                 f"'cond_fd'); rerun featsel validate (--resume) or featsel "
                                 f"evaluate to re-evaluate it")
            for k in FD_KINDS:
                v = entry[k]
                row.setdefault(fd_metric(k, e), []).append(math.nan if v is None else float(v))
    return fd


def _predictors(score: dict, cands: list[str], exclude) -> dict:
    """``{diagnostic: ({cand: value}, lower_is_better)}`` from the score results."""
    import numpy as np

    per = score["ranking"]["candidates"]
    out: dict[str, tuple[dict, bool]] = {}
    delta_keys = sorted({t for c in cands for t in per[c]["delta"]}, key=float)
    for t in delta_keys:
        out[f"delta_ot@{t}"] = ({c: per[c]["delta"][t]["mean"] for c in cands}, True)
    for k, lower in (("effective_rank", False), ("participation_ratio", False),
                     ("curve_slope", True)):
        vals = {c: per[c].get(k) for c in cands}
        if all(v is not None for v in vals.values()):
            out[k] = (vals, lower)
    if all(per[c].get("same_class_mass") is not None for c in cands):
        out["same_class_mass"] = ({c: per[c]["same_class_mass"] for c in cands}, False)
    # alignment R^2 to the evaluation spaces, over independent (not hacked) pairs only
    r2 = {}
    for c in cands:
        vals = [v for e, v in (per[c].get("alignment") or {}).items()
                if v is not None and (c, e) not in exclude]
        r2[c] = float(np.mean(vals)) if vals else math.nan
    if any(np.isfinite(v) for v in r2.values()):
        out["alignment_r2"] = (r2, False)
    # every registered criterion the score computed (featsel.diagnostics.criteria)
    from featsel.diagnostics.criteria import CRITERIA

    for name, crit in CRITERIA.items():
        vals = {c: (per[c].get("criteria") or {}).get(name, {}).get("mean") for c in cands}
        if all(v is not None for v in vals.values()):
            out[name] = (vals, crit.lower_is_better)
    return out


def _ranking_predictor(score: dict, preds: dict, tau_key: str) -> str:
    """The predictor that ranked the candidates in the score (its criterion, else Delta_OT)."""
    crit = score["ranking"].get("criterion")
    return crit if crit in preds else f"delta_ot@{tau_key}"


def summarize(cfg: ValidateConfig, cands: list[str], evals: list[str], jobs: list[Job],
              score: dict) -> dict:
    """The validation report from the score results and the jobs' eval.json files."""
    from featsel.confirmation import (
        compare_predictors,
        exclude_metrics,
        hacked_pairs,
        mean_fd_over_seeds,
        mean_fd_rank_excluding,
    )

    fd = collect_fd(jobs, evals, cfg.eval_alpha)
    metric_space = {fd_metric(k, e): e for e in evals for k in FD_KINDS}
    flags = score["ranking"].get("flags", [])
    same = [f for f in flags if "same network" in str(f.get("reason", ""))]
    exclude = hacked_pairs(cands, evals, flags if cfg.exclude_aligned else same)
    aligned = sorted(hacked_pairs(cands, evals, flags) - exclude)
    # a hacked (candidate, space) pair is left out of both FD metrics of that space
    exclude_m = exclude_metrics(exclude, metric_space)
    mean_fd = mean_fd_over_seeds(fd)
    table4 = mean_fd_rank_excluding(mean_fd, exclude_m)
    tau_key = f"{float(cfg.tau):g}"
    preds = _predictors(score, cands, exclude)
    comp = compare_predictors(preds, fd, exclude=exclude_m, n_boot=cfg.n_boot, seed=cfg.seed)
    main_name = _ranking_predictor(score, preds, tau_key)
    main = comp["per_predictor"][main_name]
    controls = [c for c in cands if c in set(score["ranking"].get("controls", []))]
    real = [c for c in cands if c not in controls]
    comp_real = None
    if controls and len(real) >= 3:  # the same, over the real candidates only
        comp_real = compare_predictors({k: ({c: v[c] for c in real}, lo)
                                        for k, (v, lo) in preds.items()},
                                       {c: fd[c] for c in real}, exclude=exclude_m,
                                       n_boot=cfg.n_boot, seed=cfg.seed)
    order_pred = [c for c in score["ranking"]["order"] if c in cands]
    mr = table4["mean_rank"]
    order_out = sorted([c for c in cands if math.isfinite(mr[c])], key=lambda c: (mr[c], c))
    rows = []
    for c in cands:
        r = {"candidate": c, "control": c in controls,
             "delta_ot_rank": order_pred.index(c) + 1,
             f"delta_ot@{tau_key}": preds[f"delta_ot@{tau_key}"][0][c],
             "mean_fd_rank": mr[c], "n_metrics_ranked": table4["n_metrics"][c],
             "n_seeds": len(next(iter(fd[c].values())))}
        for e in evals:
            for k in FD_KINDS:
                m = fd_metric(k, e)
                r[m] = mean_fd[c][m]
                r[f"{k}_rank[{e}]"] = table4["ranks"].get(m, {}).get(c, math.nan)
            r[f"hacked[{e}]"] = (c, e) in exclude
        rows.append(r)
    rows.sort(key=lambda r: (r["delta_ot_rank"]))
    verdict = _verdict(main, order_pred, order_out, comp, len(cands),
                       label=score["ranking"].get("criterion") or "Delta_OT")
    # curves, convergence and collapse (kept apart from the ranking: collapsed runs still count)
    health = training_health(cfg, cands, evals, jobs, exclude_m)
    for r in rows:
        r["n_collapsed"] = health["collapse"]["per_candidate"][r["candidate"]]["n_collapsed"]
    verdict = (verdict + " " + health.pop("caution")).strip()
    return _clean({
        "title": f"featsel validate: {score['settings']['data']} ({len(cands)} candidates x "
                 f"{cfg.seeds} seeds, {cfg.budget} steps)",
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {**asdict(cfg), "candidates": cands, "evaluations": evals},
        "predicted_order": order_pred,
        "predictor": main_name,
        "controls": controls,
        "outcome_order": order_out,
        "table": rows,
        "mean_fd_rank": mr,
        "fd_metrics": [{"metric": fd_metric(k, e), "evaluation": e, "kind": k}
                       for e in evals for k in FD_KINDS],
        "fd_ranks": table4["ranks"],
        "fd": {c: {e: fd[c][fd_metric("fd", e)] for e in evals} for c in cands},
        "cond_fd": {c: {e: fd[c][fd_metric("cond_fd", e)] for e in evals} for c in cands},
        "metric_hacking": [
            {"candidate": c, "evaluation": e,
             "note": "trained in (or aligned with) this evaluation space: its FDs there (fd and "
                     "cond_fd) are not independent evidence and are left out of those metrics' "
                     "ranks"}
            for c, e in sorted(exclude)],
        "aligned_not_excluded": [
            {"candidate": c, "evaluation": e,
             "note": "features predict this evaluation space (alignment R^2 at or above the "
                     "score threshold): read this FD with care; kept in the rank "
                     "(exclude_aligned=False)"}
            for c, e in aligned],
        "correlation": {k: main[k] for k in ("spearman", "kendall", "spearman_ci", "kendall_ci",
                                             "spearman_p", "n", "n_boot", "level", "n_seeds")},
        "predictors": comp["per_predictor"],
        "predictors_real": comp_real["per_predictor"] if comp_real else None,
        "correlation_real": ({k: comp_real["per_predictor"][main_name][k] for k in
                              ("spearman", "kendall", "spearman_ci", "kendall_ci", "spearman_p",
                               "n", "n_seeds")} if comp_real else None),
        "best_predictor": comp["best"],
        "best_predictor_reason": comp["best_reason"],
        "verdict": verdict,
        "score_dir": "score",
        **health,
    })


def _verdict(main: dict, order_pred: list[str], order_out: list[str], comp: dict,
             n: int, label: str = "Delta_OT") -> str:
    rho, tau = main["spearman"], main["kendall"]
    lo, hi = main["spearman_ci"]
    if not order_out:
        top = "No candidate has an independent FD left after the metric-hacking exclusions."
    elif order_pred[0] not in order_out:
        top = (f"{label}'s first choice {order_pred[0]!r} has no independent FD (metric "
               f"hacking); the best by mean FD rank was {order_out[0]!r}.")
    else:
        top = (f"{label}'s first choice {order_pred[0]!r} "
               + ("was" if order_pred[0] == order_out[0] else "was not")
               + f" the best by mean FD rank ({order_out[0]!r}).")
    if not math.isfinite(rho):
        return (f"Not enough to judge: {n} candidate(s) or constant ranks give no defined rank "
                f"correlation. {top}").strip()
    one_seed = min(main["n_seeds"].values()) < 2
    if rho <= 0:
        word = "did NOT predict the outcome"
    elif one_seed:
        word = ("agreed with the outcome, but with one seed per candidate there is no interval "
                "over seeds (run more --seeds)")
    elif lo > 0 and main["spearman_p"] < 0.05:
        word = "predicted the outcome"
    elif lo > 0:
        word = (f"agreed with the outcome across seeds, but with {main['n']} candidates a random "
                f"order agrees as well with probability {main['spearman_p']:.2f} (permutation "
                "p-value): not distinguishable from chance")
    else:
        word = "leaned the right way, but the bootstrap interval over seeds includes 0 or less"
    return (f"The {label} ranking {word}: Spearman {rho:+.2f} (95% CI {lo:+.2f} to "
            f"{hi:+.2f}), Kendall {tau:+.2f}, over {main['n']} candidates. {top} "
            f"Best diagnostic: {comp['best_reason']}.")


def _write_outputs(report: dict, out: Path) -> None:
    import pandas as pd

    _write_json(out / "validation.json", report)
    atomic_save(out / "validation.csv",
                lambda tmp: pd.DataFrame(report["table"]).to_csv(tmp, index=False))


# --- trustworthy outcomes: FD-vs-step curves, convergence, collapse ------------------------

EVAL_CURVE = "eval_curve.json"


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


def read_curve(run: str | os.PathLike) -> dict[int, dict]:
    """``{step: {"step", "budget", "alphas": {alpha: {space: {"fd", "cond_fd", "collapse",
    ...}}}}}`` from ``run/eval_curve.json``; {} without one (a run from before the curves, or
    one trained outside validate) or when it is unreadable."""
    p = Path(run) / EVAL_CURVE
    if not p.is_file():
        return {}
    try:
        return {int(pt["step"]): pt for pt in json.loads(p.read_text())["points"]}
    except (ValueError, KeyError, TypeError):
        return {}


def _add_curve_point(run: Path, ev: dict, budget: int) -> dict[int, dict]:
    """Add (or replace) the point of evaluation ``ev`` (``evaluate_run``'s dict) in
    ``run/eval_curve.json`` (atomic); returns all points."""
    points = read_curve(run)
    points[int(ev["step"])] = {"step": int(ev["step"]), "budget": int(budget),
                               "alphas": ev["alphas"]}
    _write_json(run / EVAL_CURVE, {"points": [points[k] for k in sorted(points)]})
    return points


def _point_complete(point: dict | None, evaluations: list[str], alpha: float) -> bool:
    got = ((point or {}).get("alphas") or {}).get(f"{float(alpha):g}") or {}
    return all("cond_fd" in got.get(e, {}) and "collapse" in got.get(e, {}) for e in evaluations)


def _run_points(run: Path) -> dict[int, dict]:
    """A run's evaluated points: its curve, plus ``eval.json`` when the curve lacks that step
    (a run evaluated before the curves: its curve is the final point alone)."""
    points = dict(read_curve(run))
    ev = _read_eval(run)
    if ev is not None and isinstance(ev.get("step"), int) and ev["step"] not in points:
        points[ev["step"]] = {"step": ev["step"], "alphas": ev.get("alphas") or {}}
    return points


def _num(v: Any) -> float:
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError):
        return math.nan


def training_health(cfg: ValidateConfig, cands: list[str], evals: list[str], jobs: list[Job],
                    exclude: Any = ()) -> dict:
    """Can the outcome be trusted? From every job's ``eval_curve.json`` and ``eval.json``.

    Returns ``{"eval_steps": [S], "curves": {cand: {metric: {"steps", "mean", "n_seeds",
    "per_seed": {seed: [S]}}}}, "convergence": {"rule", "per_candidate": {cand: {metric:
    still_improving(...)}}, "best_runs": {metric: {"candidate", "seed", ...}}}, "collapse":
    {"space", "alpha", "rule", "runs": [{"candidate", "seed", "collapsed", "reasons",
    "variance_ratio", "coverage", ...}], "per_candidate": {cand: {"n_collapsed", "n_runs",
    "n_unknown"}}}, "warnings": [str], "caution": str (a sentence for the verdict, or "")}``.

    Rules: a curve is the mean over seeds per evaluation step (``curve_over_seeds``); it is
    still improving when its FD fell by more than ``improving_threshold`` from the last
    evaluation at or before the 75% step of the budget to the final step (``still_improving``), checked
    for every candidate's mean curve and, per metric, for the best run (lowest final FD among
    the pairs not excluded for metric hacking, ``exclude``: (candidate, metric) pairs).
    Collapse is read in the first evaluation space at ``eval_alpha`` and judged by
    ``collapse_verdict`` with the config's thresholds; a collapsed run keeps its FDs.
    """
    from featsel.confirmation import curve_over_seeds, still_improving

    key = f"{float(cfg.eval_alpha):g}"
    steps = eval_steps(cfg.eval_fractions, cfg.budget)
    metrics = [(fd_metric(k, e), k, e) for e in evals for k in FD_KINDS]
    excl = {(str(c), str(m)) for c, m in exclude}
    per_run: dict[tuple[str, int], dict[str, dict[int, float]]] = {}
    lacking: dict[str, list[int]] = {}
    for j in sorted(jobs, key=lambda j: (j.candidate, j.seed)):
        pts = _run_points(Path(j.run_dir))
        per_run[j.candidate, j.seed] = {
            m: {s: _num(((p.get("alphas") or {}).get(key) or {}).get(e, {}).get(k))
                for s, p in pts.items()} for m, k, e in metrics}
        miss = [s for s in steps if s not in pts]
        if miss:
            lacking[j.run_dir] = miss
    seeds = {c: sorted(k for cc, k in per_run if cc == c) for c in cands}
    curves: dict[str, dict] = {}
    conv: dict[str, dict] = {}
    for c in cands:
        curves[c], conv[c] = {}, {}
        for m, _, _ in metrics:
            runs = [per_run[c, k][m] for k in seeds[c]]
            cur = curve_over_seeds(runs, steps)
            cur["per_seed"] = {str(k): [r.get(s, math.nan) for s in steps]
                               for k, r in zip(seeds[c], runs)}
            curves[c][m] = cur
            conv[c][m] = still_improving(steps, cur["mean"], cfg.budget,
                                         threshold=cfg.improving_threshold)
    best_runs = {}
    for m, _, _ in metrics:
        final = [(v, c, k) for (c, k), r in per_run.items() if (c, m) not in excl
                 for v in [r[m].get(cfg.budget, math.nan)] if math.isfinite(v)]
        if final:
            _, c, k = min(final)
            r = per_run[c, k][m]
            best_runs[m] = {"candidate": c, "seed": k,
                            **still_improving(steps, [r.get(s, math.nan) for s in steps],
                                              cfg.budget, threshold=cfg.improving_threshold)}
    warnings: list[str] = []
    n_improving = 0
    for c in cands:
        bad = [(m, v) for m, v in conv[c].items() if v["still_improving"]]
        if bad:
            n_improving += 1
            ref = bad[0][1]["ref_step"]
            warnings.append(
                f"candidate {c!r} was still improving over the last quarter of the budget "
                f"(mean FD over seeds, step {ref} to {cfg.budget}): "
                + ", ".join(f"{m} {-v['rel_improvement']:+.1%}" for m, v in bad)
                + f" (more than {cfg.improving_threshold:.0%}); its outcome at the final step "
                  "may not be converged (try a larger --budget)")
    improving_best = {}
    for m, b in best_runs.items():
        if b["still_improving"]:
            improving_best.setdefault((b["candidate"], b["seed"]), []).append((m, b))
    for (c, k), items in improving_best.items():
        warnings.append(
            f"the best run (lowest final FD) of {', '.join(m for m, _ in items)}, {c!r} seed "
            f"{k}, was still improving over the last quarter of the budget (step "
            f"{items[0][1]['ref_step']} to {cfg.budget}): "
            + ", ".join(f"{m} {-b['rel_improvement']:+.1%}" for m, b in items))
    if lacking:
        miss = sorted({s for v in lacking.values() for s in v})
        warnings.append(
            f"{len(lacking)} run(s) have no evaluation at step(s) {miss} (e.g. "
            f"{next(iter(lacking))!r}): trained past them before this sweep asked for them "
            "(featsel train, a dry run, an older featsel validate, or another --budget / "
            "--eval-fractions); their curves hold fewer points and convergence is checked on "
            "the points there are")
    collapse = _collapse_report(cfg, cands, evals, jobs, key)
    for c, n in collapse["per_candidate"].items():
        if n["n_collapsed"]:
            runs = [r for r in collapse["runs"] if r["candidate"] == c and r["collapsed"]]
            warnings.append(
                f"candidate {c!r}: {n['n_collapsed']} of {n['n_runs']} run(s) collapsed in "
                f"{collapse['space']!r} ("
                + "; ".join(f"seed {r['seed']}: {' and '.join(r['reasons'])}" for r in runs)
                + "); their FDs are kept in the ranking")
    unknown = sum(n["n_unknown"] for n in collapse["per_candidate"].values())
    if unknown:
        warnings.append(f"{unknown} run(s) have no collapse statistics (an eval.json from before "
                        "them): rerun featsel validate --resume to measure them")
    n_coll = sum(n["n_collapsed"] for n in collapse["per_candidate"].values())
    parts = []
    if n_improving:
        parts.append(f"{n_improving} candidate(s) still improving at the end of training")
    if improving_best:
        parts.append(f"the best run of {sum(len(v) for v in improving_best.values())} "
                     "metric(s) still improving")
    if n_coll:
        parts.append(f"{n_coll} collapsed run(s)")
    caution = f"Caution: {'; '.join(parts)} (see warnings)." if parts else ""
    return {"eval_steps": steps, "curves": curves,
            "convergence": {"rule": f"still improving when (FD at the last evaluation at or "
                                    f"before the 75% step of the budget - FD at the final step) / the "
                                    f"former > {cfg.improving_threshold:g}",
                            "per_candidate": conv, "best_runs": best_runs},
            "collapse": collapse, "warnings": warnings, "caution": caution}


def _collapse_report(cfg: ValidateConfig, cands: list[str], evals: list[str], jobs: list[Job],
                     key: str) -> dict:
    """Per job the collapse verdict at the final evaluation (``eval.json``) in the first
    evaluation space, re-judged from its stored numbers with the config's thresholds."""
    from featsel.confirmation import collapse_verdict

    space = evals[0]
    rule = {"min_variance_ratio": cfg.collapse_min_variance_ratio,
            "min_coverage": cfg.collapse_min_coverage, "min_share": cfg.collapse_min_share}
    runs = []
    for j in sorted(jobs, key=lambda j: (j.candidate, j.seed)):
        ev = _read_eval(Path(j.run_dir)) or {}
        stats = (((ev.get("alphas") or {}).get(key) or {}).get(space) or {}).get("collapse")
        row = {"candidate": j.candidate, "seed": j.seed, "run": j.run_dir, "step": ev.get("step")}
        if stats is None:
            row.update(collapsed=None, reasons=["not measured (eval.json from before the "
                                                 "collapse statistics)"])
        else:
            v = collapse_verdict(_num(stats.get("variance_ratio")),
                                 stats.get("nearest_share_per_class") or {}, **rule)
            row.update({k: v[k] for k in ("collapsed", "reasons", "variance_ratio", "coverage",
                                          "n_classes", "uncovered")})
        runs.append(row)
    per = {c: {"n_collapsed": sum(r["collapsed"] is True for r in runs if r["candidate"] == c),
               "n_runs": sum(r["candidate"] == c for r in runs),
               "n_unknown": sum(r["collapsed"] is None for r in runs if r["candidate"] == c)}
           for c in cands}
    return {"space": space, "alpha": float(cfg.eval_alpha),
            "rule": (f"collapsed when the mean over classes of tv(generated class) / tv(real "
                     f"class) < {cfg.collapse_min_variance_ratio:g} (tv: total variance, the "
                     f"trace of the covariance) or fewer than {cfg.collapse_min_coverage:.0%} "
                     f"of the real classes are covered (a class is covered when >= "
                     f"{cfg.collapse_min_share:.0%} of its generated samples lie nearest to its "
                     f"real centroid), in {space!r} at the final step"),
            **rule, "runs": runs, "per_candidate": per}
