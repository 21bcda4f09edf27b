"""The one `featsel` command. It mirrors the Python API; every subcommand can print `--json`.

Subcommands are registered in `_COMMANDS` as `(name, help, add_arguments, run)`; `run(args)` returns
a JSON-able result (printed with `--json`) or None. Only this module may reach into `generation`,
and it does so lazily inside `run` functions (train/sample/evaluate/validate/pretrain).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from featsel import __version__

Command = tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[Any], Any]]
_COMMANDS: list[Command] = []


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Decorator registering `run(args)` as subcommand `name`."""

    def wrap(run: Callable[[Any], Any]) -> Callable[[Any], Any]:
        _COMMANDS.append((name, help, add_arguments, run))
        return run

    return wrap


def _no_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="accepted by every command (this one "
                   "prints no progress)")


@command("version", "print the featsel version", _no_args)
def _version(args: Any) -> dict:
    import torch

    return {"featsel": __version__, "torch": torch.__version__}


def _featurizers_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="show one featurizer's options (all when omitted)")
    _no_args(p)


@command("featurizers", "list the registered featurizers and their options", _featurizers_args)
def _featurizers(args: Any) -> Any:
    from featsel.features import list_featurizers

    entries = list_featurizers()
    if args.name:
        entries = [e for e in entries if e["name"] == args.name]
        if not entries:
            raise ValueError(f"unknown featurizer {args.name!r}; run `featsel featurizers`")
    if args.json:
        return {"featurizers": entries}
    lines = []
    for e in entries:
        opts = ",".join(
            f"{k}={'' if v is None else '+'.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in e["options"].items()
        )
        lines.append(f"{e['name']:<18} {e['description']}")
        if opts:
            lines.append(f"{'':<18} options: {opts}")
    return "\n".join(lines)


def _cache_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["ls", "clear"], help="list entries or remove them")
    p.add_argument("--cache-dir", default=None, help="cache root (default $FEATSEL_CACHE_DIR "
                   "or ~/.cache/featsel/cache)")
    p.add_argument("--dataset", default=None, help="only entries of this data set")
    p.add_argument("--split", default=None, help="only entries of this split")
    _no_args(p)


@command("cache", "list (ls) or remove (clear) cached features", _cache_args)
def _cache(args: Any) -> Any:
    from featsel.cache import FeatureCache

    cache = FeatureCache(args.cache_dir)
    match = {k: v for k, v in (("dataset", args.dataset), ("split", args.split)) if v is not None}
    if args.action == "clear":
        return {"cache_dir": str(cache.root), "removed": cache.clear(**match)}
    entries = [
        e for e in cache.ls() if all(str(e.parts.get(k)) == str(v) for k, v in match.items())
    ]
    if args.json:
        return {"cache_dir": str(cache.root), "max_bytes": cache.max_bytes,
                "entries": [e.to_dict() for e in entries]}
    cap = ("no size cap" if cache.max_bytes is None
           else f"cap {cache.max_bytes / 1e6:.0f} MB, least recently used out; $FEATSEL_CACHE_MAX")
    lines = [f"{cache.root}: {len(entries)} entries, {sum(e.bytes for e in entries) / 1e6:.1f} MB "
             f"({cap})"]
    for e in entries:
        p = e.parts
        lines.append(
            f"{e.key[:12]}  {p.get('dataset', '-')}/{p.get('split', '-')}  {p.get('space', '-')}  "
            f"{p.get('featurizer', '-')}  n={p.get('n', '-')}  {e.bytes / 1e6:.1f} MB"
        )
    return "\n".join(lines)


def _data_root_arg(p: argparse.ArgumentParser) -> None:
    """`--data-root` for commands that load data through run configs (train, sample, evaluate,
    validate, select): it sets $FEATSEL_DATA_DIR for this process and the jobs it starts."""
    p.add_argument("--data-root", help="data root for relative manifest paths (default "
                   "$FEATSEL_DATA_DIR or ~/.cache/featsel/data)")


def _floats(text: str) -> list[float]:
    """A comma-separated list of finite numbers (argparse type)."""
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not vals or not all(math.isfinite(v) for v in vals):
        raise argparse.ArgumentTypeError(f"expected one or more finite numbers, got {text!r}")
    return vals


def _ints(text: str) -> list[int]:
    """A comma-separated list of integers (argparse type)."""
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError(f"expected one or more integers, got {text!r}")
    return vals


def _number(text: str) -> float:
    """One finite number (argparse type)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


# ScoreConfig fields the Python API sets but `featsel score` has no flag for (fine-tuning of
# single diagnostics); their defaults reach the CLI through ScoreConfig
SCORE_API_ONLY = ("transport_repeats", "transport_max_locations", "curve_repeats",
                  "coupling_size", "alignment_n_train", "r2_threshold", "batch_size",
                  "flow_steps", "flow_lr", "inversion_steps")


def _on_off(flag: str, default: bool) -> str:
    """How --help names a --flag/--no-flag pair's default: by the flag that gives it."""
    return flag if default else "--no-" + flag[2:]


def _score_args(p: argparse.ArgumentParser) -> None:
    """Every flag that sets a ``ScoreConfig`` field stores into that field's name, with the
    field's default (tests/test_cli_score.py checks both ways)."""
    from featsel.diagnostics.criteria import CRITERIA
    from featsel.score import ScoreConfig

    d = ScoreConfig()
    p.add_argument("--data", default=d.data, help=f"data manifest name or path (default {d.data})")
    p.add_argument("--featurizers", help="candidates: comma-separated specs or a YAML list "
                   "(default: the manifest's candidates)")
    p.add_argument("--eval-featurizers", dest="evaluations", metavar="EVAL_FEATURIZERS",
                   help="evaluation featurizers for "
                   "R^2 and flags: comma-separated specs or a YAML list; 'none' for none "
                   "(default: manifest's)")
    p.add_argument("--out", help="output directory (results.json, results.csv, report.html)")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.add_argument("--device", default=d.device, help="feature extraction device: cpu, cuda, "
                   "cuda:N or auto")
    p.add_argument("--split", help="data split (default: all for fraction splits, else test)")
    from featsel.data import add_data_root_argument

    add_data_root_argument(p)
    p.add_argument("--space", help="generation space the candidates see (pixels, ambient, "
                   "pca:dim=50, vae:path=DIR; default: the manifest's)")
    p.add_argument("--max-samples", type=int, help="subsample the pool to this many samples")
    p.add_argument("--n", type=int, help="minibatch size of the draws (default: from the class "
                   "sizes, 16-64; classes smaller than 2n are left out with a warning)")
    p.add_argument("--criterion", default=d.criterion, choices=sorted(CRITERIA),
                   help=f"the criterion that ranks (default {d.criterion}, chosen by "
                   "studies/PROTOCOL.md); all are computed and shown")
    p.add_argument("--controls", action=argparse.BooleanOptionalAction, default=d.controls,
                   help="add the noise controls (noise:dim=1 and noise:dim=<largest candidate "
                   f"dim>; default {_on_off('--controls', d.controls)})")
    p.add_argument("--eps-rule", choices=["perplexity", "tau"], default=d.eps_rule,
                   help=f"eps of the generation-space criteria (default {d.eps_rule})")
    p.add_argument("--perplexity", type=_number, default=d.perplexity,
                   help=f"effective partners per source for --eps-rule perplexity "
                   f"(default {d.perplexity:g})")
    p.add_argument("--taus", type=_floats, default=d.taus,
                   help=f"Delta_OT taus, comma-separated (default {','.join(map(str, d.taus))})")
    p.add_argument("--tau", type=_number, default=d.tau, help=f"Delta_OT's headline tau and the "
                   f"tau of --eps-rule tau (default {d.tau:g})")
    p.add_argument("--repeats", dest="n_repeats", metavar="REPEATS", type=int,
                   default=d.n_repeats,
                   help=f"draws behind each interval (default {d.n_repeats})")
    p.add_argument("--recipe", choices=["converged", "paper"], default=d.recipe,
                   help="Delta_OT: converged Sinkhorn solves, or the paper code's 4 iterations")
    p.add_argument("--max-locations", type=int, default=d.max_locations,
                   help="per-location sub-problems per block (seeded subset; 0 = all; "
                   f"default {d.max_locations})")
    p.add_argument("--flow", action=argparse.BooleanOptionalAction, default=d.flow,
                   help="also the particle flow of the training field (flow_fidelity: 100 "
                   "training-field steps per candidate; it ranks nothing, see the README; "
                   f"default {_on_off('--flow', d.flow)})")
    p.add_argument("--inversion", action=argparse.BooleanOptionalAction, default=d.inversion,
                   help="also the inversion share under another --criterion (inversion_share: "
                   "up to 100 L-BFGS evaluations through each candidate; always computed while "
                   "it ranks, as it does by default, see the README; "
                   f"default {_on_off('--inversion', d.inversion)})")
    p.add_argument("--curve", action=argparse.BooleanOptionalAction, default=d.curve,
                   help=f"the Delta_OT(n) curves (figure; default {_on_off('--curve', d.curve)})")
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=d.cache,
                   help=f"use the feature cache (default {_on_off('--cache', d.cache)})")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the draws and subsamples")
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bars "
                   f"(default: {'shown' if d.progress else 'none'})")


@command("score", "rank candidate featurizers without training (Delta_OT, rank, R^2, couplings)",
         _score_args)
def _score(args: Any) -> dict | str:
    from dataclasses import fields

    from featsel.score import ScoreConfig, parse_featurizer_list, run_score

    # the flags store into ScoreConfig's field names; only the lists need parsing
    given = {f.name: getattr(args, f.name) for f in fields(ScoreConfig) if hasattr(args, f.name)}
    evals = args.evaluations
    if evals is not None:
        evals = [] if evals.strip().lower() == "none" else parse_featurizer_list(evals)
    cfg = ScoreConfig(**{**given, "featurizers": parse_featurizer_list(args.featurizers),
                         "evaluations": evals, "taus": tuple(args.taus),
                         "max_locations": args.max_locations or None})  # 0: all
    res = run_score(cfg, args.out, force=args.force)
    if args.json:
        if not args.out:
            return res
        # the per-candidate diagnostics (plans, spectra) can be megabytes: they stay in
        # results.json; stdout gets the ranking, settings and timings
        return {**{k: res[k] for k in ("title", "settings", "ranking", "timings") if k in res},
                "results": str(Path(args.out) / "results.json")}
    rk = res["ranking"]
    lines = [f"{row['rank']}. {row['candidate']}{' [control]' if row.get('control') else ''}: "
             f"{rk['explanations'][row['candidate']]}" for row in rk["table"]]
    if rk.get("recommended") and rk.get("tied_best"):
        lines.append(f"recommended: {rk['recommended']}, tied with "
                     f"{', '.join(rk['tied_best'])} (intervals overlap): {rk['tie_break']}")
    else:
        lines.append(f"recommended: {rk['recommended']}" if rk.get("recommended") else
                     f"no recommendation: {rk.get('invalid_reason', '')}")
    if rk.get("caution"):
        lines.append(f"caution: {rk['caution']}")
    ev = res.get("evidence") or {}
    if ev.get("criterion") == rk.get("criterion") and ev.get("datasets"):
        lines.append(f"how far to trust it ({ev['criterion']} vs trained outcome, Kendall): " +
                     ", ".join(f"{d} {e['kendall']:+.2f}" +
                               (" (chosen here)" if e["role"].startswith("selection") else "")
                               for d, e in ev["datasets"].items()) +
                     _pooled_text(ev.get("pooled_held_out"))
                     + _pooled_text(ev.get("pooled_held_out_secondary"))
                     + _replication_text(ev.get("replication"))
                     + "; confirm with featsel validate")
    if ev.get("probe"):
        lines.append(_probe_text(ev["probe"]))
    if args.out:
        lines.append(f"report: {args.out}/report.html")
    return "\n".join(lines)


def _pooled_text(pool: dict | None) -> str:
    """The held-out tests read together (studies/PROTOCOL.md addendum 4; a second list,
    addendum 7), or nothing."""
    if not pool:
        return ""
    return (f"; held out together ({', '.join(pool['datasets'])}): mean {pool['mean_kendall']:+.2f}, "
            f"p = {pool['p']:.2g}")


def _held_text(test: dict) -> str:
    """A pre-registered test read together (``mean_kendall``, ``p``) and whether it held
    against the bar fixed before it ran (``held``, ``bar_p``)."""
    return (f"mean {test['mean_kendall']:+.2f}, p = {test['p']:.2g}, "
            + ("held" if test["held"] else f"did not hold (bar p < {test['bar_p']:g})"))


def _replication_text(rep: dict | None) -> str:
    """A pre-registered replication of the criterion read together, and whether it held (the
    bar fixed before it ran; studies/PROTOCOL.md addendum 14), or nothing."""
    if not rep:
        return ""
    return f"; its replication ({rep['label']}: {', '.join(rep['datasets'])}): " + _held_text(rep)


def _probe_text(probe: dict) -> str:
    """The short training probe's record (featsel select's first rung; studies/PROTOCOL.md
    addendum 15): its cost, its agreement read after the fact (beside the best training-free
    criterion's on the same data sets) and its pre-registered test."""
    text = (f"a short training probe, featsel select's first rung ({probe['fraction']:.0%} of a "
            f"full sweep's training)")
    late = probe.get("after_the_fact")
    if late:
        text += (f", agreed with the trained outcome at Kendall mean {late['mean_kendall']:+.2f} "
                 f"over {len(late['datasets'])} data sets, read after the fact")
        best = late.get("best_criterion")
        if best:
            text += (f" (the best training-free criterion there: {best['name']} "
                     f"{best['mean_kendall']:+.2f} over {best['n']})")
    test = probe.get("test")
    if test:
        text += (f"; its pre-registered test ({test['label']}: {', '.join(test['datasets'])}): "
                 + _held_text(test))
        crit = test.get("ranking_criterion")
        if crit:
            text += f" ({crit['name']} on the same data: {crit['mean_kendall']:+.2f})"
    return text + "; featsel select trains it and keeps the best third"


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="a featsel score output directory (with results.json), a "
                   "featsel validate one (with validation.json) or a featsel select one (with "
                   "selection.json)")
    _no_args(p)


@command("report", "re-render the HTML report (and figures) of a score, validate or select "
         "directory",
         _report_args)
def _report(args: Any) -> dict:
    from reports import render_dir

    return {"report": str(render_dir(args.dir))}


def _run_folder_args(p: argparse.ArgumentParser) -> None:
    """The flags of the commands that train into one run folder (train, pretrain)."""
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out that is not "
                   "this run (deletes its contents)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file (see configs/) loaded into TrainConfig")
    p.add_argument("--data", help="data manifest name or path")
    p.add_argument("--split", help="manifest split to train on (the config's data_split, "
                   "default train)")
    _data_root_arg(p)
    p.add_argument("--featurizer", help="training featurizer spec or checkpoint (it must be "
                   "differentiable: not a noise/constant control, not inception)")
    p.add_argument("--allow-no-gradient", action="store_true", help="train even with a "
                   "featurizer that passes no gradient to the generator (a control's "
                   "no-information baseline, as featsel validate trains controls)")
    p.add_argument("--model", help="generator preset: tiny, S/2, B/2, L/2, mlp-tiny, mlp")
    p.add_argument("--steps", type=int, help="total optimiser steps")
    p.add_argument("--seed", type=int, help="training seed (default: the config's, 0)")
    p.add_argument("--until", type=int, help="stop after this step with a checkpoint (the "
                   "schedule still follows --steps; continue later with --resume)")
    p.add_argument("--out", help="run folder (config.yaml, checkpoint.pt, metrics.jsonl)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (default: the config's, auto)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key (YAML value; loss.taus=[0.05] for nested)")
    _run_folder_args(p)


@command("train", "train a one-step generator with the Sinkhorn-CFG loss (torchrun for DDP)",
         _train_args)
def _train(args: Any) -> dict:
    from generation.config import load_config
    from generation.train import require_differentiable, train

    # typed flags go in as values, not as YAML strings (a '#' or 'no' must stay what was typed)
    typed = {k: v for k in ("data", "featurizer", "model", "steps", "seed", "out", "device")
             if (v := getattr(args, k)) is not None}
    if args.split is not None:
        typed["data_split"] = args.split
    if args.quiet:
        typed["progress"] = False
    preset: list[str] = []
    if args.config is None:
        from featsel.device import check_device
        from generation.config import CPU_PRESET

        if check_device(args.device or "auto").type == "cpu":
            preset = [f"{k}={v}" for k, v in CPU_PRESET.items()]  # --set still wins
    cfg = load_config(args.config, preset + list(args.set), typed=typed)
    if not args.allow_no_gradient:
        require_differentiable(cfg.featurizer)  # before any data, model or run folder
    data = None
    if preset and not any(s.split("=", 1)[0].strip() == "n_classes" for s in args.set):
        from generation.config import cpu_preset_classes
        from generation.train import check_out, load_training_data

        # the folder rule before the data load, which can take minutes (the preset's
        # n_classes is not known until the data is; train checks it again)
        check_out(cfg, resume=args.resume, force=args.force, also_may_change=("n_classes",))
        data = load_training_data(cfg)  # passed on: loaded once
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if n := cpu_preset_classes(data.num_classes, world):
            cfg.n_classes = n
            preset.append(f"n_classes={n} of {data.num_classes}")
    if preset:
        print("featsel train: no --config and no GPU: the CPU preset ("
              + ", ".join(preset) + "); --config configs/... for other sizes, "
              "configs/imagenet_dit_b2.yaml for the paper's", file=sys.stderr)
    return train(cfg, resume=args.resume, force=args.force, until=args.until, data=data)


def _sample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run folder written by featsel train")
    p.add_argument("--classes", type=_ints, help="comma-separated class ids (default: all)")
    p.add_argument("--alphas", "--alpha", dest="alphas", type=_floats, default=[1.0],
                   help="comma-separated guidance scales >= 1 (--alpha is the old name)")
    p.add_argument("--n", type=int, default=8, help="samples per (class, alpha)")
    p.add_argument("--out", help="output .png (images) or .npz/.h5ad (vectors)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated samples")
    p.add_argument("--decay", type=_number, help="EMA decay to use (default: the run's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    _data_root_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress output")


@command("sample", "sample a trained generator (PNG grid or .npz/.h5ad)", _sample_args)
def _sample(args: Any) -> dict:
    from generation.sample import sample_run

    return sample_run(args.run, classes=args.classes, alphas=args.alphas, n=args.n,
                      out=args.out, seed=args.seed, decay=args.decay, device=args.device)


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run folder written by featsel train")
    p.add_argument("--n-per-class", type=int, help="samples per class (default: the run's "
                   "eval_n_per_class)")
    p.add_argument("--alphas", type=_floats, help="comma-separated guidance scales >= 1 "
                   "(default: the run's eval_alphas)")
    p.add_argument("--split", help="real split to compare with (default: test if present)")
    p.add_argument("--featurizers", help="evaluation featurizers, comma-separated specs or a "
                   "YAML list (default: the manifest's)")
    p.add_argument("--decay", type=_number, help="EMA decay to use (default: the run's)")
    p.add_argument("--no-kid", action="store_true", help="skip KID / precision-recall")
    p.add_argument("--no-accuracy", action="store_true", help="skip the class accuracy "
                   "(a logistic regression fitted on half of the real split)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated samples")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    _data_root_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress output")


@command("evaluate", "FD (+KID, PR, class accuracy) of a run's EMA samples in every evaluation "
         "featurizer", _evaluate_args)
def _evaluate(args: Any) -> Any:
    from featsel.score import parse_featurizer_list
    from generation.evaluate import evaluate_run, format_table

    res = evaluate_run(args.run, n_per_class=args.n_per_class, alphas=args.alphas,
                       split=args.split, featurizers=parse_featurizer_list(args.featurizers),
                       decay=args.decay, device=args.device, kid=not args.no_kid,
                       seed=args.seed, classify=not args.no_accuracy)
    return res if args.json else format_table(res) + f"\nresults: {args.run}/eval.json"


def _pretrain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=["mae", "distill", "vae", "teacher", "scvi"],
                   help="what to train (scvi: scvi-tools' SCVI on vector data, the extra "
                   "featsel[scvi]; without it `vae` trains the MLP VAE stand-in)")
    p.add_argument("--data", help="data manifest name or path (default mnist; pbmc68k for scvi)")
    p.add_argument("--split", help="data split (default train)")
    p.add_argument("--data-root", help="data root (default $FEATSEL_DATA_DIR)")
    p.add_argument("--space", help="generation space of the ViT input (mae/distill): pixels, "
                   "vae:path=DIR")
    p.add_argument("--steps", type=int, help="optimiser steps (not scvi: --epochs)")
    p.add_argument("--epochs", type=int, help="scvi: passes over the cells (default: "
                   "scvi-tools' heuristic, 400 up to 20,000 cells)")
    p.add_argument("--latent", type=int, help="vae on vectors, scvi: latent dimension "
                   "(latent_dim, default 10)")
    p.add_argument("--seed", type=int, help="seed (default 0)")
    p.add_argument("--out", help="run folder (state.pt, config.json, featurizer.pt / vae/)")
    p.add_argument("--mask-ratio", type=float, help="mae: fraction of masked patches (0.5/0.6/0.75)")
    p.add_argument("--teacher", help="distill: cnn, a teacher.pt, or a featurizer spec")
    p.add_argument("--device", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other config field (lists joined with +: block_out_channels=32+64)")
    _run_folder_args(p)


@command("pretrain", "pretrain a candidate featurizer (mae, distill, scvi) or a teacher / VAE "
         "space",
         _pretrain_args)
def _pretrain(args: Any) -> dict:
    from featsel.features.spec import options_to_config
    from generation.pretrain import CONFIGS, TRAINERS

    opts: dict[str, Any] = {}
    for item in args.set:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--set: expected KEY=VALUE, got {item!r}")
        opts[key.strip().replace("-", "_")] = value.strip()
    for k in ("data", "split", "data_root", "space", "steps", "epochs", "latent", "seed", "out",
              "mask_ratio", "teacher", "device"):
        if (v := getattr(args, k)) is not None:
            opts["latent_dim" if k == "latent" else k] = v
    if args.device is not None:
        from featsel.device import check_device

        check_device(args.device)  # before the data are loaded
    cfg = options_to_config(CONFIGS[args.kind], opts, what=f"pretrain {args.kind}")
    res = TRAINERS[args.kind](cfg, resume=args.resume, force=args.force, progress=not args.quiet)
    losses = res.pop("losses")
    res["loss_first"] = losses[0] if losses else None
    res["loss_last"] = sum(losses[-10:]) / len(losses[-10:]) if losses else None
    return res


def _executor_args(p: argparse.ArgumentParser, jobs_default: int = 1) -> None:
    from featsel import defaults as D

    p.add_argument("--executor", default=D.EXECUTOR, help="where the training jobs run: local "
                   "(a process pool of --jobs workers) or ray (Ray tasks, the extra "
                   f"featsel[cluster]; default {D.EXECUTOR})")
    p.add_argument("--address", help="ray: join a running cluster (auto, ray://HOST:PORT or "
                   "HOST:PORT); without it Ray starts on this machine with --jobs workers")
    p.add_argument("--jobs", type=int, default=jobs_default, help="local worker processes, or "
                   f"concurrent jobs of a Ray started here (default {jobs_default}; 1 = in this "
                   "process with --executor local)")
    p.add_argument("--cpus-per-job", type=float, default=D.CPUS_PER_JOB,
                   help=f"ray: num_cpus of each job (default {D.CPUS_PER_JOB:g})")
    p.add_argument("--gpus-per-job", type=float, help="ray: num_gpus of each job (default 1 "
                   "with a cuda --device, else 0)")


def _sweep_candidate_args(p: argparse.ArgumentParser) -> None:
    """What `featsel validate` and `featsel select` train: the data, the candidates, the
    evaluation featurizers and the training config."""
    from featsel import defaults as D

    p.add_argument("--data", default=D.DATA, help="data manifest name or path")
    p.add_argument("--featurizers", help="candidates: comma-separated specs or a YAML list "
                   "(default: the manifest's candidates)")
    p.add_argument("--eval-featurizers", help="evaluation featurizers: comma-separated specs or "
                   "a YAML list (default: the manifest's)")
    p.add_argument("--config", help="base training config YAML (see configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training config key for every job")


def _sweep_score_args(p: argparse.ArgumentParser) -> None:
    """How `featsel validate` and `featsel select` evaluate the runs and score the candidates
    (the defaults are ValidateConfig's, which SelectConfig shares)."""
    from featsel import defaults as D
    from featsel.diagnostics.criteria import CRITERIA

    p.add_argument("--eval-n-per-class", type=int, help="evaluation samples per class "
                   "(default: the training config's)")
    p.add_argument("--eval-alpha", type=_number, default=D.EVAL_ALPHA, help="guidance alpha evaluated")
    p.add_argument("--tau", type=_number, default=D.TAU, help="the score's Delta_OT headline tau")
    p.add_argument("--criterion", choices=sorted(CRITERIA), help="the score's ranking criterion "
                   f"(default {D.RANK_CRITERION}): select's prior; validate correlates every "
                   "criterion with the outcome")
    p.add_argument("--score-max-samples", type=int, help="subsample the score pool")
    p.add_argument("--score-repeats", type=int, default=D.N_REPEATS,
                   help="Delta_OT draws in score")
    p.add_argument("--score-n", type=int, help="Delta_OT minibatch size in score")
    p.add_argument("--score-split", help="split scored (default: the training config's split; "
                   "'all' when its smallest class is too small for --score-n)")
    p.add_argument("--score-flow", action="store_true", help="the score also runs the particle "
                   "flow (flow_fidelity; costly, ranks nothing)")
    p.add_argument("--score-inversion", action="store_true", help="the score also computes the "
                   "inversion share under another --criterion (always while it ranks, the "
                   "default; costly through ViTs)")
    p.add_argument("--exclude-aligned", action="store_true", help="also leave out FDs in "
                   "evaluation spaces the candidate is aligned with (R^2 flag), not only the "
                   "same network's")


def _sweep_settings(args: Any) -> dict[str, Any]:
    """The settings `featsel validate` and `featsel select` share, from their flags."""
    from featsel.score import parse_featurizer_list

    evals = parse_featurizer_list(args.eval_featurizers)
    return dict(
        data=args.data, featurizers=parse_featurizer_list(args.featurizers), evaluations=evals,
        budget=args.budget, seeds=args.seeds, config=args.config, overrides=list(args.set),
        executor=args.executor, address=args.address, jobs=args.jobs,
        cpus_per_job=args.cpus_per_job, gpus_per_job=args.gpus_per_job,
        eval_n_per_class=args.eval_n_per_class, eval_alpha=args.eval_alpha, tau=args.tau,
        criterion=args.criterion, score_max_samples=args.score_max_samples,
        score_repeats=args.score_repeats, score_n=args.score_n, score_split=args.score_split,
        score_flow=args.score_flow, score_inversion=args.score_inversion,
        exclude_aligned=args.exclude_aligned, nproc=args.nproc,
        device=args.device, seed=args.seed, progress=not args.quiet,
    )


def _validate_args(p: argparse.ArgumentParser) -> None:
    from featsel import defaults as D

    _sweep_candidate_args(p)
    p.add_argument("--budget", type=int, default=D.VALIDATE_BUDGET, help="training steps per job")
    p.add_argument("--seeds", type=int, default=D.VALIDATE_SEEDS, help="seeds per candidate")
    p.add_argument("--out", required=True, help="sweep folder (score/, runs/, validation.json)")
    _executor_args(p)
    _sweep_score_args(p)
    p.add_argument("--eval-fractions", type=_floats, default=list(D.EVAL_FRACTIONS),
                   help="comma-separated fractions of the budget at which every job is evaluated "
                   "(FD-vs-step curves; the outcome is read at the final step)")
    p.add_argument("--n-boot", type=int, default=D.N_BOOT, help="bootstrap resamples over seeds")
    p.add_argument("--nproc", type=int, default=0,
                   help="processes per job: N >= 1 trains each job under torchrun "
                   "--nproc_per_node N (DDP: NCCL on GPUs, gloo on a CPU; with --dry-run the "
                   "printed commands); 0 trains in the worker process")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (every job)")
    p.add_argument("--seed", type=int, default=0, help="score / bootstrap seed")
    p.add_argument("--no-figures", action="store_true",
                   help="skip the sample grids / UMAPs per candidate")
    p.add_argument("--dry-run", action="store_true",
                   help="print one training command per job (for a scheduler) and exit")
    p.add_argument("--resume", action="store_true", help="continue unfinished jobs")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out that is not "
                   "this sweep (deletes its contents)")
    _data_root_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


@command("validate", "train a generator per candidate and check that the ranking predicted it",
         _validate_args)
def _validate(args: Any) -> Any:
    from generation.validate import ValidateConfig, run_validate

    cfg = ValidateConfig(**_sweep_settings(args), eval_fractions=tuple(args.eval_fractions),
                         n_boot=args.n_boot, figures=not args.no_figures)
    res = run_validate(cfg, args.out, dry_run=args.dry_run, resume=args.resume, force=args.force)
    if args.json:
        return res
    if args.dry_run:
        return "\n".join(res["commands"])
    return _validate_text(res, args.out)


def _validate_text(res: dict, out: str) -> str:
    """validate's stdout: per candidate the rank the score's criterion predicted (named: it is
    Delta_OT only in scores made before the criterion registry) and the outcome."""
    by = res.get("predictor") or "Delta_OT"
    lines = [f"{r['candidate']}: predicted rank {r['delta_ot_rank']} ({by}), mean FD rank "
             f"{'-' if r['mean_fd_rank'] is None else format(r['mean_fd_rank'], '.2f')}"
             for r in res["table"]]
    lines.append(res["verdict"])
    rep = res.get("repeatability")
    if rep:  # how far the outcome agrees with itself: the yardstick for the verdict's Kendall
        k, rest = rep["seeds"]
        own = rep["outcome"]["mean_kendall"]
        line = (f"repeatability: the outcome of {k} seed(s) against the other {rest}, Kendall "
                + ("n/a" if own is None else f"{own:+.2f}")
                + f" (mean over {rep['n_splits']} splits)")
        for name, v in (rep.get("predictors") or {}).items():
            if v.get("mean_kendall") is not None:
                line += f"; {name} against the same held seeds {v['mean_kendall']:+.2f}"
        lines.append(line)
    lines += [*(f"warning: {w}" for w in res.get("warnings", [])),
              f"results: {out}/validation.json", f"report: {out}/validation.html"]
    return "\n".join(lines)


def _select_args(p: argparse.ArgumentParser) -> None:
    from featsel import defaults as D

    # flags without a default here take SelectConfig's (featsel.defaults, featsel validate's)
    _sweep_candidate_args(p)
    p.add_argument("--budget", type=int, required=True,
                   help="full training steps: the last rung trains its survivors to this")
    p.add_argument("--out", required=True, help="selection folder (score/, runs/, "
                   "selection.json, selection.html)")
    p.add_argument("--eta", type=int, default=D.SELECT_ETA, help="each rung keeps the best "
                   f"ceil(n / eta) candidates (>= 2; default {D.SELECT_ETA})")
    p.add_argument("--seeds", type=int, default=D.SELECT_SEEDS,
                   help=f"seeds per candidate (default {D.SELECT_SEEDS})")
    p.add_argument("--prior-keep", type=float, default=D.SELECT_PRIOR_KEEP,
                   help="rung 0 keeps this fraction of the valid candidates, best by the score's "
                   f"criterion (0 < F <= 1; default {D.SELECT_PRIOR_KEEP:g}: all)")
    _executor_args(p, D.SELECT_JOBS)
    p.add_argument("--nproc", type=int, help="processes per job: N >= 1 trains each job under "
                   "torchrun --nproc_per_node N (DDP); 0 (default) in the worker process")
    _sweep_score_args(p)
    p.add_argument("--device", help="training / evaluation device (default cpu)")
    p.add_argument("--seed", type=int, help="score seed (default 0)")
    p.add_argument("--eval-fractions", type=_floats,
                   help="fractions of the budget at which a job is also evaluated when a rung "
                   "trains past them (featsel validate's curve, so that validate --resume in "
                   f"--out completes it; default {','.join(f'{f:g}' for f in D.EVAL_FRACTIONS)})")
    p.add_argument("--resume", action="store_true", help="reuse the finished rungs and jobs in "
                   "--out and continue the rest")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out that is not "
                   "this selection (deletes its contents)")
    _data_root_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


@command("select", "choose a featurizer by successive halving: score, then train only the "
         "candidates still in the running", _select_args)
def _select(args: Any) -> Any:
    from generation.select import SelectConfig, run_select, summary_line

    given = {**_sweep_settings(args), "eta": args.eta, "prior_keep": args.prior_keep,
             "eval_fractions": tuple(args.eval_fractions) if args.eval_fractions else None}
    cfg = SelectConfig(**{k: v for k, v in given.items() if v is not None})
    res = run_select(cfg, args.out, resume=args.resume, force=args.force)
    return res if args.json else summary_line(res, args.out)


class _Help(argparse.HelpFormatter):
    """Shows every option's default, unless its help already states it or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or action.default in (None, False, argparse.SUPPRESS)
                or not action.option_strings):
            return text
        return text + " (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the usage block is in --help) and defaults in --help."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="featsel", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"featsel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, help_, add_arguments, run in _COMMANDS:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
        add_arguments(p)
        p.set_defaults(_run=run)
    return parser


def _to_jsonable(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def _one_line(err: BaseException) -> str:
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    if isinstance(err, OSError) and err.filename and str(err.filename) not in str(text):
        text = f"{err.strerror or text}: {err.filename!s}"
    return " ".join(str(text).split()) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    from featsel.memory import keep_freed_memory

    keep_freed_memory()  # big tensors freed and allocated every step: no page faults each time
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    import warnings

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        # one line per warning, named by the command (not the library file and source line)
        print(f"featsel {args.command}: warning: {' '.join(str(message).split())}",
              file=sys.stderr)

    saved, warnings.showwarning = warnings.showwarning, show_warning
    if args.command in ("train", "sample", "evaluate", "validate", "select") and args.data_root:
        # these read data through run configs: the root is process-wide (jobs inherit it)
        os.environ["FEATSEL_DATA_DIR"] = str(Path(args.data_root).expanduser())
    try:
        result = args._run(args)
    except KeyboardInterrupt:
        hint = ("; rerun with --resume to continue" if getattr(args, "resume", None) is not None
                else "")
        print(f"featsel {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, KeyError, RuntimeError, OSError) as err:
        # User errors get one clear line, not a traceback.
        if os.environ.get("FEATSEL_DEBUG"):
            raise
        print(f"featsel {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except Exception as err:
        if os.environ.get("FEATSEL_DEBUG"):
            raise
        print(f"featsel {args.command}: error: {type(err).__name__}: {_one_line(err)} "
              f"(unexpected: set FEATSEL_DEBUG=1 for the traceback, and please report it)",
              file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = saved
    if result is not None:
        if args.json:
            print(json.dumps(result, indent=2, default=_to_jsonable))
        elif isinstance(result, dict):
            for k, v in result.items():
                print(f"{k}: {v}")
        else:
            print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
