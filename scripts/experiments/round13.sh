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
source scripts/experiments/round_settings.sh "$STEPS"  # COMMON, train, evaluate_test, evaluate_speech(_more)
ROUND12_STUDENT=runs/round12-student.pt
[ -f "$ROUND12_STUDENT" ] || git show 4977985:lightlip_ros/assets/student.pt > "$ROUND12_STUDENT"
EXPERT=runs/round11/expert-match8-12000
[ -f "$EXPERT/summary.json" ] || scripts/experiments/expert_round11.sh 12000 8
SYNCNET="$EXPERT/model.pt"
OUT=runs/round13
ROW="continued-$STEPS"
# COMMON sets loss.sync=0; the later --set wins.
train student "$OUT/$ROW" --init "$ROUND12_STUDENT" --lr 3e-4 --set data.reference_rest_fraction=1 \
  --expert "$SYNCNET" --set loss.sync=0.1 --set loss.sync_enable_below=null --set loss.sync_mouth_only=true
evaluate_test "$OUT/eval-test-$ROW" "$OUT/$ROW/model_last.pt"
evaluate_speech "$OUT/speech-$ROW" "$OUT/$ROW/model_last.pt"
evaluate_speech_more "$OUT/speech-more-$ROW" "$OUT/$ROW/model_last.pt"
