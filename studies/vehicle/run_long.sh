#!/usr/bin/env bash
# Vehicle silhouettes at three times the budget (studies/PROTOCOL.md addendum 11): addendum 10's
# sweep (studies/vehicle/run.sh) with 2,400 steps instead of 800 and seeds 0-2, every other
# setting unchanged (the same VAE file, candidates, evaluations, score), in its own folder. A
# robustness check of the outcome, run after addendum 10's result was known: not a test.
# Usage, from the repository root: bash studies/vehicle/run_long.sh [RUN]   (default runs/vehicle)
#   JOBS=K training jobs at a time (default 2). Needs studies/vehicle/run.sh's VAE in RUN/vae.
set -euo pipefail
R=${1:-runs/vehicle}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
FS=(${PYTHON:-.venv/bin/python} -m featsel.cli)
VAE=$R/vae/featurizer.pt
[ -f "$VAE" ] || { echo "run studies/vehicle/run.sh $R first (its VAE: $VAE)" >&2; exit 1; }
SECONDS=0
"${FS[@]}" validate --data vehicle --config configs/vehicle_mlp.yaml --set space=ambient \
    --featurizers "ambient,pca:dim=8,pca:dim=3,random-projection:dim=8,random-projection:dim=3,$VAE" \
    --eval-featurizers "ambient,pca:dim=4,$VAE" \
    --budget 2400 --seeds 3 --jobs "${JOBS:-2}" --resume --score-flow --score-inversion --out "$R/sweep_long"
echo "validate, 2400 steps, 3 seeds (jobs ${JOBS:-2}): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
