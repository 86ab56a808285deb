"""Exporting a generator to ONNX: one function for the runtime cache and the offline quantization tools."""
import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

import onnx
import torch

from ..atomic_files import atomic_write
from .base import FACE_SHAPE, INPUT_NAMES, MEL_SHAPE, META_ARCHITECTURE, META_CONFIG, ONNX_OPSET, OUTPUT_NAME

MAX_BATCH = 4096


def export_generator_onnx(model: torch.nn.Module, path, opset: int = ONNX_OPSET, **metadata) -> Path:
    """Writes model (a generator, possibly with fake-quantization) to path as ONNX; returns the path.

    Inputs "mel" (B,1,80,16) and "face" (B,6,96,96), output "frames" (B,3,96,96), batch dimension
    dynamic. Exported in eval mode with torch.export (BatchNorm folds into the convolutions). The
    generator's architecture and widths go into the file's metadata, with any extra metadata given as
    keyword arguments (str values). The file appears atomically: a reader never sees half an export.
    """
    path = Path(path)
    was_training = model.training
    model.eval()
    mel, face = torch.zeros(1, *MEL_SHAPE), torch.zeros(1, *FACE_SHAPE)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    try:
        with _quiet_exporter():
            program = torch.onnx.export(model, (mel, face), input_names=list(INPUT_NAMES),
                                        output_names=[OUTPUT_NAME], opset_version=opset,
                                        dynamic_shapes=({0: batch}, {0: batch}), dynamo=True, verbose=False)
        proto = program.model_proto
        properties = {}
        architecture = getattr(model, "architecture", None)
        if architecture:
            properties[META_ARCHITECTURE] = str(architecture)
        config = getattr(model, "config", None)
        if isinstance(config, dict):
            properties[META_CONFIG] = json.dumps(config, sort_keys=True)
        properties.update({str(k): str(v) for k, v in metadata.items()})
        onnx.helper.set_model_props(proto, properties)
        with atomic_write(path) as temporary:
            onnx.save(proto, str(temporary))
    finally:
        model.train(was_training)
    return path


@contextlib.contextmanager
def _quiet_exporter():
    """torch.onnx prints progress and warns about absent optional packages (torchvision) and the opset
    conversion on every export; none of it concerns a user whose export succeeds."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
