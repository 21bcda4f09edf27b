"""`featsel score`: rank candidate featurizers on a data set without training.

Pipeline (each stage timed, progress bars on long work; the stages live in ``featsel.scoring``
and pass plain data from one to the next):

1. plan (``featsel.scoring.plan``): load the data set (manifest name or path) and its
   generation space; pool = the split (default "all" for fraction-split manifests, else
   "test"), optionally subsampled; the draws' n (:func:`choose_n`); candidates and evaluation
   featurizers;
2. featurize (``featsel.scoring.featurize``): extract every candidate's and evaluation
   featurizer's maps once (``extract_features``, cached), add the noise controls;
3. diagnose (``featsel.scoring.diagnose``): per candidate, every registered criterion
   (``featsel.diagnostics.criteria``: effective rank per block, Delta_OT per tau per block and
   class with bootstrap intervals, the generation-space criteria...), the Delta_OT(n) curve at
   the ranking tau, the class-grouped Sinkhorn coupling between two disjoint draws, and the
   alignment R^2 to every evaluation featurizer;
4. summarise (``featsel.scoring.summarise``): unconverged solves, metric-hacking flags, ranking
   by the chosen criterion (``featsel.ranking``), every criterion's control check;
5. publish (``featsel.scoring.publish``): ``results.json``, ``results.csv`` and
   ``report.html`` + PNG figures in the output directory.

Blocks for rank and Delta_OT are the training blocks (per_loc / global_mean / global_std, or
global), without the input-RMS block (identical for every candidate). Alignment and couplings
use one vector per sample, the *summary vector* (:func:`summary_vector`): per map, the map
flattened when small (<= 4096 entries) or its per-channel spatial mean and std, each part
divided by its mean row norm, concatenated.

All inputs are validated before anything is written; the outputs are built in a temporary
sibling directory and moved into place at the end, so a failed run leaves no partial output.
"""

from __future__ import annotations

import os

from featsel.scoring.config import ScoreConfig, check_config, parse_featurizer_list
from featsel.scoring.featurize import SUMMARY_FLAT_MAX, summary_vector
from featsel.scoring.plan import choose_n
from featsel.scoring.publish import write_outputs
from featsel.scoring.summarise import evidence, unconverged

__all__ = ["SUMMARY_FLAT_MAX", "ScoreConfig", "choose_n", "evidence", "parse_featurizer_list",
           "run_score", "summary_vector", "unconverged", "write_outputs"]


def run_score(cfg: ScoreConfig, out: str | os.PathLike | None = None, *,
              force: bool = False) -> dict:
    """Run the whole pipeline; returns the results dict (also written under ``out``)."""
    from featsel.scoring.diagnose import diagnose
    from featsel.scoring.featurize import featurize
    from featsel.scoring.plan import plan_score
    from featsel.scoring.progress import Timer
    from featsel.scoring.publish import prepare_out, publish
    from featsel.scoring.summarise import summarise

    out_dir = prepare_out(out, force)  # before any work: a refused --out costs nothing
    check_config(cfg)
    timer = Timer()
    plan = plan_score(cfg, timer)
    features = featurize(plan, cfg, timer)
    diagnostics = diagnose(plan, features, cfg, timer)
    summary = summarise(plan, features, diagnostics, cfg)
    return publish(summary, out_dir, timer, force=force)
