#!/usr/bin/env bash
# Round 6, step 2 (CPU, 2 cores): the paper's student distilled from the round-6 teacher
# (scripts/experiments/teacher_round6.sh) with the same data, recipe and steps as its scratch twin, the
# round-5 student (scripts/experiments/student_round5.sh), then both evaluated on the held-out synthetic test
# split and on real speech. Resumable across sessions: rerun the same command.
#   scripts/experiments/distill_round6.sh [STEPS]   (default 20000)
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/experiments/round_settings.sh  # STEPS, COMMON, train, evaluate_test, evaluate_speech
OUT=runs/round6/distilled
TEACHER=runs/round6/teacher/model_last.pt
[ -f "$TEACHER" ] || { echo "distill_round6: $TEACHER missing: finish scripts/experiments/teacher_round6.sh first" >&2; exit 1; }
train distill "$OUT" --teacher "$TEACHER"
evaluate_test runs/round6/eval-test "$OUT/model_last.pt" runs/round5/student/model_last.pt "$TEACHER"
evaluate_speech runs/round6/speech "$OUT/model_last.pt" runs/round5/student/model_last.pt
