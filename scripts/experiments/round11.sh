#!/usr/bin/env bash
# Round 11 (CPU, 2 cores): the lip-sync expert as a lever. The round-8 student continued STEPS steps with its
# recipe (closed references, no colour augmentation) plus WEIGHT x the expert's sync loss from the first step,
# the expert being round 11's multi-way matching one (expert_round11.sh, trained first when missing). REGION is
# what the expert judges: frame (the generated lower half, as Wav2Lip) or mouth (loss.sync_mouth_only: the
# generated mouth box on the reference face, so the sync gradient cannot paint the cheeks). MIRROR > 0 flips that
# share of the samples left to right (data.mirror; round 12). EXPERT_STEPS other than 4000 uses (and first trains)
# an expert of that schedule (expert_round11.sh EXPERT_STEPS 8). Same start, steps and schedule as round 9's closed
# row, its control. Then both evaluations, with LSE-D/C from that expert.
#   scripts/experiments/round11.sh [STEPS] [WEIGHT] [REGION] [MIRROR] [EXPERT_STEPS]
#   (default 12000, 0.3, frame, 0, 4000; about 50 min; resumes)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-12000}"
WEIGHT="${2:-0.3}"
REGION="${3:-frame}"
MIRROR="${4:-0}"
EXPERT_STEPS="${5:-4000}"
source scripts/experiments/round_settings.sh "$STEPS"  # ROUND8_STUDENT, use_multiway_expert, train_synced, evaluate_*
case "$REGION" in
  frame) ROW="sync$WEIGHT"; MOUTH_ONLY=false ;;
  mouth) ROW="sync$WEIGHT-mouth"; MOUTH_ONLY=true ;;
  *) echo "round11.sh: REGION must be frame or mouth, got $REGION" >&2; exit 2 ;;
esac
[ "$MIRROR" = 0 ] || ROW="$ROW-mirror$MIRROR"
OUT=runs/round11
[ "$EXPERT_STEPS" = 4000 ] || ROW="$ROW-expert$EXPERT_STEPS"
use_multiway_expert "$EXPERT_STEPS"  # SYNCNET
[ -f runs/round9/closed/model_last.pt ] || scripts/experiments/round9.sh "$STEPS"
train_synced "$OUT/$ROW" "$ROUND8_STUDENT" "$SYNCNET" "$WEIGHT" "$MOUTH_ONLY" --set data.mirror="$MIRROR"
models=("$OUT/$ROW/model_last.pt" runs/round9/closed/model_last.pt "$ROUND8_STUDENT")
evaluate_test "$OUT/eval-test-$ROW" "${models[@]}"
evaluate_speech "$OUT/speech-$ROW" "${models[@]}"
evaluate_speech_more "$OUT/speech-more-$ROW" "${models[@]}"
