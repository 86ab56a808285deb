#!/usr/bin/env bash
# Round 13 (CPU, 2 cores): the shipped round-12 student continued STEPS more steps with its own recipe (closed
# references, 0.1 x the expert's sync loss on the mouth box), judged by the 12,000-step multi-way expert
# (expert_round11.sh 12000 8, trained first when missing) instead of the 4,000-step one it was trained against.
# A ship candidate, not an equal-steps ablation: it compares with the student it continues. Then both evaluations
# of the new model, with LSE-D/C from that expert.
#   scripts/experiments/round13.sh [STEPS]   (default 6000, about 25 min; resumes)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-6000}"
source scripts/experiments/round_settings.sh "$STEPS"  # ROUND12_STUDENT, use_multiway_expert, train_synced, evaluate_*
use_multiway_expert 12000  # SYNCNET
OUT=runs/round13
ROW="continued-$STEPS"
train_synced "$OUT/$ROW" "$ROUND12_STUDENT" "$SYNCNET" 0.1 true
evaluate_test "$OUT/eval-test-$ROW" "$OUT/$ROW/model_last.pt"
evaluate_speech "$OUT/speech-$ROW" "$OUT/$ROW/model_last.pt"
evaluate_speech_more "$OUT/speech-more-$ROW" "$OUT/$ROW/model_last.pt"
