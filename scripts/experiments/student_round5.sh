#!/usr/bin/env bash
# Round 5 (CPU, 2 cores): the student from scratch with the recipe that makes the mouth follow the speech
# (training/train/configs/distill.yaml defaults: mouth-weighted L1, articulation head on the audio embedding, closed
# references, audio augmentation), then its held-out evaluation on the synthetic test split and on real speech.
#   scripts/experiments/student_round5.sh [STEPS]   (default 20000; resumes an interrupted run)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-20000}"
PY=.venv/bin/python
OUT=runs/round5/student
SHARED=../shared/data
source scripts/experiments/round_settings.sh  # COMMON
mkdir -p runs/round5
RESUME=()
[ -f "$OUT/checkpoints/last.pt" ] && RESUME=(--resume "$OUT")
$PY -m training.train.cli student --out "$OUT" "${COMMON[@]}" "${RESUME[@]}" 2>&1 | stdbuf -oL tr "\r" "\n" \
  | grep --line-buffered -v "step/s" > "$OUT.log"
$PY -m training.data.cli eval runs/data-synth --split test --model "$OUT/model_last.pt" \
  lightlip_ros/assets/student.pt --out runs/round5/eval-test --threads 2 --quiet
$PY -m training.data.cli eval-speech --model "$OUT/model_last.pt" lightlip_ros/assets/student.pt \
  --audio "$SHARED"/speech/*.wav --face lightlip_ros/assets/face.jpg training/data/synth/astronaut.jpg \
  "$SHARED"/portraits/art_12.jpg \
  "$SHARED"/portraits/art_13.jpg --out runs/round5/speech --threads 2 --quiet
