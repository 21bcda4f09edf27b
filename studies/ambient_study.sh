#!/usr/bin/env bash
# One held-out test on a table with the generation space itself among the candidates: the
# texture design of addenda 4, 7, 8 and 10 (pen-based digits, letter, segment, vehicle).
# Generation space ambient, the MLP generator of configs/<DATA>_mlp.yaml, 800 steps, 5 seeds,
# evaluated at 200/400/600/800; six real candidates: ambient, PCA-8, PCA-3, random projections
# to 8 and to 3, an MLP VAE with 8 latent dims (kl_weight 1e-3) pretrained on the train split;
# the noise controls scored, not trained. FD unconditional and conditional in ambient, PCA-4 and
# the VAE latent against the test split (metric-hacking pairs left out); scored on the train
# split with the particle flow (and whatever else SCORE_EXTRA asks, e.g. --score-inversion).
# First featsel select from an empty folder (local executor), then featsel validate in the same
# folder, which continues the selection's runs to the full budget.
# Results: RUN/sweep (selection.json, validation.json, reports), RUN/walltimes.txt.
# Usage, from the repository root: bash studies/ambient_study.sh DATA [RUN]
#   (default RUN runs/DATA); JOBS=K training jobs at a time (default 2).
set -euo pipefail
D=$1
R=${2:-runs/$D}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
FS=(${PYTHON:-.venv/bin/python} -m featsel.cli)
mkdir -p "$R"
SECONDS=0
[ -f "$R/vae/featurizer.pt" ] || "${FS[@]}" pretrain vae --data "$D" --split train --out "$R/vae" \
    --set latent_dim=8 --set kl_weight=1e-3 --quiet
echo "vae pretraining: wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
VAE=$R/vae/featurizer.pt
ARGS=(--data "$D" --config "configs/${D}_mlp.yaml" --set space=ambient
      --featurizers "ambient,pca:dim=8,pca:dim=3,random-projection:dim=8,random-projection:dim=3,$VAE"
      --eval-featurizers "ambient,pca:dim=4,$VAE"
      --budget 800 --seeds 5 --jobs "${JOBS:-2}" --resume --score-flow ${SCORE_EXTRA:-}
      --out "$R/sweep")
SECONDS=0
"${FS[@]}" select "${ARGS[@]}" --executor local --quiet
echo "select (local, jobs ${JOBS:-2}): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
SECONDS=0
"${FS[@]}" validate "${ARGS[@]}"
echo "validate (completing the selection's runs): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
