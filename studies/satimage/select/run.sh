#!/usr/bin/env bash
# featsel select on the satimage study's settings (studies/satimage/run.sh: 5 real candidates
# + 2 noise controls, configs/satimage_mlp.yaml, 5 seeds, 800 steps, FD in ambient, PCA-16 and
# the VAE latent), to compare with that study's full sweep (studies/satimage/results). The
# results here (selection.json, selection.html) were made with R=/tmp/sat on one core of the
# 2-core machine while the test suite ran beside it: 650 s wall in all. Local vs Ray on the
# quiet machine, 2 jobs at a time each (benchmarks/README.md):
#   JOBS=2 bash studies/satimage/select/run.sh runs/sat_local; EXECUTOR=ray bash ... runs/sat_ray
# ETA=K keeps the best ceil(n / K) per rung (default 3, featsel's); PROTOCOL addendum 16 ran
#   ETA=4 JOBS=2 bash studies/satimage/select/run.sh runs/sat_eta4   (studies/satimage/select_eta4)
# Usage, from the repository root: bash studies/satimage/select/run.sh [R]   (default runs/sat_select)
set -euo pipefail
R=${1:-runs/sat_select}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
FS=(${PYTHON:-.venv/bin/python} -m featsel.cli)
mkdir -p "$R"
[ -f "$R/vae/featurizer.pt" ] || "${FS[@]}" pretrain vae --data satimage --split train \
    --out "$R/vae" --set latent_dim=8 --set kl_weight=1e-3 --quiet
VAE=$R/vae/featurizer.pt
SECONDS=0
"${FS[@]}" select --data satimage --config configs/satimage_mlp.yaml --set space=ambient \
    --featurizers "ambient,pca:dim=8,pca:dim=3,random-projection:dim=8,$VAE,noise:dim=1,noise:dim=36" \
    --eval-featurizers "ambient,pca:dim=16,$VAE" --budget 800 --seeds 5 --out "$R/select" --quiet \
    --executor "${EXECUTOR:-local}" --jobs "${JOBS:-1}" --eta "${ETA:-3}" ${RESUME:+--resume}
echo "select (${EXECUTOR:-local}, jobs ${JOBS:-1}, eta ${ETA:-3}): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
