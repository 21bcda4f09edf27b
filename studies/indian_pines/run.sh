#!/usr/bin/env bash
# Indian Pines study: the held-out test of studies/PROTOCOL.md addendum 12. With no candidate that
# is the generation space itself (every candidate loses information: PCA, random projections and
# two learned VAE latents), does the default criterion predict which coupling space trains the best
# generator, on data no criterion, selection or select rule has seen, and does featsel select
# (unchanged, eta 3) pick that space? Addendum 10's design but for the data, the class count and
# the candidates: generation space ambient (200 standardised bands), the MLP generator of
# configs/indian_pines_mlp.yaml, 800 steps, 5 seeds, evaluated at 200/400/600/800; six candidates
# PCA-16, PCA-4, random projections to 16 and to 4, MLP VAEs with 16 and 4 latent dims (kl_weight
# 1e-3, seed 0) pretrained on the train split; the noise controls scored, not trained. FD
# unconditional and conditional in ambient, PCA-8 and a third MLP VAE (8 latent dims, seed 1, not
# a candidate) against the test split (metric-hacking pairs left out); scored on the train split
# with the particle flow and the inversion share. First featsel select from an empty folder (local
# executor), then featsel validate in the same folder, which continues the selection's runs to the
# full budget.
# Results: RUN/sweep (selection.json, validation.json, reports), RUN/walltimes.txt.
# Usage, from the repository root: bash studies/indian_pines/run.sh [RUN]   (default runs/indian_pines)
#   JOBS=K training jobs at a time (default 2).
set -euo pipefail
R=${1:-runs/indian_pines}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
FS=(${PYTHON:-.venv/bin/python} -m featsel.cli)
mkdir -p "$R"
SECONDS=0
for v in "vae16 16 0" "vae4 4 0" "vae8_eval 8 1"; do
  set -- $v
  [ -f "$R/$1/featurizer.pt" ] || "${FS[@]}" pretrain vae --data indian_pines --split train \
      --out "$R/$1" --set latent_dim="$2" --set kl_weight=1e-3 --seed "$3" --quiet
done
echo "vae pretraining (3): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
ARGS=(--data indian_pines --config configs/indian_pines_mlp.yaml --set space=ambient
      --featurizers "pca:dim=16,pca:dim=4,random-projection:dim=16,random-projection:dim=4,$R/vae16/featurizer.pt,$R/vae4/featurizer.pt"
      --eval-featurizers "ambient,pca:dim=8,$R/vae8_eval/featurizer.pt"
      --budget 800 --seeds 5 --jobs "${JOBS:-2}" --resume --score-flow --score-inversion
      --out "$R/sweep")
SECONDS=0
"${FS[@]}" select "${ARGS[@]}" --executor local --quiet
echo "select (local, jobs ${JOBS:-2}): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
SECONDS=0
"${FS[@]}" validate "${ARGS[@]}"
echo "validate (completing the selection's runs): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
