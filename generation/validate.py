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
   final step's, as before); see ``generation.validation.jobs.run_job``;
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

Each stage is a module of ``generation.validation`` (plan, score, jobs, collect, summarise,
figures, publish); this module runs them in order and re-exports their public names.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

from featsel.rundir import claim_dir
from generation.run import EVAL_CURVE, clean_json, read_curve
from generation.validation.collect import FD_KINDS, collect_fd, fd_metric
from generation.validation.figures import figure_data
from generation.validation.jobs import job_status, run_job, train_stage
from generation.validation.plan import (
    Job,
    ValidateConfig,
    candidate_dirname,
    check_settings,
    eval_steps,
    plan_jobs,
    resolve_lists,
    train_command,
    train_config,
)
from generation.validation.publish import render, write_outputs
from generation.validation.score import score_candidates
from generation.validation.summarise import summarize, training_health

__all__ = ["ValidateConfig", "Job", "plan_jobs", "job_status", "run_validate", "train_command",
           "eval_steps", "read_curve", "training_health", "candidate_dirname", "check_settings",
           "collect_fd", "summarize", "train_stage", "fd_metric", "FD_KINDS", "EVAL_CURVE",
           "SWEEP_IDENTITY"]


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
    from generation.executors import make_executor

    out, cands, evals, jobs = _plan(cfg, out)
    if dry_run:
        return {"commands": [train_command(cfg, j) for j in jobs],
                "jobs": [asdict(j) for j in jobs]}
    status = {j.run_dir: job_status(j, cfg.budget, evals, cfg.eval_alpha) for j in jobs}
    partial = [j.run_dir for j in jobs if status[j.run_dir] == "partial"]
    if partial and not resume:
        raise ValueError(f"--out: {len(partial)} unfinished job(s) hold checkpoints below the "
                         f"budget (e.g. {partial[0]!r}); pass --resume to continue them")
    # made before anything is written: Ray missing or an unreachable --address fails here
    with make_executor(cfg.executor, jobs=cfg.jobs, address=cfg.address,
                       cpus_per_job=cfg.cpus_per_job, gpus_per_job=cfg.gpus_per_job,
                       device=cfg.device) as ex:
        # the folder rule (featsel.rundir); finished jobs are always reused, so a rerun with
        # the same identity continues the sweep (its unfinished jobs need --resume, above)
        ident = {k: clean_json(getattr(cfg, k)) for k in SWEEP_IDENTITY}
        claim_dir(out, "validate", ident, force=force, resume=True, compatible=("select",),
                  recorded=lambda d: _recorded_sweep(d, ident))
        t0 = time.perf_counter()
        score = score_candidates(cfg, cands, evals, out)
        t_score = time.perf_counter() - t0
        t0 = time.perf_counter()
        results = _run_jobs(cfg, [j for j in jobs if status[j.run_dir] != "done"], evals, ex,
                            done=sum(s == "done" for s in status.values()))
        t_jobs = time.perf_counter() - t0
        report = summarize(cfg, cands, evals, jobs, score)
        t0 = time.perf_counter()
        report["figures"] = figure_data(cfg, jobs, out) if cfg.figures else {}
        report["timings"] = {"score_s": round(t_score, 3), "jobs_s": round(t_jobs, 3),
                             "figures_s": round(time.perf_counter() - t0, 3)}
        report["jobs_run"] = results
        report["executor"] = ex.describe()
        report["jobs_skipped"] = [j.run_dir for j in jobs if status[j.run_dir] == "done"]
        write_outputs(report, out)
        render(report, out, score)
        return report


def _plan(cfg: ValidateConfig, out: str | os.PathLike
          ) -> tuple[Path, list[str], list[str], list[Job]]:
    """Every setting checked and the jobs planned, before any work: (out, candidates,
    evaluation spaces, jobs)."""
    from generation.executors import EXECUTORS

    check_settings(cfg)
    if cfg.executor not in EXECUTORS:
        raise ValueError(f"--executor: expected one of {', '.join(EXECUTORS)}, got "
                         f"{cfg.executor!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {str(out)!r} exists and is not a directory")
    cands, evals = resolve_lists(cfg)
    jobs = plan_jobs(cfg, cands, out)
    train_config(cfg, jobs[0])  # a bad --config / --set fails before any work
    return out, cands, evals, jobs


def _run_jobs(cfg: ValidateConfig, todo: list[Job], evals: list[str], ex, done: int) -> list[dict]:
    """Run the unfinished jobs on executor ``ex`` (a progress bar over all jobs)."""
    from tqdm.auto import tqdm

    results = []
    bar = tqdm(total=done + len(todo), initial=done, desc="validate jobs",
               disable=not cfg.progress)
    for r in ex.map(run_job, [(cfg, j, evals) for j in todo]):
        results.append(r)
        bar.update(1)
    bar.close()
    return results
