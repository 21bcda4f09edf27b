#!/usr/bin/env bash
# Phoneme study: the first of the two held-out tests of studies/PROTOCOL.md addendum 14 (does the
# default criterion, inversion_share, predict the trained outcome on data nothing has seen?).
# 5 harmonic amplitudes: candidates PCA-3, PCA-2, random projections to 3 and 2, MLP VAEs with 3
# and 2 latent dims; evaluation ambient, PCA-4 and a 4-d MLP VAE (seed 1). Design:
# studies/vector_study.sh. Usage, from the repository root: bash studies/phoneme/run.sh [RUN]
exec bash "$(dirname "$0")/../vector_study.sh" phoneme 3 2 4 "${1:-runs/phoneme}"
