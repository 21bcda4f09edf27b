#!/usr/bin/env bash
# featsel select with six candidates on pbmc68k (issue 12's fraction and regret on PBMC; the
# pre-registered study has 4 candidates, which puts eta 3 at 39% by construction), and a second,
# exploratory look at the criteria on selection data (studies/PROTOCOL.md addendum 5). The full
# PBMC study's ambient generation space (studies/pbmc/run_full.sh: configs/pbmc_mlp.yaml, 5
# seeds, 800 steps, FD in ambient, PCA-50 and the study's 10-d MLP VAE latent, scored with
# n = 4 on the whole data) with its four coupling spaces (ambient, PCA-50, PCA-16, the VAE,
# rebuilt by the same seeded command) plus pca:dim=4 and random-projection:dim=50. First featsel
# select (eta 3, local executor) from an empty folder, then featsel validate in the same folder,
# which continues the selection's runs to the full budget (the full sweep to compare with).
# Usage, from the repository root: bash studies/pbmc/select6/run.sh [R] (default runs/pbmc6)
#   JOBS=K training jobs at a time (default 2).
set -euo pipefail
R=${1:-runs/pbmc6}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
FS=(${PYTHON:-.venv/bin/python} -m featsel.cli)
VAE=runs/pbmc_full/vae/featurizer.pt
[ -f "$VAE" ] || "${FS[@]}" pretrain vae --data pbmc68k --split train --out runs/pbmc_full/vae --quiet
mkdir -p "$R"
ARGS=(--data pbmc68k --config configs/pbmc_mlp.yaml --set space=ambient
      --featurizers "ambient,pca:dim=50,pca:dim=16,$VAE,pca:dim=4,random-projection:dim=50"
      --eval-featurizers "ambient,pca:dim=50,$VAE" --score-n 4 --score-split all
      --budget 800 --seeds 5 --jobs "${JOBS:-2}" --resume --out "$R/sweep")
SECONDS=0
"${FS[@]}" select "${ARGS[@]}" --executor local --quiet
echo "select (local, jobs ${JOBS:-2}): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
SECONDS=0
"${FS[@]}" validate "${ARGS[@]}"
echo "validate (completing the selection's runs): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
