#!/usr/bin/env bash
# Round 10 (CPU, 2 cores): round 9's colour row again with every augmented sample mapped back into [0, 1]
# (data.colour_augment.fit_range, now the default). Round 9's candidate, trained on samples whose pixels went
# above 1 (16 % of a crop on average) and below 0 (6 %), targets a sigmoid output can never meet, painted white
# spots on art_4's cheeks and left its mouth open in pauses. Same start (the round-8 student), steps, data and
# schedule as round9.sh's rows; then both evaluations beside round 9's rows and the round-8 student.
#   scripts/experiments/round10.sh [STEPS]   (default 12000, about 42 min on 2 cores; resumes)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-12000}"
source scripts/experiments/round_settings.sh "$STEPS"  # COMMON, ROUND8_STUDENT, train, evaluate_test, evaluate_speech(_more)
OUT=runs/round10
# Round 9's rows, compared below (trained by round9.sh when missing).
[ -f runs/round9/colour-up/model_last.pt ] && [ -f runs/round9/closed/model_last.pt ] || scripts/experiments/round9.sh "$STEPS"
train student "$OUT/colour-fit" --init "$ROUND8_STUDENT" --lr 3e-4 --set data.reference_rest_fraction=1 \
  --set "data.colour_augment={saturation: [1.0, 1.4], channel_gain: [0.8, 1.25], brightness: [0.8, 1.2]}"
models=("$OUT/colour-fit/model_last.pt" runs/round9/colour-up/model_last.pt runs/round9/closed/model_last.pt
        "$ROUND8_STUDENT")
evaluate_test "$OUT/eval-test" "${models[@]}"
evaluate_speech "$OUT/speech" "${models[@]}"
evaluate_speech_more "$OUT/speech-more" "${models[@]}"
