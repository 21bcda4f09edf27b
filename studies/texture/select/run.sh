#!/usr/bin/env bash
# featsel select on the texture study's settings (studies/texture/run.sh: 5 real candidates,
# configs/texture_mlp.yaml, 5 seeds, 800 steps, FD in ambient, PCA-16 and the VAE latent; the
# noise controls the score adds are scored, never trained), to compare with that study's full
# sweep (studies/texture/results).
# Usage, from the repository root: bash studies/texture/select/run.sh [R]   (default runs/tex_select)
set -euo pipefail
R=${1:-runs/tex_select}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
FS=(${PYTHON:-.venv/bin/python} -m featsel.cli)
mkdir -p "$R"
[ -f "$R/vae/featurizer.pt" ] || "${FS[@]}" pretrain vae --data texture --split train \
    --out "$R/vae" --set latent_dim=8 --set kl_weight=1e-3 --quiet
VAE=$R/vae/featurizer.pt
SECONDS=0
"${FS[@]}" select --data texture --config configs/texture_mlp.yaml --set space=ambient \
    --featurizers "ambient,pca:dim=8,pca:dim=3,random-projection:dim=8,$VAE" \
    --eval-featurizers "ambient,pca:dim=16,$VAE" --budget 800 --seeds 5 --out "$R/select" --quiet \
    --executor "${EXECUTOR:-local}" --jobs "${JOBS:-1}" ${RESUME:+--resume}
echo "select (${EXECUTOR:-local}, jobs ${JOBS:-1}): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
