"""ONNX files of one generator in every deployment precision, with BatchNorm folded and a dynamic batch.

- fp32: the folded generator as the core exporter writes it;
- fp16: every weight and every intermediate tensor in float16; the inputs and the output stay float32
  (a Cast after each input and before the output), so every engine is fed the same way;
- int8: the fp16 graph with explicit Q/DQ (QuantizeLinear -> DequantizeLinear) on the input of every
  convolution and INT8 weights behind a per-channel DequantizeLinear;
- mixed: the same, but only on the layers the plan does not keep in FP16.

With strong typing (TensorRT 11, or 10.x with STRONGLY_TYPED) a builder runs exactly these precisions: a
convolution whose input and weights come out of DequantizeLinear runs in INT8, anything else in the dtype
of its tensors. Q/DQ scales are float16 like the tensors they apply to, which ONNX allows from opset 19.
Convolution nodes are renamed after their PyTorch modules so that plans, reports and engine layers share
one vocabulary.
"""
from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from lightlip_ros.atomic_files import atomic_write, atomic_write_json, atomic_write_text
from lightlip_ros.engines.base import FP16, FP32, INT8, META_PREFIX, MIXED, PRECISIONS
from lightlip_ros.engines.onnx_export import export_generator_onnx
from lightlip_ros.engines.onnx_graph import CONV_OPS, cast_float_tensors, layer_precisions
from lightlip_ros.errors import LightLipError
from lightlip_ros.models import weight_fingerprint

from .emulation import LayerQuantization, quantize_layers
from .layers import fold_batchnorm, quantizable_layers
from .plan import QuantPlan

QDQ_OPSET = 19  # first opset whose QuantizeLinear/DequantizeLinear take float16 scales


class ExportError(LightLipError, ValueError):
    """An export that cannot be done as asked; one readable line."""


def export_precisions(model: nn.Module, out_dir, plan: QuantPlan | None = None, precisions=PRECISIONS,
                      stem: str = "generator", opset: int = QDQ_OPSET) -> dict:
    """Write `<stem>.<precision>.onnx` for each precision plus `<stem>.precision.json` and `.md` (the
    per-layer precision of every file, read back from the written graphs). Returns {precision: path}.

    int8 and mixed need a plan from `lightlip-quant sensitivity` made for this very model.
    """
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise ExportError(f"unknown precision {', '.join(unknown)} (choose from {', '.join(PRECISIONS)})")
    if opset < QDQ_OPSET and any(p in (FP16, INT8, MIXED) for p in precisions):
        raise ExportError(f"FP16 Q/DQ scales need opset {QDQ_OPSET} or later, got {opset}")
    folded = fold_batchnorm(model)
    quantized = _plan_quantization(folded, plan) if any(p in (INT8, MIXED) for p in precisions) else {}
    base = _export_base(folded, opset)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for precision in precisions:
        if precision == FP32:
            graph = copy.deepcopy(base)
        else:
            keep_fp16 = set(plan.fp16_layers) if precision == MIXED else set()
            graph = precision_graph(base, {name: layer for name, layer in quantized.items()
                                           if precision != FP16 and name not in keep_fp16})
        _set_metadata(graph, folded, precision, plan if precision in (INT8, MIXED) else None)
        path = out_dir / f"{stem}.{precision}.onnx"
        onnx.checker.check_model(graph, full_check=True)
        with atomic_write(path) as temporary:
            onnx.save(graph, str(temporary))
        written[precision] = path
    report = precision_report({precision: onnx.load(str(path)) for precision, path in written.items()})
    atomic_write_json(out_dir / f"{stem}.precision.json", report)
    atomic_write_text(out_dir / f"{stem}.precision.md", precision_report_markdown(report))
    return written


def _plan_quantization(folded: nn.Module, plan: QuantPlan | None) -> dict:
    if plan is None:
        raise ExportError("int8 and mixed precision need a plan (run `lightlip-quant sensitivity` first)")
    fingerprint = weight_fingerprint(folded)
    if plan.model.get("sha256") != fingerprint:
        raise ExportError(f"the plan was calibrated on other weights (model sha256 "
                          f"{plan.model.get('sha256', '?')[:12]}, "
                          f"this one {fingerprint[:12]}); run `lightlip-quant sensitivity` on this model")
    names = list(quantizable_layers(folded))
    if sorted(names) != sorted(plan.input_amax):
        raise ExportError("the plan's layers do not match the model's convolutions")
    return quantize_layers(folded, plan.input_amax, names)


def _export_base(folded: nn.Module, opset: int) -> onnx.ModelProto:
    with tempfile.TemporaryDirectory(prefix="lightlip-export-") as tmp:
        path = Path(tmp) / "fp32.onnx"
        export_generator_onnx(folded, path, opset=opset)
        model = onnx.load(str(path))
    name_layers(model, folded)
    return model


def name_layers(model: onnx.ModelProto, folded: nn.Module) -> None:
    """Rename every Conv/ConvTranspose node after the PyTorch module whose weights it holds (matched by
    value, whatever names the exporter gave), and make that weight initializer its direct input."""
    graph = model.graph
    by_value = {}
    for name, module in quantizable_layers(folded).items():
        weight = module.weight.detach().cpu().numpy().astype(np.float32)
        by_value[(weight.shape, weight.tobytes())] = name
    initializers = {init.name: init for init in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    found = set()
    for node in graph.node:
        if node.op_type not in CONV_OPS:
            continue
        weight_name = _resolve_identity(node.input[1], producers)
        if weight_name not in initializers:
            raise ExportError(f"the weights of ONNX node {node.name} are not a constant")
        weight = numpy_helper.to_array(initializers[weight_name]).astype(np.float32)
        layer = by_value.get((weight.shape, weight.tobytes()))
        if layer is None:
            raise ExportError(f"ONNX node {node.name} holds weights of no layer of the model")
        node.name = layer
        node.input[1] = weight_name
        found.add(layer)
    missing = set(by_value.values()) - found
    if missing:
        raise ExportError(f"layers missing from the exported graph: {', '.join(sorted(missing))}")
    _drop_unused(graph)


def _resolve_identity(name, producers):
    while name in producers and producers[name].op_type == "Identity":
        name = producers[name].input[0]
    return name


def _drop_unused(graph) -> None:
    """Remove nodes and initializers nothing consumes (iteratively, e.g. bypassed Identity chains)."""
    outputs = {output.name for output in graph.output}
    while True:
        consumed = outputs | {name for node in graph.node for name in node.input}
        dead = [node for node in graph.node if not any(output in consumed for output in node.output)]
        for node in dead:
            graph.node.remove(node)
        if not dead:
            break
    consumed = outputs | {name for node in graph.node for name in node.input}
    for init in [init for init in graph.initializer if init.name not in consumed]:
        graph.initializer.remove(init)


def precision_graph(base: onnx.ModelProto, int8_layers: Mapping[str, LayerQuantization]) -> onnx.ModelProto:
    """An FP16 copy of the (named, FP32) base graph with Q/DQ INT8 on `int8_layers`."""
    model = copy.deepcopy(base)
    insert_qdq(model, int8_layers)
    convert_to_fp16(model)
    return model


def insert_qdq(model: onnx.ModelProto, int8_layers: Mapping[str, LayerQuantization]) -> None:
    """Put Q/DQ on the input and DQ on INT8 weights of each named convolution (scales in float32 here,
    exact float16 values, so the FP16 conversion keeps them unchanged)."""
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    nodes, placed = [], set()
    for node in graph.node:
        layer = int8_layers.get(node.name) if node.op_type in CONV_OPS else None
        if layer is not None:
            nodes.extend(_qdq_nodes(graph, node, layer))
            weight_name = node.input[1]
            node.input[0] = f"{node.name}.input_dequantized"
            node.input[1] = f"{node.name}.weight_dequantized"
            if consumers[weight_name] == 1:
                graph.initializer.remove(initializers[weight_name])
            placed.add(node.name)
        nodes.append(node)
    missing = set(int8_layers) - placed
    if missing:
        raise ExportError(f"no convolution node named {', '.join(sorted(missing))} in the graph")
    del graph.node[:]
    graph.node.extend(nodes)


def _qdq_nodes(graph, node, layer: LayerQuantization):
    name = node.name
    channels = layer.weight.shape[layer.axis]
    graph.initializer.extend([
        numpy_helper.from_array(np.array(layer.input_scale, np.float32), f"{name}.input_scale"),
        numpy_helper.from_array(np.array(0, np.int8), f"{name}.input_zero_point"),
        numpy_helper.from_array(layer.weight, f"{name}.weight_quantized"),
        numpy_helper.from_array(layer.weight_scale.astype(np.float32), f"{name}.weight_scale"),
        numpy_helper.from_array(np.zeros(channels, np.int8), f"{name}.weight_zero_point"),
    ])
    activation = [f"{name}.input_scale", f"{name}.input_zero_point"]
    return [
        helper.make_node("QuantizeLinear", [node.input[0], *activation], [f"{name}.input_quantized"],
                         name=f"{name}.input_quantize"),
        helper.make_node("DequantizeLinear", [f"{name}.input_quantized", *activation],
                         [f"{name}.input_dequantized"], name=f"{name}.input_dequantize"),
        helper.make_node("DequantizeLinear", [f"{name}.weight_quantized", f"{name}.weight_scale",
                                              f"{name}.weight_zero_point"],
                         [f"{name}.weight_dequantized"], name=f"{name}.weight_dequantize", axis=layer.axis),
    ]


def convert_to_fp16(model: onnx.ModelProto) -> None:
    """Make every float tensor of the graph float16, keeping float32 graph inputs and outputs through
    Casts. Handles what a generator graph holds: initializers, Constant nodes and Cast targets."""
    graph = model.graph
    cast_float_tensors(model, TensorProto.FLOAT, TensorProto.FLOAT16)
    casts_in, casts_out = [], []
    for values, casts, target in ((graph.input, casts_in, TensorProto.FLOAT16),
                                  (graph.output, casts_out, TensorProto.FLOAT)):
        for io in values:
            if io.type.tensor_type.elem_type != TensorProto.FLOAT:
                continue
            half = f"{io.name}.fp16"  # the float16 twin every node now reads or writes instead
            for node in graph.node:
                node.input[:] = [half if name == io.name else name for name in node.input]
                node.output[:] = [half if name == io.name else name for name in node.output]
            source, result = (io.name, half) if target == TensorProto.FLOAT16 else (half, io.name)
            casts.append(helper.make_node("Cast", [source], [result], name=f"{result}.cast", to=target))
    nodes = casts_in + list(graph.node) + casts_out
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    model.CopyFrom(onnx.shape_inference.infer_shapes(model, strict_mode=True))
    float32 = [info.name for info in graph.value_info if info.type.tensor_type.elem_type == TensorProto.FLOAT]
    if float32:
        raise ExportError(f"tensors left in float32 after FP16 conversion: {', '.join(float32[:4])}")


def _set_metadata(model: onnx.ModelProto, folded: nn.Module, precision: str, plan: QuantPlan | None) -> None:
    precisions = layer_precisions(model)
    values = {
        "precision": precision,
        "model_sha256": weight_fingerprint(folded),
        "int8_layers": json.dumps([name for name, p in precisions.items() if p["precision"] == INT8]),
    }
    if plan is not None:
        values["calibration"] = json.dumps(plan.calibration, sort_keys=True)
    properties = {prop.key: prop.value for prop in model.metadata_props}  # the exporter's (architecture, config)
    properties.update({META_PREFIX + key: value for key, value in values.items()})
    onnx.helper.set_model_props(model, properties)


def precision_report(models: Mapping[str, onnx.ModelProto]) -> dict:
    """{precision: {"layers": layer_precisions, "counts": {precision: n}, "opset": n}} per written file."""
    report = {}
    for precision, model in models.items():
        layers = layer_precisions(model)
        counts = {}
        for layer in layers.values():
            counts[layer["precision"]] = counts.get(layer["precision"], 0) + 1
        opset = next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))
        report[precision] = {"layers": layers, "counts": counts, "opset": opset}
    return report


def precision_report_markdown(report: Mapping[str, dict]) -> str:
    files = list(report)
    names = list(next(iter(report.values()))["layers"]) if report else []
    lines = ["# Per-layer precision of the exported files", "",
             "Read back from each graph: INT8 = Q/DQ on the input and INT8 weights; otherwise the weight dtype.",
             "", "| layer | op | " + " | ".join(files) + " |", "|---|---|" + "---|" * len(files)]
    for name in names:
        op = report[files[0]]["layers"][name]["op"]
        cells = [report[f]["layers"].get(name, {}).get("precision", "-").upper() for f in files]
        lines.append(f"| `{name}` | {op} | " + " | ".join(cells) + " |")
    totals = [", ".join(f"{n} {p.upper()}" for p, n in sorted(report[f]["counts"].items())) for f in files]
    lines.append("| **total** | | " + " | ".join(totals) + " |")
    return "\n".join(lines) + "\n"
