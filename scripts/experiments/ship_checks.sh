#!/usr/bin/env bash
# The checks a candidate student passes before it replaces lightlip_ros/assets/student.pt, beside the shipped one:
# the mixed-precision tables (quant_round5.sh), the held-out test split with the widest-open reference (how much
# an open still face leaks into the output), and demo strips on three unseen portraits with real speech, the
# shipped student's strip above the candidate's (compare.png per face): colour augmentation painted highlights
# that only such frames showed (docs/training.md rounds 7-10). Steps whose output exists are skipped.
#   scripts/experiments/ship_checks.sh MODEL OUT      (about 15 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL="$1"
OUT="$2"
source scripts/experiments/round_settings.sh 0  # PY, SHARED, evaluate_widest (it trains nothing here)
SHIPPED=lightlip_ros/assets/student.pt
mkdir -p "$OUT/strips"
[ -f "$OUT/quant/entropy/quality/quality.md" ] || scripts/experiments/quant_round5.sh "$MODEL" "$OUT/quant"
[ -f "$OUT/eval-widest/eval.md" ] || evaluate_widest "$OUT/eval-widest" "$MODEL" "$SHIPPED"
for face in art_18 art_4 happy; do
  for which in shipped candidate; do
    model="$MODEL"
    [ "$which" = shipped ] && model="$SHIPPED"
    [ -f "$OUT/strips/$face-${which}_strip.png" ] || .venv/bin/lightlip-demo --face "$SHARED/portraits/$face.jpg" \
      --audio "$SHARED/speech/RD_Radio34_002.wav" --model "$model" --output "$OUT/strips/$face-$which.mp4" | tail -1
  done
  $PY -c "import cv2, sys; cv2.imwrite(sys.argv[3], cv2.vconcat([cv2.imread(sys.argv[1]), cv2.imread(sys.argv[2])]))" \
    "$OUT/strips/$face-shipped_strip.png" "$OUT/strips/$face-candidate_strip.png" "$OUT/strips/$face-compare.png"
done
echo "ship checks of $MODEL in $OUT: quant/*/quality/quality.md, eval-widest/eval.md, strips/*-compare.png"
