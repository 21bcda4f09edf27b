#!/usr/bin/env bash
# Texture with 8 real candidates: issue 12's test of select's compute fraction at eta 3 with
# enough candidates for halving to pay (the pre-registered studies have 4-5, which put select at
# 33-39% by construction), and an exploratory second look at the criteria (the held-out test of
# studies/PROTOCOL.md addendum 2 stays the 5-candidate sweep in studies/texture/results).
# Design, fixed before any of it ran: the texture study's settings (configs/texture_mlp.yaml,
# generation space ambient, 5 seeds, 800 steps, FD in ambient, PCA-16 and the VAE latent against
# the test split; scored on the train split) and its 5 candidates, plus pca:dim=16,
# random-projection:dim=3 and random-projection:dim=16.
# 1. the full sweep (RUN/ambient8): 40 jobs; the 25 jobs of the pre-registered sweep are copied
#    from RUN/ambient/runs when studies/texture/run.sh has run in RUN (same data, config, seeds
#    and featurizer files: validate --resume finds them done and trains only the 15 new ones);
# 2. featsel select from an empty folder (RUN/select8), local executor, the defaults (eta 3).
# Usage, from the repository root: bash studies/texture/extended/run.sh [RUN] (default runs/texture)
#   PART=sweep|select runs one part (both run one job at a time, so two shells can run both).
set -euo pipefail
R=${1:-runs/texture}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
FS=(${PYTHON:-.venv/bin/python} -m featsel.cli)
mkdir -p "$R"
[ -f "$R/vae/featurizer.pt" ] || "${FS[@]}" pretrain vae --data texture --split train --out "$R/vae" \
    --set latent_dim=8 --set kl_weight=1e-3 --quiet
VAE=$R/vae/featurizer.pt
CANDIDATES="ambient,pca:dim=8,pca:dim=3,random-projection:dim=8,$VAE,pca:dim=16,random-projection:dim=3,random-projection:dim=16"
EVALS="ambient,pca:dim=16,$VAE"
if [ "${PART:-sweep}" = sweep ]; then
  if [ -d "$R/ambient/runs" ] && [ ! -d "$R/ambient8/runs" ]; then
    mkdir -p "$R/ambient8" && cp -r "$R/ambient/runs" "$R/ambient8/runs"
  fi
  SECONDS=0
  "${FS[@]}" validate --data texture --config configs/texture_mlp.yaml --set space=ambient \
      --featurizers "$CANDIDATES" --eval-featurizers "$EVALS" \
      --budget 800 --seeds 5 --jobs "${JOBS:-1}" --resume --score-flow --out "$R/ambient8"
  echo "8-candidate sweep: wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
fi
if [ "${PART:-select}" = select ]; then
  SECONDS=0
  "${FS[@]}" select --data texture --config configs/texture_mlp.yaml --set space=ambient \
      --featurizers "$CANDIDATES" --eval-featurizers "$EVALS" --budget 800 --seeds 5 \
      --out "$R/select8" --quiet --executor local --jobs "${JOBS:-1}" --resume
  echo "8-candidate select (local, jobs ${JOBS:-1}): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
fi
