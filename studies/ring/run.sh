#!/usr/bin/env bash
# Ringnorm study: the second of the two held-out tests of studies/PROTOCOL.md addendum 14.
# 20 attributes: candidates PCA-8, PCA-4, random projections to 8 and 4, MLP VAEs with 8 and 4
# latent dims; evaluation ambient, PCA-6 and a 6-d MLP VAE (seed 1). Design:
# studies/vector_study.sh. Usage, from the repository root: bash studies/ring/run.sh [RUN]
exec bash "$(dirname "$0")/../vector_study.sh" ring 8 4 6 "${1:-runs/ring}"
