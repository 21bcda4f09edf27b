#!/usr/bin/env bash
# MAGIC study: the held-out test of studies/PROTOCOL.md addendum 13. Does `inversion_share`,
# chosen again by addendum 2's rule over all eleven seen data sets and spaces, predict which
# coupling space trains the best generator on data no criterion, selection or select rule has
# seen, with no candidate that is the generation space itself? Addendum 12's design but for the
# data, the class count and the candidates' dimensions: generation space ambient (10 standardised
# shower-image parameters), the MLP generator of configs/magic_mlp.yaml, 800 steps, 5 seeds,
# evaluated at 200/400/600/800; six candidates PCA-4, PCA-2, random projections to 4 and to 2,
# MLP VAEs with 4 and 2 latent dims (kl_weight 1e-3, seed 0) pretrained on the train split; the
# noise controls scored, not trained. FD unconditional and conditional in ambient, PCA-3 and a
# third MLP VAE (3 latent dims, seed 1, not a candidate) against the test split (metric-hacking
# pairs left out); scored on the train split with the particle flow and the inversion share.
# First featsel select from an empty folder (local executor; its rule and prior unchanged), then
# featsel validate in the same folder, which continues the selection's runs to the full budget.
# Results: RUN/sweep (selection.json, validation.json, reports), RUN/walltimes.txt.
# Usage, from the repository root: bash studies/magic/run.sh [RUN]   (default runs/magic)
#   JOBS=K training jobs at a time (default 2). The commands are studies/vector_study.sh's
#   (the same steps as when it ran, written once since addendum 14).
exec bash "$(dirname "$0")/../vector_study.sh" magic 4 2 3 "${1:-runs/magic}"
