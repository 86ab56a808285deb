#!/usr/bin/env bash
# Round 8's candidate default: the shipped round-5 student continued for STEPS steps with its own recipe (no colour
# augmentation, which shrank the bundled face's openings in round 7) at the rate of the round-7/8 rows, then both
# evaluations beside the shipped student: does the opening keep widening with training alone?
#   scripts/experiments/student_round8.sh [STEPS]   (default 25000, about 90 min on 2 cores; resumes)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-25000}"
source scripts/experiments/round_settings.sh "$STEPS"  # COMMON, train, evaluate_test, evaluate_speech
OUT=runs/round8/student
train student "$OUT" --init lightlip_ros/assets/student.pt --lr 3e-4
evaluate_test runs/round8/student-eval-test "$OUT/model_last.pt" "$OUT/model.pt" lightlip_ros/assets/student.pt
evaluate_speech runs/round8/student-speech "$OUT/model_last.pt" "$OUT/model.pt" lightlip_ros/assets/student.pt
