#!/usr/bin/env bash
# Image segmentation at three times the budget (studies/PROTOCOL.md addendum 9): addendum 8's
# sweep (studies/segment/run.sh) with 2,400 steps instead of 800 and seeds 0-2, every other
# setting unchanged (the same VAE file, candidates, evaluations, score), in its own folder. A
# robustness check of the outcome, run after addendum 8's result was known: not a test.
# Usage, from the repository root: bash studies/segment/run_long.sh [RUN]   (default runs/segment)
#   JOBS=K training jobs at a time (default 2). Needs studies/segment/run.sh's VAE in RUN/vae.
set -euo pipefail
R=${1:-runs/segment}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
FS=(${PYTHON:-.venv/bin/python} -m featsel.cli)
VAE=$R/vae/featurizer.pt
[ -f "$VAE" ] || { echo "run studies/segment/run.sh $R first (its VAE: $VAE)" >&2; exit 1; }
SECONDS=0
"${FS[@]}" validate --data segment --config configs/segment_mlp.yaml --set space=ambient \
    --featurizers "ambient,pca:dim=8,pca:dim=3,random-projection:dim=8,random-projection:dim=3,$VAE" \
    --eval-featurizers "ambient,pca:dim=4,$VAE" \
    --budget 2400 --seeds 3 --jobs "${JOBS:-2}" --resume --score-flow --out "$R/sweep_long"
echo "validate, 2400 steps, 3 seeds (jobs ${JOBS:-2}): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
