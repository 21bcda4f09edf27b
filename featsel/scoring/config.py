"""What a `featsel score` run is asked to do: ``ScoreConfig``, its checks, and the featurizer
list parser shared by every command that takes ``--featurizers``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from featsel import defaults as D

__all__ = ["ScoreConfig", "check_config", "parse_featurizer_list"]


@dataclass
class ScoreConfig:
    """Settings of one `featsel score` run; the defaults come from ``featsel.defaults``."""

    data: str = D.DATA
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
    flow: bool = D.FLOW                       # the particle flow (featsel.diagnostics.flow)
    flow_steps: int = D.FLOW_STEPS
    flow_lr: float = D.FLOW_LR
    inversion: bool = D.INVERSION             # the inversion share (diagnostics.inversion)
    inversion_steps: int = D.INVERSION_STEPS
    curve: bool = D.CURVE
    curve_repeats: int = D.CURVE_REPEATS
    coupling_size: int = D.COUPLING_SIZE      # points per set in the coupling figure
    alignment_n_train: int = D.ALIGNMENT_N_TRAIN
    r2_threshold: float = D.R2_THRESHOLD
    device: str = D.DEVICE
    batch_size: int = D.BATCH_SIZE
    cache: bool = D.CACHE
    seed: int = D.SEED
    progress: bool = True                     # progress bars (the CLI's --quiet)


def check_config(cfg: ScoreConfig) -> None:
    """Every setting that can be checked without the data, before any work (one clear error
    naming the flag)."""
    from featsel.device import check_device
    from featsel.diagnostics.criteria import get_criterion

    if float(cfg.tau) not in tuple(float(t) for t in cfg.taus):
        raise ValueError(f"--tau: the ranking tau {cfg.tau} must be one of --taus {cfg.taus}")
    get_criterion(cfg.criterion)
    if cfg.eps_rule not in ("perplexity", "tau"):
        raise ValueError(f"--eps-rule: expected 'perplexity' or 'tau', got {cfg.eps_rule!r}")
    if not cfg.perplexity >= 1:  # also rejects NaN
        raise ValueError(f"--perplexity: expected a number >= 1, got {cfg.perplexity}")
    if not (cfg.tau > 0 and all(t > 0 for t in cfg.taus)):
        raise ValueError(f"--tau/--taus: expected positive values, got {cfg.tau}, {cfg.taus}")
    check_device(cfg.device)
    if cfg.n is not None and cfg.n < 2:
        raise ValueError(f"--n: expected a minibatch size >= 2, got {cfg.n}")
    if cfg.max_samples is not None and cfg.max_samples < 2:
        raise ValueError(f"--max-samples: expected >= 2, got {cfg.max_samples}")
    if cfg.max_locations is not None and cfg.max_locations < 0:
        raise ValueError(f"--max-locations: expected >= 0 (0 = all), got {cfg.max_locations}")
    if cfg.flow_steps < 1 or not cfg.flow_lr > 0:
        raise ValueError(f"flow_steps / flow_lr: expected >= 1 and > 0, got {cfg.flow_steps}, "
                         f"{cfg.flow_lr}")
    if cfg.inversion_steps < 1:
        raise ValueError(f"inversion_steps: expected >= 1, got {cfg.inversion_steps}")
    if cfg.n_repeats < 1 or cfg.transport_repeats < 1:
        raise ValueError(f"--repeats: expected >= 1, got n_repeats={cfg.n_repeats}, "
                         f"transport_repeats={cfg.transport_repeats}")


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
