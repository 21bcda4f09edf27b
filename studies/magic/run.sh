#!/usr/bin/env bash
# MAGIC study: the held-out test of studies/PROTOCOL.md addendum 13. Does `inversion_share`,
# chosen again by addendum 2's rule over all eleven seen data sets and spaces, predict which
# coupling space trains the best generator on data no criterion, selection or select rule has
# seen, with no candidate that is the generation space itself? Addendum 12's design but for the
# data, the class count and the candidates' dimensions: generation space ambient (10 standardised
# shower-image parameters), the MLP generator of configs/magic_mlp.yaml, 800 steps, 5 seeds,
# evaluated at 200/400/600/800; six candidates PCA-4, PCA-2, random projections to 4 and to 2,
# MLP VAEs with 4 and 2 latent dims (kl_weight 1e-3, seed 0) pretrained on the train split; the
# noise controls scored, not trained. FD unconditional and conditional in ambient, PCA-3 and a
# third MLP VAE (3 latent dims, seed 1, not a candidate) against the test split (metric-hacking
# pairs left out); scored on the train split with the particle flow and the inversion share.
# First featsel select from an empty folder (local executor; its rule and prior unchanged), then
# featsel validate in the same folder, which continues the selection's runs to the full budget.
# Results: RUN/sweep (selection.json, validation.json, reports), RUN/walltimes.txt.
# Usage, from the repository root: bash studies/magic/run.sh [RUN]   (default runs/magic)
#   JOBS=K training jobs at a time (default 2).
set -euo pipefail
R=${1:-runs/magic}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
FS=(${PYTHON:-.venv/bin/python} -m featsel.cli)
mkdir -p "$R"
SECONDS=0
for v in "vae4 4 0" "vae2 2 0" "vae3_eval 3 1"; do
  set -- $v
  [ -f "$R/$1/featurizer.pt" ] || "${FS[@]}" pretrain vae --data magic --split train \
      --out "$R/$1" --set latent_dim="$2" --set kl_weight=1e-3 --seed "$3" --quiet
done
echo "vae pretraining (3): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
ARGS=(--data magic --config configs/magic_mlp.yaml --set space=ambient
      --featurizers "pca:dim=4,pca:dim=2,random-projection:dim=4,random-projection:dim=2,$R/vae4/featurizer.pt,$R/vae2/featurizer.pt"
      --eval-featurizers "ambient,pca:dim=3,$R/vae3_eval/featurizer.pt"
      --budget 800 --seeds 5 --jobs "${JOBS:-2}" --resume --score-flow --score-inversion
      --out "$R/sweep")
SECONDS=0
"${FS[@]}" select "${ARGS[@]}" --executor local --quiet
echo "select (local, jobs ${JOBS:-2}): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
SECONDS=0
"${FS[@]}" validate "${ARGS[@]}"
echo "validate (completing the selection's runs): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
