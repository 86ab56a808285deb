#!/usr/bin/env bash
# Round 9 (CPU, 2 cores): the round-8 student (ROUND8_STUDENT) continued for STEPS more steps with closed-mouth
# references only (its own recipe: round 8 showed that longer training on them keeps widening the opening), and
# the same with round 7's colour augmentation restricted to raising the saturation (round 7's range reached
# down to 0.6, where the bundled face's pale photo sits; its lower openings there were within what colour alone
# moves, round 8); then both evaluations beside the round-8 student, with real speech on all eight faces.
#   scripts/experiments/round9.sh [STEPS]   (default 12000, about 40 min per row on 2 cores; resumes)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-12000}"
source scripts/experiments/round_settings.sh "$STEPS"  # COMMON, ROUND8_STUDENT, train, evaluate_test, evaluate_speech(_more)
OUT=runs/round9
CONTINUE=(--init "$ROUND8_STUDENT" --lr 3e-4 --set data.reference_rest_fraction=1)
COLOUR_UP=(--set "data.colour_augment={saturation: [1.0, 1.4], channel_gain: [0.8, 1.25], brightness: [0.8, 1.2], fit_range: false}")
train student "$OUT/closed" "${CONTINUE[@]}"
train student "$OUT/colour-up" "${CONTINUE[@]}" "${COLOUR_UP[@]}"
models=("$OUT/closed/model_last.pt" "$OUT/colour-up/model_last.pt" "$ROUND8_STUDENT")
evaluate_test "$OUT/eval-test" "${models[@]}"
evaluate_speech "$OUT/speech" "${models[@]}"
evaluate_speech_more "$OUT/speech-more" "${models[@]}"
