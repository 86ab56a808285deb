#!/usr/bin/env bash
# Round 9's lip-sync expert: Wav2Lip's SyncNet at a quarter of its widths (1.04 M parameters, about 1/16 of the
# full expert's cost), trained on the round-5 data snapshot. The full expert never left chance on this CPU (val
# BCE 0.684 after 150 steps; Wav2Lip's own needs ~150k steps on LRS2 before its loss falls below 0.69). OFFSET
# is data.off_sync_min_offset: off-sync windows at least that many frames away (1: any other, as Wav2Lip; 5: no
# frame shared with the in-sync window, an easier task to start from). Validation pairs follow the same offset.
#   scripts/experiments/expert_round9.sh [STEPS] [THREADS] [OFFSET]   (default 3000 steps, 2 threads, offset 1; resumes)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-3000}"
THREADS="${2:-2}"
OFFSET="${3:-1}"
source scripts/experiments/round_settings.sh "$STEPS"  # run_training
run_training syncnet "runs/round9/expert-offset$OFFSET" --data runs/data-synth --steps "$STEPS" --batch-size 64 \
  --lr 5e-4 --val-every 250 --threads "$THREADS" --num-workers 1 --set model.width=0.25 \
  --set data.off_sync_min_offset="$OFFSET" --set train.val_batches=10 --set data.val_samples_per_clip=8
