#!/usr/bin/env bash
# Round 8 (CPU, 2 cores): two levers against the under-drawn wide mouth (round 7: truth openings of 0.18 drawn
# at 0.08), measured like round 7 on the round-5 student continued for STEPS more steps at a lower rate (same
# data, batch, schedule and steps in every row): edges inside the mouth box (loss.mouth_gradient) and windows
# drawn more often where the mouth opens wide (data.wide_open_weight), each alone and together; and, because the
# reference's mouth leaks into the output (a closed reference halves the drawn opening, an open one restores it),
# every reference a closed mouth, like the robot's still face (data.reference_rest_fraction 1); then both
# evaluations.
#   scripts/experiments/round8.sh [STEPS]   (default 2500, about 10 min per row; resumes an interrupted run)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-2500}"
VAL_EVERY=500
source scripts/experiments/round_settings.sh "$STEPS"  # COMMON, train, evaluate_test, evaluate_speech
OUT=runs/round8
CONTINUE=(--init "$ROUND5_STUDENT" --lr 3e-4)
declare -A RUNS=(
  [control]=""
  [gradient4]="--set loss.mouth_gradient=4"
  [wide3]="--set data.wide_open_weight=3"
  [both]="--set loss.mouth_gradient=4 --set data.wide_open_weight=3"
  [rest1]="--set data.reference_rest_fraction=1"
)
ORDER=(control gradient4 wide3 both rest1)
models=()
for name in "${ORDER[@]}"; do
  # shellcheck disable=SC2086
  train student "$OUT/$name" "${CONTINUE[@]}" ${RUNS[$name]}
  models+=("$OUT/$name/model_last.pt")
done
evaluate_test "$OUT/eval-test" "${models[@]}" "$ROUND5_STUDENT"
evaluate_speech "$OUT/speech" "${models[@]}"
