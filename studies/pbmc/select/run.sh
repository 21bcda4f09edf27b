#!/usr/bin/env bash
# featsel select on the full PBMC study's ambient generation space (studies/pbmc/run_full.sh:
# coupling spaces ambient, PCA-50, PCA-16 and the 10-d MLP VAE, configs/pbmc_mlp.yaml, 5 seeds,
# 800 steps, FD in ambient, PCA-50 and the VAE latent, scored with n = 4 on the whole data), to
# compare with that sweep (studies/pbmc/full/ambient). The VAE is the study's, rebuilt by the
# same seeded command. 4 candidates at eta 3: 4 -> 2 -> 1 candidates, 39% of the sweep's
# candidate-steps by construction.
# Usage, from the repository root: bash studies/pbmc/select/run.sh [R]   (default runs/pbmc_select)
set -euo pipefail
R=${1:-runs/pbmc_select}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
FS=(${PYTHON:-.venv/bin/python} -m featsel.cli)
VAE=runs/pbmc_full/vae/featurizer.pt
[ -f "$VAE" ] || "${FS[@]}" pretrain vae --data pbmc68k --split train --out runs/pbmc_full/vae --quiet
mkdir -p "$R"
SECONDS=0
"${FS[@]}" select --data pbmc68k --config configs/pbmc_mlp.yaml --set space=ambient \
    --featurizers "ambient,pca:dim=50,pca:dim=16,$VAE" --eval-featurizers "ambient,pca:dim=50,$VAE" \
    --score-n 4 --score-split all --budget 800 --seeds 5 --out "$R/select" --quiet \
    --executor "${EXECUTOR:-local}" ${RESUME:+--resume}
echo "select (${EXECUTOR:-local}): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
