"""What an exported ONNX file says about itself (its lightlip.* metadata, each convolution's precision),
and its float dtype conversions.

Plain ONNX inspection with no PyTorch, so that lightlip-build-engine runs on a robot that has TensorRT but
not torch.
"""
from __future__ import annotations

import copy

import onnx
from onnx import TensorProto, helper, numpy_helper

from lightlip_ros.engines.base import FP16, FP32, INT8, META_PREFIX

CONV_OPS = ("Conv", "ConvTranspose")


def read_metadata(model: onnx.ModelProto) -> dict:
    """The lightlip.* metadata export writes, without the prefix."""
    return {prop.key[len(META_PREFIX):]: prop.value for prop in model.metadata_props
            if prop.key.startswith(META_PREFIX)}


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


def cast_float_tensors(model: onnx.ModelProto, source: int, target: int) -> None:
    """Retype, in place, every `source` float initializer, Constant tensor and Cast target to `target`
    (TensorProto.FLOAT / FLOAT16); graph inputs, outputs and value_info are left to the caller."""
    dtype = helper.tensor_dtype_to_np_dtype(target)
    graph = model.graph
    for init in graph.initializer:
        if init.data_type == source:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(dtype), init.name))
    for node in graph.node:
        for attribute in node.attribute:
            if node.op_type == "Cast" and attribute.name == "to" and attribute.i == source:
                attribute.i = target
            elif attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == source:
                attribute.t.CopyFrom(numpy_helper.from_array(
                    numpy_helper.to_array(attribute.t).astype(dtype), attribute.t.name))


def float32_carrier(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of an exported file whose float16 tensors, weights, Q/DQ scales and Casts are float32.

    The Q/DQ pairs and the INT8 weights stay as they are (every float16 scale is exact in float32), so the
    graph computes the same INT8 layers; the precision of the other layers is then the builder's to set
    (TensorRT 10.x weak typing: FP16 flag and per-layer constraints). It is the form TensorRT 10 parsers
    that take only float32 Q/DQ scales can read.
    """
    carrier = copy.deepcopy(model)
    cast_float_tensors(carrier, TensorProto.FLOAT16, TensorProto.FLOAT)
    del carrier.graph.value_info[:]
    return onnx.shape_inference.infer_shapes(carrier, strict_mode=True)
