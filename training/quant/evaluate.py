"""The quality table: every exported file run by ONNX Runtime on held-out samples, scored against FP32.

Graph optimisations are disabled so that ONNX Runtime runs each QuantizeLinear/DequantizeLinear and each
FP16 operator as written instead of fusing Q/DQ into its own integer kernels (which add their own
rounding): the numbers then emulate what a strongly typed TensorRT build computes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import onnx
import onnxruntime
import torch
from tqdm import tqdm

from .export import layer_precisions
from .plan import FP16, INT8
from .samples import SampleSet
from .sensitivity import LOWER_HALF, psnr_db


@dataclass(frozen=True)
class FileQuality:
    label: str
    path: str
    int8_layers: int
    fp16_layers: int
    psnr_db: float  # against the ground truth, mean per frame, over the region
    psnr_drop_db: float  # against the FP32 file
    psnr_vs_fp32_db: float  # the outputs against the FP32 file's outputs


def run_onnx(path, samples: SampleSet, batch_size: int = 32, threads: int = 1) -> torch.Tensor:
    """(N,3,96,96) outputs of an ONNX generator, Q/DQ and FP16 operators executed as written."""
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    mel_name, face_name = (i.name for i in session.get_inputs())
    outputs = [session.run(None, {mel_name: mel.numpy(), face_name: face.numpy()})[0]
               for mel, face, _ in samples.batches(batch_size)]
    return torch.from_numpy(np.concatenate(outputs).astype(np.float32))


def evaluate_files(files: Mapping[str, Path], samples: SampleSet, reference: str = "fp32", rows: slice = LOWER_HALF,
                   batch_size: int = 32, threads: int = 1, progress: bool = True) -> list:
    """FileQuality of each {label: path}; `reference` names the FP32 file the others are compared with."""
    if reference not in files:
        raise ValueError(f"the FP32 reference {reference!r} is not among the files ({', '.join(files)})")
    target = samples.target[:, :, rows].double()
    outputs = {}
    for label in tqdm(files, desc="evaluate", unit="file", disable=not progress, leave=False):
        outputs[label] = run_onnx(files[label], samples, batch_size, threads)[:, :, rows].double()

    def psnr(out):
        per_frame = ((out - target) ** 2).flatten(1).mean(1)
        return sum(psnr_db(float(mse)) for mse in per_frame) / len(per_frame)

    fp32 = psnr(outputs[reference])
    table = []
    for label, path in files.items():
        counts = _precision_counts(path)
        quality = psnr(outputs[label])
        fidelity = psnr_db(float(((outputs[label] - outputs[reference]) ** 2).mean()))
        table.append(FileQuality(label, str(path), counts.get(INT8, 0), counts.get(FP16, 0), quality,
                                 fp32 - quality, fidelity))
    return table


def _precision_counts(path) -> dict:
    counts = {}
    for layer in layer_precisions(onnx.load(str(path), load_external_data=False)).values():
        counts[layer["precision"]] = counts.get(layer["precision"], 0) + 1
    return counts


def quality_markdown(table, samples: SampleSet, rows: slice = LOWER_HALF) -> str:
    lines = [f"Held-out samples: {samples.source}; PSNR over rows {rows.start}-{rows.stop - 1} of the 96x96 crop, "
             "ONNX Runtime CPU with graph optimisations disabled.", "",
             "| file | INT8 layers | FP16 layers | PSNR (dB) | drop vs FP32 (dB) | PSNR vs FP32 output (dB) |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in table:
        lines.append(f"| {row.label} | {row.int8_layers} | {row.fp16_layers} | {row.psnr_db:.3f} | "
                     f"{row.psnr_drop_db:+.3f} | {row.psnr_vs_fp32_db:.2f} |")
    return "\n".join(lines) + "\n"


def quality_json(table) -> list:
    return [asdict(row) for row in table]
