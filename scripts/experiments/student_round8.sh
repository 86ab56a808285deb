#!/usr/bin/env bash
# Round 8's candidate, shipped as lightlip_ros/assets/student.pt: the round-5 student (ROUND5_STUDENT) continued
# for STEPS steps with its own recipe (no colour augmentation) and every reference a closed mouth, like the
# robot's still face (data.reference_rest_fraction 1: round 8's rest1 row), at the rate of the round-7/8 rows;
# then both evaluations beside the round-5 student, the same test split with the widest-open reference (how
# much of the reference's mouth the output copies), and real speech on four more unseen portraits.
#   scripts/experiments/student_round8.sh [STEPS]   (default 20000, about 75 min on 2 cores; resumes)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-20000}"
source scripts/experiments/round_settings.sh "$STEPS"  # COMMON, ROUND5_STUDENT, train, evaluate_*
OUT=runs/round8/student
train student "$OUT" --init "$ROUND5_STUDENT" --lr 3e-4 --set data.reference_rest_fraction=1
evaluate_test runs/round8/student-eval-test "$OUT/model_last.pt" "$OUT/model.pt" "$ROUND5_STUDENT"
evaluate_speech runs/round8/student-speech "$OUT/model_last.pt" "$OUT/model.pt" "$ROUND5_STUDENT"
evaluate_widest runs/round8/student-eval-widest "$OUT/model_last.pt" "$ROUND5_STUDENT"
evaluate_speech_more runs/round8/student-speech-more "$OUT/model_last.pt" "$ROUND5_STUDENT"
