"""Run the jobs of a `featsel validate` sweep: train each (candidate, seed) to every
evaluation step and evaluate it there (on an executor: a worker process, a Ray task, or in this
process), and say what a job still needs (``job_status``)."""

from __future__ import annotations

import time
from pathlib import Path

from generation.run import add_curve_point, checkpoint_step, point_complete, read_curve, read_eval
from generation.validation.plan import (
    Job,
    ValidateConfig,
    collapse_rule,
    eval_steps,
    job_identity,
    train_args,
    train_config,
)

__all__ = ["train_stage", "job_status", "run_job"]


def train_stage(cfg: ValidateConfig, job: Job, until: int) -> dict:
    """Train ``job`` to step ``until`` (resuming its checkpoint). ``cfg.nproc`` = 0: in this
    process; N >= 1: ``torchrun --standalone --nproc_per_node N`` runs ``featsel train`` as a
    DDP job (the classes of a step shared out across N processes: NCCL on GPUs, gloo on a
    CPU), its summary read back from the checkpoint. Returns train's summary keys."""
    from generation.train import train

    if not cfg.nproc:
        return train(train_config(cfg, job), resume=True, until=until)
    import subprocess
    import sys

    run = Path(job.run_dir)
    before = checkpoint_step(run) or 0
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={cfg.nproc}", "-m", "featsel.cli",
            *train_args(cfg, job), "--until", str(until), "--quiet", "--device", cfg.device]
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if "error:" in ln] or \
            done.stderr.strip().splitlines()[-1:]
        raise RuntimeError(f"job {job.run_dir}: torchrun with {cfg.nproc} processes failed "
                           f"(exit {done.returncode}): {lines[0] if lines else ''}")
    after = checkpoint_step(run) or 0
    return {"out": str(run), "steps": cfg.budget, "stopped_at": after, "resumed_from": before,
            "steps_run": after - before, "time_s": round(time.perf_counter() - t0, 3),
            "nproc": cfg.nproc}


def job_status(job: Job, budget: int, evaluations: list[str], alpha: float) -> str:
    """'done' (trained to the budget and evaluated in every space, conditional FD included),
    'trained' (needs the evaluation), 'partial' (a checkpoint below the budget) or 'new'."""
    run = Path(job.run_dir)
    step = checkpoint_step(run, job_identity(job))
    if step is None:
        return "new"
    if step < budget:
        return "partial"
    ev = read_eval(run)
    # an eval.json written before the conditional FD (no cond_fd), before real references
    # in the ambient space (no real_reference) or before the collapse statistics (no
    # collapse) is evaluated again
    if (ev and ev.get("step") == step and "real_reference" in ev
            and point_complete(ev, evaluations, alpha)):
        return "done"
    return "trained"


def run_job(cfg: ValidateConfig, job: Job, evaluations: list[str]) -> dict:
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
        step = checkpoint_step(run, job_identity(job)) or 0
        curve = read_curve(run)

        def evaluate_here(final: bool) -> dict[int, dict]:
            """Evaluate the checkpoint (eval.json) and add it to the curve; the off-data
            statistics (k-NN balls over the real split: seconds on 10,000 samples) only at the
            final step, the only one the summary reads them at."""
            ev = evaluate_run(job.run_dir, n_per_class=cfg.eval_n_per_class,
                              alphas=[cfg.eval_alpha], featurizers=evaluations,
                              device=cfg.device, kid=False, collapse_rule=collapse_rule(cfg),
                              support=final)
            evaluated.append(int(ev["step"]))
            return add_curve_point(run, ev, cfg.budget)

        for s in eval_steps(cfg.eval_fractions, cfg.budget):
            if s < step:
                continue
            if s > step:
                stages.append(train_stage(cfg, job, s))
                step = s
            # the final step is always evaluated here (the job was not done); an intermediate
            # one unless a killed sweep already recorded it
            if s == cfg.budget or not point_complete(curve.get(s), evaluations,
                                                      cfg.eval_alpha):
                curve = evaluate_here(final=s == cfg.budget)
        if status == "trained" and not evaluated:  # a checkpoint past the budget (a smaller
            evaluate_here(final=True)              # --budget): evaluated there, as before
    trained = None
    if stages:  # one summary: where it resumed from and what all stages ran
        trained = {**stages[-1], "resumed_from": stages[0]["resumed_from"],
                   "steps_run": sum(t["steps_run"] for t in stages),
                   "time_s": round(sum(t["time_s"] for t in stages), 3), "stages": len(stages)}
    return {"candidate": job.candidate, "seed": job.seed, "status_before": status,
            "train": trained, "evaluated": bool(evaluated), "evaluated_steps": evaluated,
            "time_s": round(time.perf_counter() - t0, 3)}
