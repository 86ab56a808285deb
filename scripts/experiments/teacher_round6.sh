#!/usr/bin/env bash
# Round 6, step 1 (CPU, 2 cores): the teacher with the lip-sync recipe (training/train/configs/teacher.yaml levers),
# a generator of the student family at 1/2 widths (the 36 M-parameter Wav2Lip is ~16 s per step here).
# Resumable across sessions: rerun the same command to continue from runs/round6/teacher.
#   scripts/experiments/teacher_round6.sh [STEPS]   (default 20000)
# Then: scripts/experiments/distill_round6.sh, with the scratch twin scripts/experiments/student_round5.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/experiments/round_settings.sh  # STEPS, COMMON, train
train teacher runs/round6/teacher --set model.architecture=student --set model.widths=0.5
