#!/usr/bin/env bash
# Vehicle silhouettes study: the held-out test of studies/PROTOCOL.md addendum 10. Does the
# criterion chosen by addendum 10's selection (the rule of addendum 2 over the nine seen data
# sets and spaces) predict which coupling space trains the best generator on data that no
# criterion, no selection and no select rule has seen, and does featsel select (unchanged, eta
# 3) pick that space? Addendum 8's design unchanged but for the data and the class count
# (generation space ambient, the MLP generator of configs/vehicle_mlp.yaml, 800 steps, 5 seeds,
# evaluated at 200/400/600/800) with six real candidates: ambient, PCA-8, PCA-3, random
# projections to 8 and to 3, an MLP VAE with 8 latent dims (kl_weight 1e-3) pretrained on the
# train split; the noise controls scored, not trained. FD unconditional and conditional in
# ambient, PCA-4 and the VAE latent against the test split (metric-hacking pairs left out);
# scored on the train split with the particle flow and the inversion share. First featsel
# select from an empty folder (local executor), then featsel validate in the same folder,
# which continues the selection's runs to the full budget.
# Results: RUN/sweep (selection.json, validation.json, reports), RUN/walltimes.txt.
# Usage, from the repository root: bash studies/vehicle/run.sh [RUN]   (default runs/vehicle)
#   JOBS=K training jobs at a time (default 2).
# Design: studies/ambient_study.sh (the commands above, shared by the four tables).
export SCORE_EXTRA=--score-inversion
exec bash "$(dirname "$0")/../ambient_study.sh" vehicle "${1:-runs/vehicle}"
