"""Selective mixed precision: calibration, per-layer INT8 sensitivity, precision plans and ONNX export."""
