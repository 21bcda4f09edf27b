#!/usr/bin/env bash
# Indian Pines study: the held-out test of studies/PROTOCOL.md addendum 12. With no candidate that
# is the generation space itself (every candidate loses information: PCA, random projections and
# two learned VAE latents), does the default criterion predict which coupling space trains the best
# generator, on data no criterion, selection or select rule has seen, and does featsel select
# (unchanged, eta 3) pick that space? Addendum 10's design but for the data, the class count and
# the candidates: generation space ambient (200 standardised bands), the MLP generator of
# configs/indian_pines_mlp.yaml, 800 steps, 5 seeds, evaluated at 200/400/600/800; six candidates
# PCA-16, PCA-4, random projections to 16 and to 4, MLP VAEs with 16 and 4 latent dims (kl_weight
# 1e-3, seed 0) pretrained on the train split; the noise controls scored, not trained. FD
# unconditional and conditional in ambient, PCA-8 and a third MLP VAE (8 latent dims, seed 1, not
# a candidate) against the test split (metric-hacking pairs left out); scored on the train split
# with the particle flow and the inversion share. First featsel select from an empty folder (local
# executor), then featsel validate in the same folder, which continues the selection's runs to the
# full budget.
# Results: RUN/sweep (selection.json, validation.json, reports), RUN/walltimes.txt.
# Usage, from the repository root: bash studies/indian_pines/run.sh [RUN]   (default runs/indian_pines)
#   JOBS=K training jobs at a time (default 2). The commands are studies/vector_study.sh's
#   (the same steps as when it ran, written once since addendum 14).
exec bash "$(dirname "$0")/../vector_study.sh" indian_pines 16 4 8 "${1:-runs/indian_pines}"
