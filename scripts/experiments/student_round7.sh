#!/usr/bin/env bash
# Round 7's candidate default: the round-5 student (ROUND5_STUDENT) continued for STEPS steps with the colour augmentation
# (COLOUR) at the rate of round 7's rows, then both evaluations beside it.
#   scripts/experiments/student_round7.sh [STEPS]   (default 12500, about 50 min on 2 cores; resumes)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-12500}"
source scripts/experiments/round_settings.sh "$STEPS"  # COMMON, COLOUR, train, evaluate_test, evaluate_speech
OUT=runs/round7/student
train student "$OUT" --init "$ROUND5_STUDENT" --lr 3e-4 "${COLOUR[@]}"
evaluate_test runs/round7/student-eval-test "$OUT/model_last.pt" "$OUT/model.pt" "$ROUND5_STUDENT"
evaluate_speech runs/round7/student-speech "$OUT/model_last.pt" "$OUT/model.pt" "$ROUND5_STUDENT"
