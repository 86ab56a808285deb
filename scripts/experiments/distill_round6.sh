#!/usr/bin/env bash
# Round 6, step 2 (CPU, 2 cores): the paper's student distilled from the round-6 teacher
# (scripts/experiments/teacher_round6.sh) with the same data, recipe and steps as its scratch twin, the
# round-5 student (scripts/experiments/student_round5.sh), then both evaluated on the held-out synthetic test
# split and on real speech. Resumable across sessions: rerun the same command.
#   scripts/experiments/distill_round6.sh [STEPS]   (default 20000)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-20000}"
PY=.venv/bin/python
OUT=runs/round6/distilled
SHARED=../shared/data
TEACHER=runs/round6/teacher/model_last.pt
[ -f "$TEACHER" ] || { echo "distill_round6: $TEACHER missing: finish scripts/experiments/teacher_round6.sh first" >&2; exit 1; }
source scripts/experiments/round_settings.sh  # COMMON
RESUME=()
[ -f "$OUT/checkpoints/last.pt" ] && RESUME=(--resume "$OUT")
$PY -m training.train.cli distill --out "$OUT" --teacher "$TEACHER" "${COMMON[@]}" "${RESUME[@]}" 2>&1 \
  | stdbuf -oL tr "\r" "\n" | grep --line-buffered -v "step/s" >> "$OUT.log"
$PY -m training.data.cli eval runs/data-synth --split test --model "$OUT/model_last.pt" \
  runs/round5/student/model_last.pt "$TEACHER" --out runs/round6/eval-test --threads 2 --quiet
$PY -m training.data.cli eval-speech --model "$OUT/model_last.pt" runs/round5/student/model_last.pt \
  --audio "$SHARED"/speech/*.wav --face lightlip_ros/assets/face.jpg training/data/synth/astronaut.jpg \
  "$SHARED"/portraits/art_12.jpg "$SHARED"/portraits/art_13.jpg --out runs/round6/speech --threads 2 --quiet
