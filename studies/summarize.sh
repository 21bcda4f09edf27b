#!/usr/bin/env bash
# Rebuild studies/summary.json, studies/summary.md and featsel/evidence.json from the studies'
# committed results (the pbmc68k scores from runs/selection: bash studies/selection/run.sh).
# Usage, from the repository root: bash studies/summarize.sh [SELECTION]  (default runs/selection)
#   MNIST=studies/mnist/results adds the MNIST test (addendum 3) when that folder exists.
set -euo pipefail
S=${1:-runs/selection}
EXTRA=()
M=${MNIST:-studies/mnist/results}
[ -f "$M/validation.json" ] && EXTRA=(--study "mnist=$M"
    --role "mnist=held out (test of addendum 2's choice, addendum 3)")
OMP_NUM_THREADS=1 ${PYTHON:-.venv/bin/python} studies/summarize.py --out studies/summary.json \
    --selection "$S" --study satimage=studies/satimage/results --study digits=studies/digits/results \
    --study texture=studies/texture/results "${EXTRA[@]}" \
    --role "pbmc68k=selection (first protocol and addendum 2)" \
    --role "satimage=selection (addendum 2); before it, the held-out test of the first choice" \
    --role "digits=selection (addendum 2); before it, the second held-out test of the first choice" \
    --role "texture=held out (test of addendum 2's choice)" \
    --evidence featsel/evidence.json
