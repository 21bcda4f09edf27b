#!/usr/bin/env bash
# MNIST with 5 seeds (studies/PROTOCOL.md addendum 6): the addendum-3 sweep (studies/mnist/run.sh,
# 3 seeds) extended by seeds 3 and 4, every setting unchanged, in a copy of its folder so the
# 3-seed result stays as it was. A robustness check run after the 3-seed result was known: the
# pre-registered number stays the 3-seed one. Needs studies/mnist/run.sh to have run in RUN.
# Usage, from the repository root: bash studies/mnist/run_5seeds.sh [RUN]   (default runs/mnist6)
set -euo pipefail
R=${1:-runs/mnist6}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
FS=(${PYTHON:-.venv/bin/python} -m featsel.cli)
[ -f "$R/vae6/validation.json" ] || { echo "run studies/mnist/run.sh $R first" >&2; exit 1; }
[ -d "$R/vae6s5" ] || cp -r "$R/vae6" "$R/vae6s5"
SECONDS=0
"${FS[@]}" validate --data mnist --config configs/mnist_vae_cpu.yaml --set "space=vae:path=$R/vae/vae" \
    --featurizers "identity,pca:dim=32,random-projection:dim=32,random-vit:patch_size=1,depth=4,embed_dim=64,num_heads=2,tap_every=2,seed=0,$R/mae0.75/featurizer.pt,$R/distill/featurizer.pt" \
    --eval-featurizers "ambient,vae-latent,cnn-teacher:path=$R/teacher/teacher.pt,cnn-teacher:path=$R/teacher_eval/teacher.pt" \
    --score-n 32 --score-max-samples 4000 --budget 800 --seeds 5 --jobs "${JOBS:-2}" \
    --resume --out "$R/vae6s5"
echo "validate, seeds 3-4 added: wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
