#!/usr/bin/env bash
# The MNIST CPU run of issue 5 (section 5): a candidate featurizer and identity, same budget.
# Usage (from the repository root): bash studies/train_mnist/run.sh [OUT_ROOT]
set -euo pipefail
OUT=${1:-runs/mnist}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
for FEAT in "pca:dim=32" identity; do
  NAME=$(echo "$FEAT" | tr ':=' '__')
  SECONDS=0
  nice -n 10 timeout 1200 .venv/bin/featsel train --config configs/mnist_cpu.yaml \
      --featurizer "$FEAT" --out "$OUT/$NAME" --set progress=false || true
  echo "$FEAT wall_s=$SECONDS" >> "$OUT/walltimes.txt"
done
