#!/usr/bin/env bash
# The MNIST CPU runs of issue 5 (section 5): a candidate featurizer and identity, same budget
# (same config and steps, each capped at 20 minutes wall), one after the other on one thread.
# Usage (from the repository root): bash studies/train_mnist/run.sh [OUT_ROOT]
set -euo pipefail
OUT=${1:-runs/mnist}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 FEATSEL_DATA_DIR=${FEATSEL_DATA_DIR:-../shared/data}
for FEAT in "pca:dim=32" identity; do
  NAME=pca64_$(echo "$FEAT" | tr ':=' '__')
  SECONDS=0
  nice -n 10 timeout 1200 .venv/bin/featsel train --config configs/mnist_pca64_cpu.yaml \
      --featurizer "$FEAT" --out "$OUT/$NAME" --set progress=false || true
  echo "$FEAT wall_s=$SECONDS" >> "$OUT/walltimes.txt"
done
