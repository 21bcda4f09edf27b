"""The score stage of `featsel validate` and `featsel select`: ``featsel score`` of the
candidates into ``OUT/score`` (``featsel.score.run_score``, the command's code path), reused when
its ``results.json`` was made with the same settings."""

from __future__ import annotations

import json
from pathlib import Path

from featsel import defaults as D
from featsel.rundir import MARKER
from generation.validation.plan import ValidateConfig

__all__ = ["score_candidates"]


def score_candidates(cfg: ValidateConfig, candidates: list[str],
                     evaluations: list[str] | None, out: Path) -> dict:
    """Run (or reuse) `featsel score` into out/score, on the training config's split (or
    `score_split`, e.g. "all" when the training split's smallest class is too small for the
    Delta_OT minibatch) and generation space (the samples the generators are trained on)."""
    from featsel.diagnostics.criteria import CRITERIA
    from featsel.score import ScoreConfig, run_score
    from generation.config import load_config

    tcfg = load_config(cfg.config, list(cfg.overrides))
    scfg = ScoreConfig(data=cfg.data, featurizers=candidates, evaluations=evaluations,
                       split=cfg.score_split or tcfg.data_split, space=tcfg.space or None,
                       max_samples=cfg.score_max_samples, n_repeats=cfg.score_repeats,
                       tau=cfg.tau, taus=tuple(sorted({*D.PAPER_TAUS, float(cfg.tau)})),
                       curve=cfg.score_curve, n=cfg.score_n, flow=cfg.score_flow,
                       inversion=cfg.score_inversion,
                       **({"criterion": cfg.criterion} if cfg.criterion else {}),
                       device=cfg.device, seed=cfg.seed, progress=cfg.progress)
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
            # the criterion that ranks, named or the default (a score ranked by an earlier
            # default is rescored: its order is select's prior and validate's predictor)
            want["criterion"] = scfg.criterion
            # a score made before a criterion was registered (or without an optional one this
            # sweep asks for) lacks it: rescore
            need = {n for n, c in CRITERIA.items() if c.enabled(scfg)}
            if (all(s.get(k) == v for k, v in want.items())
                    and float(old["ranking"]["tau"]) == float(cfg.tau)
                    and set(old["ranking"].get("validity", {})) >= need):
                return old
        except (ValueError, KeyError):
            pass
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
