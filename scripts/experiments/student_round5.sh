#!/usr/bin/env bash
# Round 5 (CPU, 2 cores): the student from scratch with the recipe that makes the mouth follow the speech
# (training/train/configs/distill.yaml defaults: mouth-weighted L1, articulation head on the audio embedding, closed
# references, audio augmentation), then its held-out evaluation on the synthetic test split and on real speech.
#   scripts/experiments/student_round5.sh [STEPS]   (default 20000; resumes an interrupted run)
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/experiments/round_settings.sh  # STEPS, COMMON, train, evaluate_test, evaluate_speech
OUT=runs/round5/student
train student "$OUT"
evaluate_test runs/round5/eval-test "$OUT/model_last.pt" lightlip_ros/assets/student.pt
evaluate_speech runs/round5/speech "$OUT/model_last.pt" lightlip_ros/assets/student.pt
