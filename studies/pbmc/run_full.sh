#!/usr/bin/env bash
# The full PBMC study of issue 6 (section 3): the paper's single-cell grid on scanpy's bundled
# pbmc68k_reduced. Generation space ambient (765 genes) or PCA-50; coupling space (candidate)
# ambient, PCA-50, PCA-16 or a small MLP VAE latent (10 dims, standing in for scVI); 5 seeds each;
# unconditional and conditional FD in three evaluation spaces (ambient genes, PCA-50, the VAE
# latent). Results: RUN/ambient and RUN/pca (validation.json, validation.html, figures).
# Delta_OT is scored on all 700 cells (--score-split all): the train split's smallest cell type
# has 5 cells, too few for minibatches of 4 (the whole data set's has 8).
# Usage, from the repository root: bash studies/pbmc/run_full.sh [RUN]   (default runs/pbmc_full)
set -euo pipefail
R=${1:-runs/pbmc_full}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
FS=(${PYTHON:-.venv/bin/python} -m featsel.cli)
[ -f "$R/vae/featurizer.pt" ] || "${FS[@]}" pretrain vae --data pbmc68k --split train --out "$R/vae" --quiet
VAE=$R/vae/featurizer.pt
COMMON=(--data pbmc68k --eval-featurizers "ambient,pca:dim=50,$VAE" --config configs/pbmc_mlp.yaml
        --score-n 4 --score-split all --budget 800 --seeds 5 --jobs "${JOBS:-1}" --resume)
SECONDS=0
"${FS[@]}" validate "${COMMON[@]}" --featurizers "ambient,pca:dim=50,pca:dim=16,$VAE" \
    --set space=ambient --out "$R/ambient"
echo "ambient generation space: wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
SECONDS=0
"${FS[@]}" validate "${COMMON[@]}" --featurizers "pca:dim=50,pca:dim=16,$VAE" \
    --set space=pca:dim=50 --out "$R/pca"
echo "pca generation space: wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
