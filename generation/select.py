"""`featsel select`: budgeted selection of a featurizer by successive halving, the score as prior.

A full confirmation sweep (`featsel validate`) trains every candidate x seed to the whole budget B.
A selection spends training only where the choice is still open (the rules are pure functions in
``featsel.halving``):

0. **Rung 0**, ``OUT/score``: ``featsel score`` of the candidates (the stage of `featsel
   validate`, ``generation.validation.score.score_candidates``: reused when its settings
   match; it adds the noise controls). Its order by the ranking criterion is the *prior*.
   Dropped here: the controls (never trained), candidates without an evaluation metric
   independent of them (every evaluation space is their own network, or aligned with it under
   ``exclude_aligned``), and with ``prior_keep`` < 1 all but the best ``ceil(prior_keep * n)``
   by the prior (only when the score's criterion is valid on this data: every control ranked
   below every real candidate).
1. **Rungs 1..R**: every surviving (candidate, seed) trains to the rung's step s_r
   (``featsel.halving.schedule``: s_R = B), *continuing* from its checkpoint at s_{r-1}
   (``generation.train.train(..., resume=True, until=s_r)``; the learning-rate schedule is B's
   throughout, so a run stopped at s_r is exactly the first s_r steps of the full-budget run
   that `featsel validate` trains in the same folder), is evaluated in every evaluation space
   (``generation.evaluate.evaluate_run``: ``fd[<space>]`` and ``cond_fd[<space>]`` at
   ``eval_alpha``, one point per rung in the run's ``eval_curve.json``), and the candidates are
   ordered by mean FD rank over (metric, seed) cells with collapsed runs ranked below healthy
   ones and metric-hacking pairs left out (``featsel.halving.run_ranks``), ties broken by the prior then
   the name; the best ``ceil(n_r / eta)`` go on. The last rung trains the one left to B: the
   chosen candidate.
2. ``OUT/selection.json`` (rewritten after every rung; ``complete`` true at the end): per rung
   the candidates, their FDs per metric and seed, collapse flags, ranks, the order, the
   survivors and the candidate-steps spent, and ``keep_share`` (``featsel.halving.keep_shares``:
   per candidate, the share of seed resamples in which it would have gone on; the last rung's:
   would have been chosen), with a warning for a close call; the chosen candidate; the total
   compute in candidate-steps and as a fraction of the full sweep (every real candidate x seeds
   x B).
   ``OUT/selection.html``: the rung diagram (``reports.render_selection_report``).

Runs live in ``OUT/runs/<candidate>/seed<k>`` (`featsel validate`'s layout and training config),
so ``featsel validate --out OUT --resume`` on the same settings completes the full sweep from
the selection's runs. Jobs run on an executor (``generation.executors``: the local process pool
or Ray). A rerun with ``resume`` reuses every job already evaluated at its rung's step and
continues the others from their checkpoints; nothing is retrained.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from featsel import defaults as D
from featsel.rundir import claim_dir
from generation.run import (
    EVAL_CURVE,
    add_curve_point,
    checkpoint_step,
    clean_json,
    has_checkpoint,
    point_complete,
    read_curve,
    write_json,
)
from generation.validation.collect import FD_KINDS, fd_metric, num
from generation.validation.jobs import train_stage
from generation.validation.plan import (
    Job,
    ValidateConfig,
    collapse_rule,
    eval_steps,
    job_identity,
    plan_jobs,
    resolve_lists,
    train_config,
)
from generation.validation.score import score_candidates

__all__ = ["SelectConfig", "run_select", "summary_line", "SETTINGS_THAT_MUST_MATCH"]

SELECTION_JSON = "selection.json"

# settings a resumed selection must share with the one in --out (the rest, e.g. the executor,
# the number of workers or the device, may change between runs)
SETTINGS_THAT_MUST_MATCH = (
    "data", "candidates", "evaluations", "budget", "eta", "seeds", "prior_keep", "config",
    "overrides", "eval_n_per_class", "eval_alpha", "tau", "criterion", "score_max_samples",
    "score_repeats", "score_n", "score_split", "exclude_aligned", "seed",
)


@dataclass
class SelectConfig:
    """Settings of one `featsel select` (defaults: ``featsel.defaults``, ``ValidateConfig``)."""

    data: str = ValidateConfig.data
    featurizers: list[str] | None = None    # candidates; None: the manifest's
    evaluations: list[str] | None = None    # evaluation featurizers; None: the manifest's
    budget: int = ValidateConfig.budget     # full training steps (the last rung's)
    eta: int = D.SELECT_ETA                 # keep the best ceil(n / eta) at each rung
    seeds: int = D.SELECT_SEEDS             # seeds 0 .. seeds-1 per candidate
    prior_keep: float = D.SELECT_PRIOR_KEEP  # rung 0 keeps this fraction by the score
    config: str | None = None               # base TrainConfig YAML (configs/...)
    overrides: list[str] = field(default_factory=list)  # TrainConfig key=value overrides
    executor: str = D.EXECUTOR              # "local" | "ray"
    address: str | None = None              # ray: auto | ray://HOST:PORT | HOST:PORT
    jobs: int = D.SELECT_JOBS               # local workers (ray started here: concurrent jobs)
    cpus_per_job: float = D.CPUS_PER_JOB    # ray: num_cpus per job
    gpus_per_job: float | None = None       # ray: num_gpus per job; None: 1 on cuda, else 0
    nproc: int = 0                          # processes per job (torchrun, DDP); 0: in-process
    eval_n_per_class: int | None = None     # None: the TrainConfig's eval_n_per_class
    eval_alpha: float = ValidateConfig.eval_alpha  # guidance alpha whose FDs rank the runs
    tau: float = ValidateConfig.tau         # the score's Delta_OT headline tau
    criterion: str | None = None            # the score's ranking criterion; None: the default
    score_max_samples: int | None = None    # subsample the score pool
    score_repeats: int = ValidateConfig.score_repeats
    score_n: int | None = None
    score_split: str | None = None          # None: the training config's split
    score_flow: bool = ValidateConfig.score_flow  # also the particle flow (costly)
    score_inversion: bool = ValidateConfig.score_inversion  # also the inversion share
    exclude_aligned: bool = False           # also leave out FDs in R^2-aligned spaces
    device: str = "cpu"
    seed: int = 0                           # score seed
    progress: bool = True
    # the curve's steps (featsel validate's): a rung's jobs are also evaluated at those they
    # pass, so that `featsel validate --resume` in the same folder finds every run's full curve
    eval_fractions: tuple[float, ...] = D.EVAL_FRACTIONS

    def sweep(self) -> ValidateConfig:
        """The `featsel validate` settings of the same runs (their layout, training config,
        evaluation steps and score); the rungs add their own steps to each run's curve."""
        keys = ("data", "featurizers", "evaluations", "budget", "seeds", "config", "jobs",
                "executor", "address", "cpus_per_job", "gpus_per_job", "eval_n_per_class",
                "eval_alpha", "tau", "criterion", "score_max_samples", "score_repeats",
                "score_n", "score_split", "score_flow", "score_inversion", "exclude_aligned",
                "device", "seed", "progress", "nproc")
        return ValidateConfig(**{k: getattr(self, k) for k in keys},
                              overrides=list(self.overrides),
                              eval_fractions=tuple(self.eval_fractions), figures=False)


def _rung_job(v: ValidateConfig, job: Job, evaluations: list[str], step: int) -> dict:
    """Train ``job`` to ``step`` (continuing from its checkpoint; the schedule is the full
    budget's) and evaluate it there, adding the point to its ``eval_curve.json``. Runs on the
    executor. A job already evaluated at ``step`` is returned as reused; one whose checkpoint
    passed ``step`` without an evaluation there cannot be ranked (ValueError)."""
    from generation.evaluate import evaluate_run
    t0 = time.perf_counter()
    run = Path(job.run_dir)
    # 0 without a checkpoint; one of another data set, featurizer or seed, or trained for
    # another budget (another learning-rate schedule), raises: never continue someone else's run
    have = checkpoint_step(run, {**job_identity(job), "steps": v.budget}) or 0
    point_ok = point_complete(read_curve(run).get(step), evaluations, v.eval_alpha)
    row = {"candidate": job.candidate, "seed": job.seed, "step": step, "resumed_from": have,
           "steps_run": 0, "evaluated": False}
    if have >= step and point_ok:
        return {**row, "status": "reused", "time_s": round(time.perf_counter() - t0, 3)}
    if have > step:
        raise ValueError(f"--out: {str(run)!r} was trained to step {have}, past this rung's "
                         f"step {step}, without an evaluation there; use another --out or "
                         "delete that run")
    # resumes (a fresh run starts from scratch; a run folder made with other settings is
    # refused); in this process, or under torchrun with --nproc processes. It stops at the
    # curve's steps on the way (featsel validate's) and is evaluated at each: a curve step past
    # the checkpoint cannot have been evaluated yet
    for s in [e for e in eval_steps(v.eval_fractions, v.budget) if have < e < step] + [step]:
        if have < s:
            row["steps_run"] += int(train_stage(v, job, s)["steps_run"])
            have = s
        ev = evaluate_run(job.run_dir, n_per_class=v.eval_n_per_class, alphas=[v.eval_alpha],
                          featurizers=evaluations, device=v.device, kid=False,
                          collapse_rule=collapse_rule(v))
        add_curve_point(run, ev, v.budget)
    return {**row, "evaluated": True, "status": "trained" if row["steps_run"] else "evaluated",
            "time_s": round(time.perf_counter() - t0, 3)}


def _read_rung(v: ValidateConfig, cands: list[str], evals: list[str], jobs: dict, step: int,
               exclude: set) -> dict:
    """FDs, collapse flags and ranks of ``cands`` at ``step`` from their runs' curves."""
    from featsel.confirmation import collapse_verdict
    from featsel.halving import run_ranks

    key = f"{float(v.eval_alpha):g}"
    metrics = [fd_metric(k, e) for e in evals for k in FD_KINDS]
    fd = {c: {m: [] for m in metrics} for c in cands}
    collapsed: dict[str, list[bool]] = {c: [] for c in cands}
    for c in cands:
        for k in range(v.seeds):
            run = Path(jobs[c, k].run_dir)
            point = read_curve(run).get(step)
            if not point_complete(point, evals, v.eval_alpha):
                raise FileNotFoundError(f"no evaluation at step {step} in {run / EVAL_CURVE}")
            got = point["alphas"][key]
            for e in evals:
                for kind in FD_KINDS:
                    fd[c][fd_metric(kind, e)].append(num(got[e].get(kind)))
            stats = got[evals[0]].get("collapse") or {}
            verdict = collapse_verdict(num(stats.get("variance_ratio")),
                                       stats.get("nearest_share_per_class") or {},
                                       **collapse_rule(v))
            collapsed[c].append(verdict["collapsed"] is True)
    ranks = run_ranks(fd, collapsed, [(c, m) for c, m in exclude if c in fd])
    mean_fd = {c: {m: (sum(x for x in vals if math.isfinite(x)) /
                       max(1, sum(math.isfinite(x) for x in vals))
                       if any(math.isfinite(x) for x in vals) else math.nan)
                   for m, vals in row.items()} for c, row in fd.items()}
    return {"metrics": metrics, "fd": fd, "mean_fd": mean_fd, "collapsed": collapsed, **ranks}


def _settings(cfg: SelectConfig, cands: list[str], evals: list[str]) -> dict:
    return {**asdict(cfg), "candidates": cands, "evaluations": evals}


def _check_out(cfg: SelectConfig, out: Path, jobs: list[Job], cands: list[str],
               evals: list[str], resume: bool) -> None:
    """Refuse an ``out`` that holds another selection, or this one without ``resume``."""
    sel = out / SELECTION_JSON
    started = [j.run_dir for j in jobs if has_checkpoint(j.run_dir)]
    if not resume and (sel.is_file() or started):
        what = (f"{len(started)} run(s) with checkpoints (e.g. {started[0]!r})" if started
                else "a selection.json")
        raise ValueError(f"--out: {str(out)!r} already holds {what}; pass --resume to reuse "
                         "and continue it, or choose another --out")
    if resume and sel.is_file():
        import json

        try:
            old = json.loads(sel.read_text()).get("settings") or {}
        except ValueError:
            old = {}
        new = _settings(cfg, cands, evals)
        diff = [k for k in SETTINGS_THAT_MUST_MATCH if k in old and old[k] != new[k]]
        if diff:
            raise ValueError(f"--resume: {str(sel)!r} was made with other settings ("
                             + ", ".join(f"{k}={old[k]!r}, now {new[k]!r}" for k in diff)
                             + "); use the same settings or another --out")


def run_select(cfg: SelectConfig, out: str | os.PathLike, *, resume: bool = False,
               force: bool = False) -> dict:
    """The whole selection (module docstring). Returns the selection dict, also written to
    ``out/selection.json`` and rendered as ``out/selection.html``. Every argument is checked
    and the executor made (Ray started or joined) before anything is written."""
    from featsel.features.controls import is_control
    from featsel.halving import check_eta, rung0, schedule
    from generation.executors import make_executor

    t_start = time.perf_counter()
    check_eta(cfg.eta)
    rung0([], prior_keep=cfg.prior_keep)  # a bad --prior-keep fails here
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {str(out)!r} exists and is not a directory")
    v = cfg.sweep()
    cands, evals = resolve_lists(v)
    jobs = plan_jobs(v, cands, out)  # checks --budget >= 1, --seeds >= 1, duplicate specs
    real = [c for c in cands if not is_control(c)]
    if not real:
        raise ValueError(f"--featurizers: every candidate is a control ({cands}); give at least "
                         "one real featurizer")
    # the most rungs any rung-0 outcome can need: --budget must cover them
    schedule(len(real), cfg.eta, cfg.budget, cfg.seeds)
    train_config(v, jobs[0])  # a bad --config / --set fails before any work
    if not force:
        _check_out(cfg, out, jobs, cands, evals, resume)
    with make_executor(cfg.executor, jobs=cfg.jobs, address=cfg.address,
                       cpus_per_job=cfg.cpus_per_job, gpus_per_job=cfg.gpus_per_job,
                       device=cfg.device) as ex:
        # the folder rule of every command (featsel.rundir): a non-empty folder that is not
        # this selection is refused unless force (which replaces it)
        settings = _settings(cfg, cands, evals)
        ident = {k: settings[k] for k in SETTINGS_THAT_MUST_MATCH}
        # a folder holding only what select writes (e.g. a copied score/) is taken as its own
        own = {"score", "runs", "figures", SELECTION_JSON, "selection.html"}
        claim_dir(out, "select", ident, force=force, resume=True,
                  recorded=lambda d: ident if all(p.name in own for p in d.iterdir()) else None)
        return _select(cfg, v, out, cands, evals, real, jobs, ex, t_start)


def _select(cfg: SelectConfig, v: ValidateConfig, out: Path, cands: list[str],
            evals: list[str], real: list[str], jobs: list[Job], ex, t_start: float) -> dict:
    from tqdm.auto import tqdm

    from featsel.confirmation import exclude_metrics, hacked_pairs
    from featsel.features.controls import is_control
    from featsel.halving import keep_count, keep_shares, order_candidates, rung0, schedule

    t0 = time.perf_counter()
    score = score_candidates(v, cands, evals, out)
    t_score = time.perf_counter() - t0
    rk = score["ranking"]
    controls = [c for c in rk["order"] if c in set(rk.get("controls", [])) or is_control(c)]
    prior = [c for c in rk["order"] if c in cands or c in controls]
    metric_space = {fd_metric(k, e): e for e in evals for k in FD_KINDS}
    flags = rk.get("flags", [])
    same = [f for f in flags if "same network" in str(f.get("reason", ""))]
    hacked = hacked_pairs(cands, evals, flags if cfg.exclude_aligned else same)
    exclude = exclude_metrics(hacked, metric_space)
    unrankable = {c: ("no independent FD: every evaluation space is the candidate's own network"
                      + (" or aligned with it" if cfg.exclude_aligned else "") + " (metric hacking)")
                  for c in real if all((c, m) in exclude for m in metric_space)}
    r0 = rung0(prior, controls=controls, unrankable=unrankable, prior_keep=cfg.prior_keep,
               prior_valid=bool(rk.get("valid", True)))
    warnings: list[str] = []
    if cfg.prior_keep < 1 and not r0["prior_keep_applied"] and len(r0["survivors"]) > 1:
        why = rk.get("invalid_reason") or "a control ranked above a real candidate"
        warnings.append(f"--prior-keep {cfg.prior_keep:g} was not applied: the score's criterion "
                        f"is not valid on this data ({why}), so it drops nothing")
    base = {
        "title": f"featsel select: {score['settings']['data']} ({len(real)} candidates x "
                 f"{cfg.seeds} seeds, budget {cfg.budget} steps, eta {cfg.eta})",
        "settings": _settings(cfg, cands, evals),
        "score_dir": "score",
        "prior": {"criterion": rk.get("criterion"), "order": prior, "controls": controls,
                  "valid": bool(rk.get("valid", True)),
                  "invalid_reason": rk.get("invalid_reason", ""),
                  "recommended": rk.get("recommended")},
        "metric_hacking": [{"candidate": c, "evaluation": e} for c, e in sorted(hacked)],
        "rung0": {"scored": prior, **r0},
        "executor": ex.describe(),
        # how well rung 1's order predicted full sweeps in the project's studies (addendum 15;
        # featsel/evidence.json as the score recorded it), for the report
        "probe_evidence": (score.get("evidence") or {}).get("probe"),
    }
    if not r0["survivors"]:
        raise ValueError("--featurizers: no candidate is left to train after rung 0 ("
                         + "; ".join(f"{d['candidate']}: {d['reason']}" for d in r0["dropped"])
                         + ")")
    plan = schedule(len(r0["survivors"]), cfg.eta, cfg.budget, cfg.seeds)
    base["schedule"] = plan
    job_of = {(j.candidate, j.seed): j for j in jobs}
    bar = tqdm(total=sum(p["n"] for p in plan) * cfg.seeds, desc="select jobs", unit="job",
               disable=not cfg.progress)
    survivors = list(r0["survivors"])
    rungs: list[dict] = []
    for p in plan:
        t0 = time.perf_counter()
        bar.set_description(f"select rung {p['rung']}/{len(plan)}")
        todo, reused = [], []
        for c in survivors:
            for k in range(cfg.seeds):
                j = job_of[c, k]
                point = read_curve(Path(j.run_dir)).get(p["steps"])
                (reused if point_complete(point, evals, v.eval_alpha) else todo).append(j)
        bar.update(len(reused))
        ran = []
        for res in ex.map(_rung_job, [(v, j, evals, p["steps"]) for j in todo]):
            ran.append(res)
            bar.update(1)
        got = _read_rung(v, survivors, evals, job_of, p["steps"], exclude)
        order = order_candidates(got["mean_rank"], prior)
        kept = order[:keep_count(len(order), cfg.eta)]
        by_job = {(r["candidate"], r["seed"]): r for r in ran}
        job_rows = []
        for c in survivors:
            for k in range(cfg.seeds):
                r = by_job.get((c, k), {"status": "reused", "steps_run": 0})
                job_rows.append({"candidate": c, "seed": k,
                                 "run": str(Path(job_of[c, k].run_dir).relative_to(out)),
                                 **{x: r[x] for x in ("status", "resumed_from", "steps_run",
                                                      "time_s") if x in r}})
        # how sure the cut is (the last rung's: the choice among the finalists)
        shares = keep_shares(got["fd"], len(kept), collapsed=got["collapsed"],
                             exclude=[(c, m) for c, m in exclude if c in got["fd"]],
                             prior=prior, n_boot=D.SELECT_KEEP_BOOT, seed=cfg.seed)
        rec = {**p, "candidates": list(survivors), "order": order, "kept": kept,
               "stopped": [c for c in order if c not in kept] if p is not plan[-1] else [],
               **got, "keep_share": shares, "jobs": job_rows,
               "time_s": round(time.perf_counter() - t0, 3)}
        close = {c: x for c, x in (shares or {}).items()
                 if c not in kept and x >= D.SELECT_CLOSE_CALL}
        if close:
            what = "chosen" if p is plan[-1] else "kept"
            warnings.append(
                f"rung {p['rung']} (step {p['steps']}): a close call: "
                + ", ".join(f"{c} would have been {what} in {x:.0%}" for c, x in close.items())
                + f" of {D.SELECT_KEEP_BOOT} resamples of the seeds; more --seeds would decide "
                  "it on more evidence")
        n_coll = {c: sum(f) for c, f in got["collapsed"].items() if any(f)}
        if n_coll and len(n_coll) == len(survivors) and all(
                n == cfg.seeds for n in n_coll.values()):
            warnings.append(f"rung {p['rung']} (step {p['steps']}): every run was still "
                            "collapsed (too few steps for the samples to spread), so the "
                            "candidates were ordered by the FDs of collapsed generators; a "
                            "larger --budget makes the early rungs more telling")
        elif n_coll:
            warnings.append(f"rung {p['rung']} (step {p['steps']}): collapsed runs ranked below "
                            "every healthy run: "
                            + ", ".join(f"{c} {n}/{cfg.seeds}" for c, n in n_coll.items()))
        rungs.append(rec)
        survivors = kept
        write_json(out / SELECTION_JSON, _finish(base, rungs, None, real, cfg, warnings,
                                                  t_score, t_start))
    bar.close()
    report = _finish(base, rungs, rungs[-1]["order"][0], real, cfg, warnings, t_score, t_start)
    write_json(out / SELECTION_JSON, report)
    from reports import render_selection_report

    render_selection_report(report, out)
    return report


def _finish(base: dict, rungs: list[dict], chosen: str | None, real: list[str],
            cfg: SelectConfig, warnings: list[str], t_score: float, t_start: float) -> dict:
    """The selection dict (partial while ``chosen`` is None)."""
    from featsel.halving import compute_summary

    stopped_at = {d["candidate"]: 0 for d in base["rung0"]["dropped"]}
    for r in rungs:
        for c in r["candidates"]:
            stopped_at[c] = r["rung"]
    reason = ""
    if chosen is not None:
        last = rungs[-1]
        if len(rungs) == 1 and len(last["candidates"]) == 1:
            reason = (f"the only candidate left after rung 0 (the score); trained to the full "
                      f"budget ({cfg.budget} steps)")
        else:
            at = rungs[-2] if len(last["candidates"]) == 1 else last
            mr = at["mean_rank"]
            tied = [c for c in at["candidates"] if c != chosen and mr[c] == mr[chosen]]
            reason = (f"best mean FD rank at rung {at['rung']} (step {at['steps']}: "
                      f"{mr[chosen]:.2f} over {at['n_cells'][chosen]} metric x seed cells, "
                      f"among {len(at['candidates'])}"
                      + (f"; tied with {', '.join(tied)}, ahead by the score's order" if tied
                         else "") + ")"
                      + (f"; trained to the full budget ({cfg.budget} steps) at rung "
                         f"{last['rung']}" if at is not last else ""))
    total = time.perf_counter() - t_start
    return clean_json({
        **base,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "complete": chosen is not None,
        "rungs": rungs,
        "chosen": chosen,
        "chosen_reason": reason,
        "agrees_with_prior": (chosen == base["prior"]["recommended"]) if chosen else None,
        "stopped_at": stopped_at,
        "compute": compute_summary(rungs, n_candidates=len(real), seeds=cfg.seeds,
                                   budget=cfg.budget),
        "steps_trained_this_run": sum(j.get("steps_run", 0) for r in rungs for j in r["jobs"]),
        "warnings": list(warnings),
        "timings": {"score_s": round(t_score, 3),
                    "rungs_s": [r["time_s"] for r in rungs], "total_s": round(total, 3)},
    })


def summary_line(res: dict, out: str | os.PathLike) -> str:
    """The one line `featsel select` prints."""
    comp = res["compute"]
    sizes = " -> ".join(str(len(r["candidates"])) for r in res["rungs"])
    return (f"chosen: {res['chosen']} (candidates per rung {sizes}); "
            f"{comp['candidate_steps']} of {comp['full_sweep_candidate_steps']} candidate-steps "
            f"({comp['fraction']:.0%} of the full sweep) in {res['timings']['total_s']:.0f} s; "
            f"report: {Path(out) / 'selection.html'}")
