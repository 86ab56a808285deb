#!/usr/bin/env bash
# Ablation of the generator recipe's levers at equal steps and data (CPU, 2 cores): rows a-f each add one
# lever to the row before, g is the shipped defaults (f without the shape net), h adds round 7's colour
# augmentation to g, i and j the mouth motion weight and rooms and microphones to h, k and l round 8's mouth
# edges and wide-open windows to g; then each run is evaluated on the held-out test split. Resumable across
# sessions: rerun the same command (finished rows are kept, an interrupted one continues from its last checkpoint).
#   scripts/experiments/recipe_ablation.sh [STEPS]     (default 1000; about 0.25 s per step and row on 2 cores)
# Needs the benchmark in runs/data-synth (lightlip-data synth ... then cp -al data/synth runs/data-synth).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-1000}"
VAL_EVERY=$(( STEPS < 4000 ? 250 : 1000 ))
source scripts/experiments/round_settings.sh "$STEPS"  # COMMON (with VAL_EVERY), COLOUR, train, evaluate_test, SHAPE_NET
OUT=runs/ablation$STEPS
train_shape_net
SHAPE=(--shape-net "$SHAPE_NET" --set loss.frame_articulation=1)
L1_ONLY=(--set loss.mouth_recon=0 --set loss.articulation=0 --set loss.frame_articulation=0
         --set data.audio_augment=null --set data.reference_rest_fraction=0)
declare -A RUNS=(
  [a-l1]="${L1_ONLY[*]}"
  [b-mouth]="--set loss.articulation=0 --set data.audio_augment=null --set data.reference_rest_fraction=0"
  [c-audio-head]="--set data.audio_augment=null --set data.reference_rest_fraction=0"
  [d-shape-net]="${SHAPE[*]} --set data.audio_augment=null --set data.reference_rest_fraction=0"
  [e-rest-ref]="${SHAPE[*]} --set data.audio_augment=null"
  [f-augment]="${SHAPE[*]}"
  [g-default]=""  # the shipped recipe: f without the shape net
  [h-colour]="colour"
  [i-motion]="colour --set loss.mouth_motion_weight=4"
  [j-room]="colour --set data.audio_augment.reverb_s=[0.0,0.6] --set data.audio_augment.band_hz=[[50,300],[3400,7800]]"
  [k-edges]="--set loss.mouth_gradient=4"
  [l-wide]="--set data.wide_open_weight=3"
)
ORDER=(a-l1 b-mouth c-audio-head d-shape-net e-rest-ref f-augment g-default h-colour i-motion j-room k-edges l-wide)
models=()
for name in "${ORDER[@]}"; do
  # shellcheck disable=SC2086
  args=(${RUNS[$name]})
  [ "${args[0]:-}" = colour ] && args=("${COLOUR[@]}" "${args[@]:1}")  # COLOUR's value holds spaces
  train student "$OUT/$name" "${args[@]}"
  models+=("$OUT/$name/model_last.pt")
done
evaluate_test "$OUT/eval-test" "${models[@]}"
