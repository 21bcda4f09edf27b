"""The stages of `featsel score` (``featsel.score.run_score`` calls them in this order), each
taking and returning plain data:

1. :mod:`~featsel.scoring.config`: ``ScoreConfig`` and its checks (before any work);
2. :mod:`~featsel.scoring.plan`: the data set, the pool, the draws' n, candidates and
   evaluation featurizers (``ScorePlan``);
3. :mod:`~featsel.scoring.featurize`: every featurizer's features, extracted once, and the
   noise controls (``ScoreFeatures``);
4. :mod:`~featsel.scoring.diagnose`: the registered criteria, coupling, Delta_OT(n) curve and
   alignment R^2 of every scored featurizer (one plain dict per candidate);
5. :mod:`~featsel.scoring.summarise`: unconverged solves, flags, ranking, control checks and
   the results dict (``Summary``);
6. :mod:`~featsel.scoring.publish`: results.json, results.csv and report.html, published in one
   step.

:mod:`~featsel.scoring.progress` holds the stage timer and the progress bar they share.
Nothing is re-exported here: ``featsel.score`` is the public face.
"""
