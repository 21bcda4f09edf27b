#!/usr/bin/env bash
# The GPU checks and benchmarks in one go (one CUDA device; at most about 10 minutes (580 s of stage limits) on an H100/H200):
#   bash benchmarks/run_gpu.sh [OUT_DIR]     (default benchmarks/results)
# 1. the CUDA tests (tests/test_cuda.py and the other `cuda`-marked tests);
# 2. the OT engine at the training shapes against the paper code's solver, POT and GeomLoss,
#    all on the GPU (benchmarks/bench_ot.py --device cuda);
# 3. one training step at a paper-like shape (DiT-B/2 on 4x32x32 latents, bf16 autocast for
#    the networks) against the paper code's step (benchmarks/bench_train.py --device cuda);
# 4. the training field of one block at 4 cross / 2 self iterations, L in {257, 1028}, D in
#    {64, 1280}: checked route, sync-free route, sync-free replayed from a CUDA graph, and the
#    paper's plain loop (benchmarks/bench_field.py; goal: >= 1.5x the paper loop, same field);
# 5. large single problems: ours (auto = dense / KeOps) against GeomLoss tensorized and online.
# Each stage has its own time limit, so a slow one cannot starve the others.
set -uo pipefail
out=${1:-benchmarks/results}
mkdir -p "$out"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
rc=0
stage() {  # stage NAME SECONDS CMD...
  local name=$1 limit=$2
  shift 2
  echo "=== $name (limit ${limit}s)"
  local t0=$SECONDS
  timeout "$limit" "$@"
  local s=$?
  echo "=== $name: exit $s after $((SECONDS - t0)) s"
  [ $s -eq 0 ] || rc=1
}
"$py" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.__version__, torch.cuda.get_device_name())" || exit 1
stage cuda-tests 180 "$py" -m pytest -q -p no:cacheprovider -m cuda -rs tests
stage ot-training 100 "$py" -m benchmarks.bench_ot --device cuda --section training \
  --out "$out/ot_training_cuda.json"
stage train-step 90 "$py" -m benchmarks.bench_train --device cuda --amp --model B/2 --size 32 \
  --classes 8 --n-gen 64 --n-pos 128 --n-unc 32 --out "$out/bench_train_cuda.json"
stage field 90 "$py" -m benchmarks.bench_field --device cuda --repeats 20 \
  --shapes 257x64,257x1280,1028x64,1028x1280 --out "$out/bench_field_cuda.json"
stage ot-large 120 "$py" -m benchmarks.bench_ot --device cuda --section large --limit 40 \
  --large-sizes 20000x64,20000x768,50000x64 \
  --solvers ours-auto,ours-keops,geomloss-tensorized,geomloss-online \
  --out "$out/ot_large_cuda.json"
for f in ot_training_cuda ot_large_cuda; do
  [ -f "$out/$f.json" ] && "$py" -m benchmarks.bench_ot --markdown "$out/$f.json"
done
exit $rc
