#!/usr/bin/env bash
# Criterion selection on pbmc68k (studies/PROTOCOL.md, "Selection rule"): score the coupling
# spaces of the full PBMC study (studies/pbmc/full) in each generation space with every
# registered criterion (noise controls added), then choose the criterion by the protocol's rule
# against the study's trained outcome (mean FD rank). Writes runs/selection/<space>/ (featsel
# score output) and runs/selection/selection.json (the committed studies/selection/selection.json
# is the record of the first choice).
# Usage, from the repository root: bash studies/selection/run.sh [RUN]   (default runs/selection)
set -euo pipefail
R=${1:-runs/selection}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
PY=${PYTHON:-.venv/bin/python}
FS=("$PY" -m featsel.cli)
# the study's VAE coupling space, rebuilt by the same seeded command (studies/pbmc/run_full.sh)
VAE=runs/pbmc_full/vae/featurizer.pt
[ -f "$VAE" ] || "${FS[@]}" pretrain vae --data pbmc68k --split train --out runs/pbmc_full/vae --quiet
SECONDS=0
[ -f "$R/ambient/results.json" ] || "${FS[@]}" score --data pbmc68k --split all --space ambient \
    --featurizers "ambient,pca:dim=50,pca:dim=16,$VAE" --eval-featurizers none --flow --quiet \
    --out "$R/ambient" --force > /dev/null
[ -f "$R/pca/results.json" ] || "${FS[@]}" score --data pbmc68k --split all --space pca:dim=50 \
    --featurizers "pca:dim=50,pca:dim=16,$VAE" --eval-featurizers none --flow --quiet \
    --out "$R/pca" --force > /dev/null
echo "scoring: wall_s=$SECONDS"
# the first protocol's rule on pbmc68k alone; studies/selection/selection.json is the committed
# record of that choice, so a rerun writes beside its scores (OUT=... to choose the file)
"$PY" studies/selection/choose.py --scores "$R" --out "${OUT:-$R/selection.json}"
