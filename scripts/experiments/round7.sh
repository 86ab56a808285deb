#!/usr/bin/env bash
# Round 7 (CPU, 2 cores): three levers measured on the round-5 student (ROUND5_STUDENT) continued for STEPS more steps at a lower
# rate (same data, batch, schedule and steps in every row): the fixed mouth-shape net (loss.frame_articulation at
# weights 1 and 4), the colour augmentation of the training faces (data.colour_augment, COLOUR), and,
# with it, mouth pixels weighted by how far the truth moves from the reference (loss.mouth_motion_weight 4) and
# rooms and microphones in the audio augmentation (reverb_s, band_hz); then both evaluations.
#   scripts/experiments/round7.sh [STEPS]   (default 2500, about 11 min per row; resumes an interrupted run)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-2500}"
VAL_EVERY=500
source scripts/experiments/round_settings.sh "$STEPS"  # COMMON, COLOUR, train, train_shape_net, evaluate_test, evaluate_speech
OUT=runs/round7
train_shape_net
CONTINUE=(--init "$ROUND5_STUDENT" --lr 3e-4)
declare -A RUNS=(
  [control]=""
  [shape1]="--shape-net $SHAPE_NET --set loss.frame_articulation=1"
  [shape4]="--shape-net $SHAPE_NET --set loss.frame_articulation=4"
  [motion4]="--set loss.mouth_motion_weight=4"
  [room]="--set data.audio_augment.reverb_s=[0.0,0.6] --set data.audio_augment.band_hz=[[50,300],[3400,7800]]"
)
# Rows after control and the shape net add their lever to the colour augmentation.
declare -A WITH_COLOUR=([colour]=1 [motion4]=1 [room]=1)
ORDER=(control shape1 shape4 colour motion4 room)
models=()
for name in "${ORDER[@]}"; do
  colour=()
  [ -n "${WITH_COLOUR[$name]:-}" ] && colour=("${COLOUR[@]}")
  # shellcheck disable=SC2086
  train student "$OUT/$name" "${CONTINUE[@]}" "${colour[@]}" ${RUNS[$name]:-}
  models+=("$OUT/$name/model_last.pt")
done
evaluate_test "$OUT/eval-test" "${models[@]}" "$ROUND5_STUDENT"
evaluate_speech "$OUT/speech" "${models[@]}"
