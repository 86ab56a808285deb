"""INT8 arithmetic exactly as TensorRT's explicit quantization and ONNX Q/DQ define it.

Symmetric, zero point 0: q = saturate(round_half_even(x / scale)) in [-128, 127], x' = q * scale, with
scale = amax / 127. Weights use one scale per output channel, activations one scale per tensor.
Scales are rounded to float16 once, here, because the exported graphs run in FP16 and ONNX (opset 19+)
and TensorRT's strongly typed mode want a Q/DQ scale in the dtype of the tensor it applies to; emulation
and export share these rounded values, so both compute the same numbers.
"""
from __future__ import annotations

import numpy as np
import torch

INT8_MIN, INT8_MAX = -128, 127
# Smallest positive float16 (subnormal): the scale of an all-zero tensor or channel, which any scale
# represents exactly.
_SMALLEST_SCALE = float(np.finfo(np.float16).smallest_subnormal)
_LARGEST_SCALE = float(np.finfo(np.float16).max)


def scale_from_amax(amax) -> np.ndarray:
    """float16 scales amax / 127 (amax >= 0, any shape)."""
    amax = np.asarray(amax, dtype=np.float64)
    if np.any(~np.isfinite(amax)) or np.any(amax < 0):
        raise ValueError("amax must be finite and non-negative")
    return np.clip(amax / INT8_MAX, _SMALLEST_SCALE, _LARGEST_SCALE).astype(np.float16)


def channel_amax(weight: np.ndarray, axis: int) -> np.ndarray:
    """max |w| over every axis but `axis`."""
    weight = np.asarray(weight, dtype=np.float32)
    other = tuple(a for a in range(weight.ndim) if a != axis)
    return np.abs(weight).max(axis=other)


def _along(scale: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return scale.reshape(shape)


def quantize_weight(weight: np.ndarray, axis: int):
    """(int8 weights, float16 per-channel scales) of a float weight array, channels along `axis`."""
    weight = np.asarray(weight, dtype=np.float32)
    scale = scale_from_amax(channel_amax(weight, axis))
    divided = weight / _along(scale.astype(np.float32), axis, weight.ndim)
    return np.clip(np.rint(divided), INT8_MIN, INT8_MAX).astype(np.int8), scale


def dequantize_weight(quantized: np.ndarray, scale: np.ndarray, axis: int) -> np.ndarray:
    """float32 weights the INT8 weights stand for."""
    return quantized.astype(np.float32) * _along(scale.astype(np.float32), axis, quantized.ndim)


def fake_quantize(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Per-tensor Q then DQ of an activation (torch.round rounds half to even, as ONNX does)."""
    return torch.clamp(torch.round(x / scale), INT8_MIN, INT8_MAX) * scale
