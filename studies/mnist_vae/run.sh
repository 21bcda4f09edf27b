#!/usr/bin/env bash
# The MNIST study of issue 6 (section 3): generate in a small VAE latent space (4x7x7), match in
# one of 8 candidate feature spaces, and check whether the training-free Delta_OT ranking predicts
# which candidate trains the best generator. Every stage is skipped when its output exists, so a
# killed run continues where it stopped. Only the MNIST test split (10,000 images) is on this
# machine: every stage uses it (VAE, classifiers, featurizers, generators, FD reference).
# Usage, from the repository root: bash studies/mnist_vae/run.sh [RUN]  (default runs/mnist)
#   SEEDS=3 BUDGET=800 JOBS=1 override the sweep size.
set -euo pipefail
R=${1:-runs/mnist}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
FS=(${PYTHON:-.venv/bin/python} -m featsel.cli)
D=(--data mnist --split test --quiet)
SPACE="vae:path=$R/vae/vae"
# the student / random ViT: 7x7 latent tokens (patch 1), 4 blocks of width 64
VIT=(--set depth=4 --set embed_dim=64 --set num_heads=2 --set tap_every=2)
SECONDS=0
# 1. the generation space: a small diffusers AutoencoderKL (28x28 -> 4x7x7)
[ -d "$R/vae/vae" ] || "${FS[@]}" pretrain vae "${D[@]}" --steps 1500 \
    --set block_out_channels=16+32+32 --out "$R/vae"
# 2. two CNN classifiers on pixels: the distillation teacher (its own feature space is the
#    metric-hacking candidate) and an independent one (seed 1, wider) used only for evaluation
[ -f "$R/teacher/teacher.pt" ] || "${FS[@]}" pretrain teacher "${D[@]}" --steps 800 --out "$R/teacher"
[ -f "$R/teacher_eval/teacher.pt" ] || "${FS[@]}" pretrain teacher "${D[@]}" --steps 800 \
    --set seed=1 --set width=48 --out "$R/teacher_eval"
# 3. candidate featurizers trained on VAE latents: MAE at three mask ratios (+ the short
#    classification fine-tune), and a student distilled from the CNN teacher
for M in 0.5 0.6 0.75; do
  [ -f "$R/mae$M/featurizer.pt" ] || "${FS[@]}" pretrain mae "${D[@]}" --space "$SPACE" \
      --mask-ratio "$M" --steps 1500 --set finetune_steps=200 "${VIT[@]}" --out "$R/mae$M"
done
[ -f "$R/distill/featurizer.pt" ] || "${FS[@]}" pretrain distill "${D[@]}" --space "$SPACE" \
    --teacher "$R/teacher/teacher.pt" --steps 1500 "${VIT[@]}" --out "$R/distill"
echo "pretraining: wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
# 4. the confirmation loop: score the 8 candidates, train one generator per (candidate, seed),
#    FD (unconditional and conditional) in 4 evaluation spaces
SECONDS=0
"${FS[@]}" validate --data mnist --config configs/mnist_vae_cpu.yaml --set "space=$SPACE" \
    --featurizers "identity,pca:dim=32,random-vit:patch_size=1,depth=4,embed_dim=64,num_heads=2,tap_every=2,seed=0,$R/mae0.5/featurizer.pt,$R/mae0.6/featurizer.pt,$R/mae0.75/featurizer.pt,$R/distill/featurizer.pt,cnn-teacher:path=$R/teacher/teacher.pt" \
    --eval-featurizers "ambient,vae-latent,cnn-teacher:path=$R/teacher/teacher.pt,cnn-teacher:path=$R/teacher_eval/teacher.pt" \
    --score-n 32 --score-max-samples 4000 --budget "${BUDGET:-800}" --seeds "${SEEDS:-3}" \
    --jobs "${JOBS:-1}" --resume --out "$R/validate"
echo "validate: wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
