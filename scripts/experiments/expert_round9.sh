#!/usr/bin/env bash
# Round 9's lip-sync expert: Wav2Lip's SyncNet at a quarter of its widths (1.04 M parameters, about 1/16 of the
# full expert's cost: 0.6 s per step of 64 pairs on one core), trained on the round-5 data snapshot. The full
# expert never left chance on this CPU (val BCE 0.684 after 150 steps); a narrow one can take thousands of steps.
#   scripts/experiments/expert_round9.sh [STEPS] [THREADS]   (default 3000 steps on 1 thread; resumes)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-3000}"
THREADS="${2:-1}"
PY=.venv/bin/python
OUT=runs/round9/expert
mkdir -p runs/round9
resume=()
[ -f "$OUT/checkpoints/last.pt" ] && resume=(--resume "$OUT")
[ -f "$OUT/summary.json" ] || $PY -m training.train.cli syncnet --data runs/data-synth --out "$OUT" --steps "$STEPS" \
  --batch-size 64 --lr 5e-4 --val-every 250 --threads "$THREADS" --num-workers 1 --set model.width=0.25 \
  --set train.val_batches=10 --set data.val_samples_per_clip=8 "${resume[@]}" 2>&1 | stdbuf -oL tr "\r" "\n" \
  | grep --line-buffered -v -E "s/step|step/s" >> "$OUT.log"
