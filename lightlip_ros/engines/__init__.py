"""Inference engines behind one interface, and the function that picks one.

    from lightlip_ros.engines import select_engine
    engine, reason = select_engine("student.pt")      # TensorRT > ONNX Runtime > PyTorch
    frames = engine.infer(mel_windows, face_inputs)   # (B,1,80,16), (B,6,96,96) -> (B,3,96,96)

Engine modules (and torch/onnxruntime) are imported only when an engine is opened;
lightlip_ros.engines.onnx_export.export_generator_onnx is the exporter the quantization tools share.
"""
from .base import (AUTO, ENGINE_NAMES, FP16, FP32, INT8, MIXED, ONNXRUNTIME, PRECISIONS, TENSORRT, TORCH,
                   EngineError, EngineOptions, InferenceEngine)
from .selection import ENGINES, PREFERENCES, model_kind, select_engine

__all__ = ["AUTO", "ENGINES", "ENGINE_NAMES", "EngineError", "EngineOptions", "FP16", "FP32", "INT8",
           "InferenceEngine", "MIXED", "ONNXRUNTIME", "PRECISIONS", "PREFERENCES", "TENSORRT", "TORCH",
           "model_kind", "select_engine"]
