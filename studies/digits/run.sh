#!/usr/bin/env bash
# Digits confirmation study (second held-out test, studies/PROTOCOL.md addendum): does the
# criterion chosen on pbmc68k predict which coupling space trains the best generator on
# scikit-learn's 8x8 digits in pixel space? Candidates identity (64 one-pixel sub-problems +
# 2 global blocks), PCA-16, PCA-4, a 16-d random projection; the noise controls are scored (the
# score adds them) but not trained. configs/digits_tiny.yaml (tiny DiT, 300 steps), 3 seeds;
# FD unconditional and conditional in the flattened pixels (vae-latent) and PCA-32, against the
# test split. Scored on the train split (the training split).
# Usage, from the repository root: bash studies/digits/run.sh [RUN]   (default runs/digits_study)
set -euo pipefail
R=${1:-runs/digits_study}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
FS=(${PYTHON:-.venv/bin/python} -m featsel.cli)
mkdir -p "$R"
SECONDS=0
"${FS[@]}" validate --data digits --config configs/digits_tiny.yaml \
    --featurizers "identity,pca:dim=16,pca:dim=4,random-projection:dim=16" \
    --budget 300 --seeds 3 --jobs "${JOBS:-1}" --resume --score-flow --out "$R/pixels"
echo "pixels generation space: wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
