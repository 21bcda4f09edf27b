#!/usr/bin/env bash
# MNIST in a small VAE latent space, 6 real candidates + the 2 noise controls: the test of
# featsel.defaults.RANK_CRITERION on MNIST (studies/PROTOCOL.md, addendum 3) and issue 12's
# select on MNIST. The design of studies/mnist_vae (whose featurizers were not kept) with the
# tool as it is now: generate in the 4x7x7 latent of a diffusers AutoencoderKL, match in a
# candidate's space, MLP generator (configs/mnist_vae_cpu.yaml), 800 steps, 3 seeds.
# Candidates: identity (the latent, per-location blocks), pca:dim=32, random-projection:dim=32,
# random-vit, mae0.75 (MAE on the latents + the short classification fine-tune) and distill
# (distilled from the CNN teacher); the score adds noise:dim=1 and noise:dim=<largest>, scored,
# not trained. FD (unconditional and conditional) in 4 spaces: decoded pixels, the VAE latent,
# the teacher CNN and an independent CNN (seed 1, wider), against the 10,000 test-split images
# (the only MNIST split here: every stage uses it).
# 1. pretraining (VAE, two CNNs, MAE, distilled ViT), two at a time;
# 2. featsel select (eta 3, local executor) in RUN/vae6;
# 3. featsel validate with the same settings and --resume in the same folder: the selection's
#    runs are continued to the full budget (nothing retrained), giving the full sweep.
# Every stage is skipped or resumed when its output exists.
# Usage, from the repository root: bash studies/mnist/run.sh [RUN]   (default runs/mnist6)
#   JOBS=2 training jobs at a time.
set -euo pipefail
R=${1:-runs/mnist6}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
FS=(${PYTHON:-.venv/bin/python} -m featsel.cli)
D=(--data mnist --split test --quiet)
SPACE="vae:path=$R/vae/vae"
VIT=(--set depth=4 --set embed_dim=64 --set num_heads=2 --set tap_every=2)
mkdir -p "$R"
SECONDS=0
[ -d "$R/vae/vae" ] || "${FS[@]}" pretrain vae "${D[@]}" --steps 1500 \
    --set block_out_channels=16+32+32 --out "$R/vae" &
[ -f "$R/teacher/teacher.pt" ] || "${FS[@]}" pretrain teacher "${D[@]}" --steps 800 --out "$R/teacher"
[ -f "$R/teacher_eval/teacher.pt" ] || "${FS[@]}" pretrain teacher "${D[@]}" --steps 800 \
    --set seed=1 --set width=48 --out "$R/teacher_eval"
wait
[ -f "$R/mae0.75/featurizer.pt" ] || "${FS[@]}" pretrain mae "${D[@]}" --space "$SPACE" \
    --mask-ratio 0.75 --steps 1500 --set finetune_steps=200 "${VIT[@]}" --out "$R/mae0.75" &
[ -f "$R/distill/featurizer.pt" ] || "${FS[@]}" pretrain distill "${D[@]}" --space "$SPACE" \
    --teacher "$R/teacher/teacher.pt" --steps 1500 "${VIT[@]}" --out "$R/distill"
wait
for f in "$R/vae/vae" "$R/teacher/teacher.pt" "$R/teacher_eval/teacher.pt" "$R/mae0.75/featurizer.pt" \
    "$R/distill/featurizer.pt"; do
  [ -e "$f" ] || { echo "pretraining failed: $f is missing" >&2; exit 1; }
done
echo "pretraining: wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
ARGS=(--data mnist --config configs/mnist_vae_cpu.yaml --set "space=$SPACE"
      --featurizers "identity,pca:dim=32,random-projection:dim=32,random-vit:patch_size=1,depth=4,embed_dim=64,num_heads=2,tap_every=2,seed=0,$R/mae0.75/featurizer.pt,$R/distill/featurizer.pt"
      --eval-featurizers "ambient,vae-latent,cnn-teacher:path=$R/teacher/teacher.pt,cnn-teacher:path=$R/teacher_eval/teacher.pt"
      --score-n 32 --score-max-samples 4000 --budget 800 --seeds 3 --jobs "${JOBS:-2}"
      --resume --out "$R/vae6")
SECONDS=0
"${FS[@]}" select "${ARGS[@]}" --quiet
echo "select (local, jobs ${JOBS:-2}): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
SECONDS=0
"${FS[@]}" validate "${ARGS[@]}"
echo "validate (completing the selection's runs): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
