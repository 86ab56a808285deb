"""INT8 layers emulated in PyTorch with the exact numbers the exported Q/DQ graphs use.

`quantize_layers` turns calibrated ranges into per-layer INT8 parameters (the same ones `export` writes into
the ONNX graph); `emulate_int8` makes chosen layers of a folded model compute with fake-quantized inputs and
weights for the duration of a `with` block, so one model serves every candidate precision plan.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
from torch import nn

from .layers import quantizable_layers, weight_axis
from .numerics import dequantize_weight, fake_quantize, quantize_weight, scale_from_amax


@dataclass(frozen=True)
class LayerQuantization:
    """One layer in INT8: its input's per-tensor scale, its INT8 weights and their per-channel scales."""
    input_scale: np.float16
    weight: np.ndarray  # int8, the layer's weight shape
    weight_scale: np.ndarray  # float16, one per output channel
    axis: int  # weight axis of the output channels


def quantize_layers(model: nn.Module, input_amax: Mapping[str, float], names=None) -> dict:
    """{name: LayerQuantization} for `names` (default: every layer in input_amax) of a folded model."""
    layers = quantizable_layers(model)
    names = list(input_amax) if names is None else list(names)
    unknown = [name for name in names if name not in layers]
    if unknown:
        raise KeyError(f"no quantizable layer named {', '.join(unknown)}")
    missing = [name for name in names if name not in input_amax]
    if missing:
        raise KeyError(f"no calibrated input range for {', '.join(missing)}")
    quantized = {}
    for name in names:
        module = layers[name]
        axis = weight_axis(module)
        weight, weight_scale = quantize_weight(module.weight.detach().cpu().numpy(), axis)
        quantized[name] = LayerQuantization(scale_from_amax(input_amax[name])[()], weight, weight_scale, axis)
    return quantized


@contextlib.contextmanager
def emulate_int8(model: nn.Module, quantized: Mapping[str, LayerQuantization]):
    """Within the block the named layers run on Q/DQ'd inputs and weights; everything is restored after."""
    layers = quantizable_layers(model)
    saved, handles = {}, []
    try:
        for name, layer in quantized.items():
            module = layers[name]
            saved[name] = module.weight.data
            module.weight.data = torch.from_numpy(dequantize_weight(layer.weight, layer.weight_scale, layer.axis))
            handles.append(module.register_forward_pre_hook(_input_quantizer(float(layer.input_scale))))
        yield model
    finally:
        for handle in handles:
            handle.remove()
        for name, weight in saved.items():
            layers[name].weight.data = weight


def _input_quantizer(scale: float):
    def hook(module, args):
        return (fake_quantize(args[0], scale),) + tuple(args[1:])
    return hook
