#!/usr/bin/env bash
# Ablation of the generator recipe's levers at equal steps and data (CPU, 2 cores): each row adds one lever
# to the one before, then each run is evaluated on the held-out test split.
#   scripts/experiments/recipe_ablation.sh [STEPS]     (default 1000; about 6 min per run on 2 cores)
# Needs the benchmark in runs/data-synth (lightlip-data synth ... then cp -al data/synth runs/data-synth).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-1000}"
PY=.venv/bin/python
OUT=runs/ablation$STEPS
COMMON=(--data runs/data-synth --steps "$STEPS" --batch-size 4 --lr 1e-3 --val-every 250 --threads 2
        --num-workers 1 --set train.schedule=cosine --set train.warmup_steps=20 --set train.val_batches=8
        --set loss.sync=0)
L1_ONLY=(--set loss.mouth_recon=0 --set loss.articulation=0 --set loss.frame_articulation=0
         --set data.audio_augment=null --set data.reference_rest_fraction=0)
declare -A RUNS=(
  [a-l1]="${L1_ONLY[*]}"
  [b-mouth]="--set loss.articulation=0 --set loss.frame_articulation=0 --set data.audio_augment=null --set data.reference_rest_fraction=0"
  [c-audio-head]="--set loss.frame_articulation=0 --set data.audio_augment=null --set data.reference_rest_fraction=0"
  [d-shape-net]="--set data.audio_augment=null --set data.reference_rest_fraction=0"
  [e-rest-ref]="--set data.audio_augment=null"
  [f-default]=""
)
for name in a-l1 b-mouth c-audio-head d-shape-net e-rest-ref f-default; do
  if [ ! -f "$OUT/$name/summary.json" ]; then
    # shellcheck disable=SC2086
    $PY -m training.train.cli student --out "$OUT/$name" "${COMMON[@]}" ${RUNS[$name]} 2>&1 \
      | tr '\r' '\n' | grep -v "step/s" > "$OUT-$name.log" || true
  fi
done
models=()
for name in a-l1 b-mouth c-audio-head d-shape-net e-rest-ref f-default; do models+=("$OUT/$name/model_last.pt"); done
$PY -m training.data.cli eval runs/data-synth --split test --model "${models[@]}" --out "$OUT/eval-test" \
  --threads 2 --quiet
