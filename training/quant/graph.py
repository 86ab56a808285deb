"""What an exported ONNX file says about itself: its lightlip.* metadata and each convolution's precision.

Plain ONNX inspection with no PyTorch, so that lightlip-build-engine runs on a robot that has TensorRT but
not torch.
"""
from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from .plan import FP16, INT8

FP32 = "fp32"
CONV_OPS = ("Conv", "ConvTranspose")
METADATA_PREFIX = "lightlip."


def read_metadata(model: onnx.ModelProto) -> dict:
    """The lightlip.* metadata export writes, without the prefix."""
    return {prop.key[len(METADATA_PREFIX):]: prop.value for prop in model.metadata_props
            if prop.key.startswith(METADATA_PREFIX)}


def layer_precisions(model: onnx.ModelProto) -> dict:
    """{layer: {"op", "precision", "weights"}} read from the graph itself: int8 when the convolution's
    input comes out of Q->DQ and its weights out of DQ of INT8 data; otherwise the dtype of its weights."""
    graph = model.graph
    producers = {output: node for node in graph.node for output in node.output}
    dtypes = {init.name: init.data_type for init in graph.initializer}
    result = {}
    for node in graph.node:
        if node.op_type not in CONV_OPS:
            continue
        activation, weight = producers.get(node.input[0]), producers.get(node.input[1])
        activation_qdq = (activation is not None and activation.op_type == "DequantizeLinear"
                          and producers.get(activation.input[0]) is not None
                          and producers[activation.input[0]].op_type == "QuantizeLinear")
        weight_int8 = (weight is not None and weight.op_type == "DequantizeLinear"
                       and dtypes.get(weight.input[0]) == TensorProto.INT8)
        if activation_qdq and weight_int8:
            precision, weights = INT8, "int8"
        else:
            weights = helper.tensor_dtype_to_np_dtype(dtypes.get(node.input[1], TensorProto.FLOAT)).name
            precision = {"float16": FP16, "float32": FP32}.get(weights, weights)
        result[node.name] = {"op": node.op_type, "precision": precision, "weights": weights}
    return result
