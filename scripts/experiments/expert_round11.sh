#!/usr/bin/env bash
# Round 11's lip-sync expert: the quarter-width SyncNet of round 9 trained by multi-way matching instead of
# Wav2Lip's pairs: for each audio window, pick its own face window among CANDIDATES windows of the same clip
# (cross-entropy over their similarities / 0.1). Round 9's pair-trained experts stayed at chance after 500
# steps of 64 pairs; candidates of one clip share the face, voice and light, so only the mouth separates them.
# Off-sync candidates start at least 3 frames away (two of five frames shared at most).
#   scripts/experiments/expert_round11.sh [STEPS] [CANDIDATES]   (default 4000 steps, 8 candidates; resumes)
# Into runs/round11/expert-matchCANDIDATES, with -STEPS added for another step count (a longer schedule is a new run).
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-4000}"
CANDIDATES="${2:-8}"
source scripts/experiments/round_settings.sh "$STEPS"  # run_training, multiway_expert_dir
OUT="$(multiway_expert_dir "$STEPS" "$CANDIDATES")"
run_training syncnet "$OUT" --data runs/data-synth --steps "$STEPS" --batch-size 8 \
  --lr 5e-4 --val-every 250 --threads 2 --num-workers 1 --set model.width=0.25 --set data.candidates="$CANDIDATES" \
  --set data.off_sync_min_offset=3 --set train.val_batches=20 --set data.val_samples_per_clip=8 \
  --set train.schedule=cosine
