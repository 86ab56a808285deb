#!/usr/bin/env bash
# Round 7's candidate default: the round-7 colour run (the round-5 student continued 2,500 steps with the colour
# augmentation, scripts/experiments/round7.sh) continued for STEPS more steps with the same recipe and rate, then
# both evaluations beside the shipped student.
#   scripts/experiments/student_round7.sh [STEPS]   (default 10000, about 45 min on 2 cores; resumes)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-10000}"
source scripts/experiments/round_settings.sh "$STEPS"  # COMMON, train, evaluate_test, evaluate_speech
OUT=runs/round7/student
[ -f runs/round7/colour/model_last.pt ] || scripts/experiments/round7.sh
train student "$OUT" --init runs/round7/colour/model_last.pt --lr 3e-4
evaluate_test runs/round7/student-eval-test "$OUT/model_last.pt" "$OUT/model.pt" lightlip_ros/assets/student.pt
evaluate_speech runs/round7/student-speech "$OUT/model_last.pt" "$OUT/model.pt" lightlip_ros/assets/student.pt
