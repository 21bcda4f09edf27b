"""The stages of `featsel validate` (``generation.validate.run_validate`` calls them in order):

- ``plan``: the settings (``ValidateConfig``), their checks, one ``Job`` per (candidate, seed),
  the evaluation steps and each job's training config / ``featsel train`` command;
- ``score``: ``featsel score`` of the candidates into ``OUT/score`` (reused when it matches);
- ``jobs``: train and evaluate one job at every evaluation step (runs on an executor);
- ``collect``: the FDs per (candidate, metric, seed) and the diagnostics that predict them;
- ``summarise``: the validation dict: ranks, correlations, verdict, training health, collapse;
- ``figures``: per candidate the data of its figure (a sample grid or a UMAP embedding);
- ``publish``: ``validation.json`` / ``.csv`` and the HTML report (drawn by ``reports``).
"""
