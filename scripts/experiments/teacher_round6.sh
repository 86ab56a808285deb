#!/usr/bin/env bash
# Round 6, step 1 (CPU, 2 cores): the teacher with the lip-sync recipe (training/train/configs/teacher.yaml levers),
# a generator of the student family at 1/2 widths (the 36 M-parameter Wav2Lip is ~16 s per step here).
# Resumable across sessions: rerun the same command to continue from runs/round6/teacher.
#   scripts/experiments/teacher_round6.sh [STEPS]   (default 20000)
# Then: lightlip-train distill --teacher runs/round6/teacher/model_last.pt, and `student` at the same steps.
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-20000}"
OUT=runs/round6/teacher
source scripts/experiments/round_settings.sh  # COMMON
COMMON+=(--set model.architecture=student --set model.widths=0.5)
mkdir -p runs/round6
RESUME=()
[ -f "$OUT/checkpoints/last.pt" ] && RESUME=(--resume "$OUT")
.venv/bin/python -m training.train.cli teacher --out "$OUT" "${COMMON[@]}" "${RESUME[@]}" 2>&1 \
  | stdbuf -oL tr "\r" "\n" | grep --line-buffered -v "step/s" >> "$OUT.log"
