#!/usr/bin/env bash
# Rebuild studies/summary.json, studies/summary.md and featsel/evidence.json from the studies'
# committed results (the pbmc68k scores from runs/selection: bash studies/selection/run.sh).
# Usage, from the repository root: bash studies/summarize.sh [SELECTION]  (default runs/selection)
#   MNIST=studies/mnist/results adds the MNIST test (addendum 3), PENBASED=studies/penbased/results
#   the pen-based digits test (addendum 4) and LETTER=studies/letter/results the letter test
#   (addendum 7), SEGMENT=studies/segment/results the image segmentation test (addendum 8) and
#   VEHICLE=studies/vehicle/results the vehicle test (addendum 10) and
#   INDIAN_PINES=studies/indian_pines/results the Indian Pines test (addendum 12) and
#   MAGIC=studies/magic/results the MAGIC test (addendum 13), PHONEME=studies/phoneme/results and
#   RING=studies/ring/results the default's replication (addendum 14), TWONORM=studies/twonorm/results
#   and MARKETING=studies/marketing/results the default's sixth and seventh held-out tests
#   (addendum 15) when those folders exist; the
#   held-out tests are also read together (summary.json "pooled": addendum 4's list;
#   "pooled_secondary": all of them, addenda 7, 8, 10, 12, 13 and 14; "pooled_named": the
#   inversion share's own held-out tests, vehicle, Indian Pines and MAGIC, addendum 13, which
#   featsel/evidence.json reads for the default criterion; with addendum 14's two, all five,
#   and the two of the replication alone; with addendum 15's two, all seven).
#   Then studies/probe.py reads select's first rung as a predictor (addendum 15) and writes its
#   record into featsel/evidence.json (summarize.py keeps it), and studies/reliability.py reads
#   how well each outcome agrees with itself on disjoint seeds (studies/reliability/).
#   MNIST5=studies/mnist/results_5seeds adds MNIST with five seeds as summary.json's
#   "robustness" (addendum 6: a check, not a test; outside the pooled readings and the evidence);
#   SEGMENT_LONG=studies/segment/long and VEHICLE_LONG=studies/vehicle/long add segment and
#   vehicle at 2400 steps there too (addenda 9 and 11).
#   inversion_share's values on the studies scored before it existed come from
#   studies/inversion/results.json (studies/inversion/explore.py; addendum 10).
set -euo pipefail
S=${1:-runs/selection}
EXTRA=()
M=${MNIST:-studies/mnist/results}
[ -f "$M/validation.json" ] && EXTRA=(--study "mnist=$M"
    --role "mnist=held out (test of addendum 2's choice, addendum 3)")
P=${PENBASED:-studies/penbased/results}
[ -f "$P/validation.json" ] && EXTRA+=(--study "penbased=$P"
    --role "penbased=held out (test of addendum 2's choice, addendum 4)")
L=${LETTER:-studies/letter/results}
[ -f "$L/validation.json" ] && EXTRA+=(--study "letter=$L"
    --role "letter=held out (test of addendum 2's choice, addendum 7)")
G=${SEGMENT:-studies/segment/results}
[ -f "$G/validation.json" ] && EXTRA+=(--study "segment=$G"
    --role "segment=held out (test of addendum 2's choice, addendum 8)")
V=${VEHICLE:-studies/vehicle/results}
[ -f "$V/validation.json" ] && EXTRA+=(--study "vehicle=$V"
    --role "vehicle=held out (test of addendum 10's choice, inversion_share; null_share's sixth)")
I=${INDIAN_PINES:-studies/indian_pines/results}
[ -f "$I/validation.json" ] && EXTRA+=(--study "indian_pines=$I"
    --role "indian_pines=held out (addendum 12: no candidate is the generation space; null_share's seventh)")
A=${MAGIC:-studies/magic/results}
[ -f "$A/validation.json" ] && EXTRA+=(--study "magic=$A"
    --role "magic=held out (test of addendum 13's choice, inversion_share; null_share's eighth)")
H=${PHONEME:-studies/phoneme/results}
[ -f "$H/validation.json" ] && EXTRA+=(--study "phoneme=$H"
    --role "phoneme=held out (addendum 14: the default's replication; null_share's ninth)")
N=${RING:-studies/ring/results}
[ -f "$N/validation.json" ] && EXTRA+=(--study "ring=$N"
    --role "ring=held out (addendum 14: the default's replication; null_share's tenth)")
TW=${TWONORM:-studies/twonorm/results}
[ -f "$TW/validation.json" ] && EXTRA+=(--study "twonorm=$TW"
    --role "twonorm=held out (addendum 15: inversion_share's sixth; null_share's eleventh)")
MK=${MARKETING:-studies/marketing/results}
[ -f "$MK/validation.json" ] && EXTRA+=(--study "marketing=$MK"
    --role "marketing=held out (addendum 15: inversion_share's seventh; null_share's twelfth)")
# the held-out tests of the ranking criterion read together: addendum 4's list (pre-registered)
# and, beside it, every held-out test so far (addenda 7, 8, 10 and 12)
POOL=texture
[ -f "$M/validation.json" ] && POOL+=,mnist
[ -f "$P/validation.json" ] && POOL+=,penbased
ALL=$POOL
[ -f "$L/validation.json" ] && ALL+=,letter
[ -f "$G/validation.json" ] && ALL+=,segment
[ -f "$V/validation.json" ] && ALL+=,vehicle
[ -f "$I/validation.json" ] && ALL+=,indian_pines
[ -f "$A/validation.json" ] && ALL+=,magic
[ -f "$H/validation.json" ] && ALL+=,phoneme
[ -f "$N/validation.json" ] && ALL+=,ring
[ -f "$TW/validation.json" ] && ALL+=,twonorm
[ -f "$MK/validation.json" ] && ALL+=,marketing
ALSO=()
[ "$ALL" != "$POOL" ] && ALSO=(--pool-also "$ALL")
# the inversion share's own held-out tests (addendum 13's second condition)
INV=
[ -f "$A/validation.json" ] && [ -f "$I/validation.json" ] && [ -f "$V/validation.json" ] &&
    INV=vehicle,indian_pines,magic &&
    ALSO+=(--pool-named "inversion_share's held-out tests (addendum 13)=$INV")
# addendum 14: the replication alone, and all five (the evidence of the default from then on)
[ -n "$INV" ] && [ -f "$H/validation.json" ] && [ -f "$N/validation.json" ] &&
    ALSO+=(--pool-named "the default's replication (addendum 14)=phoneme,ring"
           --evidence-replication "addendum 14=phoneme,ring") &&
    INV+=,phoneme,ring &&
    ALSO+=(--pool-named "inversion_share's held-out tests (addendum 14)=$INV")
# addendum 15: twonorm and marketing, its sixth and seventh held-out tests
[ -n "$INV" ] && [ -f "$TW/validation.json" ] && [ -f "$MK/validation.json" ] &&
    ALSO+=(--pool-named "addendum 15 (twonorm, marketing)=twonorm,marketing") &&
    INV+=,twonorm,marketing &&
    ALSO+=(--pool-named "inversion_share's held-out tests (addendum 15)=$INV")
[ -n "$INV" ] && ALSO+=(--evidence-held-out "$INV")  # the default since addendum 13
M5=${MNIST5:-studies/mnist/results_5seeds}
[ -f "$M5/validation.json" ] && ALSO+=(--robustness "mnist_5seeds=$M5"
    --role "mnist_5seeds=robustness check of the MNIST test, run after its result (addendum 6)")
G3=${SEGMENT_LONG:-studies/segment/long}
[ -f "$G3/validation.json" ] && ALSO+=(--robustness "segment_2400=$G3"
    --role "segment_2400=robustness check of the segment test at three times the budget, run after its result (addendum 9)")
V3=${VEHICLE_LONG:-studies/vehicle/long}
[ -f "$V3/validation.json" ] && ALSO+=(--robustness "vehicle_2400=$V3"
    --role "vehicle_2400=robustness check of the vehicle test at three times the budget, run after its result (addendum 11)")
OMP_NUM_THREADS=1 ${PYTHON:-.venv/bin/python} studies/summarize.py --out studies/summary.json \
    --selection "$S" --study satimage=studies/satimage/results --study digits=studies/digits/results \
    --study texture=studies/texture/results "${EXTRA[@]}" \
    --role "pbmc68k=selection (first protocol and addendum 2)" \
    --role "satimage=selection (addendum 2); before it, the held-out test of the first choice" \
    --role "digits=selection (addendum 2); before it, the second held-out test of the first choice" \
    --role "texture=held out (test of addendum 2's choice)" \
    --pool "$POOL" "${ALSO[@]}" --evidence featsel/evidence.json \
    --values inversion_share=studies/inversion/results.json \
    --note "\`inversion_share\` was designed after every data set but vehicle had been seen (PROTOCOL addendum 10): its values on those come from studies/inversion/results.json and are exploratory; vehicle, Indian Pines, MAGIC, phoneme, ring, twonorm and marketing are its held-out tests (phoneme and ring its replication, addendum 14; twonorm and marketing addendum 15). MNIST's value is on the rebuilt pipeline (robustness row), whose featurizers it needs."
OMP_NUM_THREADS=1 ${PYTHON:-.venv/bin/python} studies/probe.py --evidence featsel/evidence.json \
    > /dev/null
OMP_NUM_THREADS=1 ${PYTHON:-.venv/bin/python} studies/reliability.py --selection "$S" > /dev/null
