#!/usr/bin/env bash
# One held-out test on a vector data set, with the design of addenda 12 and 13 (Indian Pines,
# MAGIC) and no candidate that is the generation space: generation space ambient, the MLP
# generator of configs/<DATA>_mlp.yaml, 800 steps, 5 seeds, evaluated at 200/400/600/800; six
# candidates PCA-HI, PCA-LO, random projections to HI and LO, MLP VAEs with HI and LO latent dims
# (kl_weight 1e-3, seed 0) pretrained on the train split; the noise controls scored, not trained.
# FD unconditional and conditional in ambient, PCA-MID and a third MLP VAE (MID latent dims, seed
# 1, not a candidate) against the test split (metric-hacking pairs left out); scored on the
# train split with the particle flow and the inversion share. First featsel select from an empty
# folder (local executor, its rule unchanged: rung 0 ranks by the default criterion), then
# featsel validate in the same folder, which continues the selection's runs to the full budget.
# Results: RUN/sweep (selection.json, validation.json, reports), RUN/walltimes.txt.
# Usage, from the repository root: bash studies/vector_study.sh DATA HI LO MID [RUN]
#   (default RUN runs/DATA); JOBS=K training jobs at a time (default 2).
set -euo pipefail
D=$1 HI=$2 LO=$3 MID=$4
R=${5:-runs/$D}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
FS=(${PYTHON:-.venv/bin/python} -m featsel.cli)
mkdir -p "$R"
SECONDS=0
for v in "vae$HI $HI 0" "vae$LO $LO 0" "vae${MID}_eval $MID 1"; do
  set -- $v
  [ -f "$R/$1/featurizer.pt" ] || "${FS[@]}" pretrain vae --data "$D" --split train \
      --out "$R/$1" --set latent_dim="$2" --set kl_weight=1e-3 --seed "$3" --quiet
done
echo "vae pretraining (3): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
ARGS=(--data "$D" --config "configs/${D}_mlp.yaml" --set space=ambient
      --featurizers "pca:dim=$HI,pca:dim=$LO,random-projection:dim=$HI,random-projection:dim=$LO,$R/vae$HI/featurizer.pt,$R/vae$LO/featurizer.pt"
      --eval-featurizers "ambient,pca:dim=$MID,$R/vae${MID}_eval/featurizer.pt"
      --budget 800 --seeds 5 --jobs "${JOBS:-2}" --resume --score-flow --score-inversion
      --out "$R/sweep")
SECONDS=0
"${FS[@]}" select "${ARGS[@]}" --executor local --quiet
echo "select (local, jobs ${JOBS:-2}): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
SECONDS=0
"${FS[@]}" validate "${ARGS[@]}"
echo "validate (completing the selection's runs): wall_s=$SECONDS" | tee -a "$R/walltimes.txt"
