#!/usr/bin/env bash
# The mixed-precision tables of docs/quantization.md on a student (default: the bundled one): per
# calibration method, the top-4 sensitivity plan, the four ONNX files and their quality on the test split.
#   scripts/experiments/quant_round5.sh [MODEL] [OUT]      (about 3 min per method on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL="${1:-lightlip_ros/assets/student.pt}"
OUT="${2:-runs/quant-round5}"
PY=.venv/bin/python
for method in percentile entropy; do
  $PY -m training.quant.cli sensitivity --model "$MODEL" --data runs/data-synth --top-k 4 --method "$method" \
    --out "$OUT/$method" --threads 2 --quiet
  $PY -m training.quant.cli export --model "$MODEL" --plan "$OUT/$method/plan.json" --out "$OUT/$method/onnx" \
    --threads 2 --quiet
  $PY -m training.quant.cli evaluate --onnx-dir "$OUT/$method/onnx" --data runs/data-synth \
    --out "$OUT/$method/quality" --threads 2 --quiet
done
