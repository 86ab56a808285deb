"""The generator in ONNX Runtime: a .onnx file, or a PyTorch checkpoint exported once and cached."""
import hashlib
import os
from pathlib import Path
from typing import List, Optional

import numpy as np

from ..errors import first_line
from .base import (FP16, FP32, INT8, INPUT_NAMES, META_ARCHITECTURE, META_PRECISION, MIXED, ONNX_OPSET, ONNXRUNTIME,
                   PRECISIONS, EngineError, EngineOptions, InferenceEngine)

# Providers tried in this order when present in the installed onnxruntime build; CPU always works.
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
ONNX_SUFFIXES = (".onnx",)
_QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger"}


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lightlip"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def onnx_precision(model) -> str:
    """The precision of an ONNX ModelProto (one of PRECISIONS): what lightlip-quant export recorded, else
    read from the graph (Q/DQ or integer ops: int8; half tensors: fp16; both: mixed)."""
    import onnx

    recorded = {prop.key: prop.value for prop in model.metadata_props}.get(META_PRECISION)
    if recorded in PRECISIONS:
        return recorded
    quantized = any(node.op_type in _QUANTIZED_OPS for node in model.graph.node)
    half = any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer) or any(
        value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
        for value in list(model.graph.input) + list(model.graph.output))
    if quantized and half:
        return MIXED
    return INT8 if quantized else FP16 if half else FP32


def exported_onnx_path(checkpoint: Path, cache_dir: Optional[Path] = None) -> Path:
    """Where the ONNX export of a checkpoint is cached: keyed by the checkpoint's content, not its name."""
    digest = file_sha256(checkpoint)[:20]
    return Path(cache_dir or default_cache_dir()) / f"{checkpoint.stem}-{digest}-opset{ONNX_OPSET}.onnx"


def export_checkpoint(checkpoint: Path, cache_dir: Optional[Path] = None):
    """-> (path of the cached ONNX export of a PyTorch checkpoint, whether it was already cached)."""
    from ..models import CheckpointError, load_generator
    from .onnx_export import export_generator_onnx

    target = exported_onnx_path(checkpoint, cache_dir)
    if target.is_file():
        return target, True
    try:
        model = load_generator(checkpoint)
    except CheckpointError as error:
        raise EngineError(f"onnxruntime: {error}") from error
    try:
        export_generator_onnx(model, target, source_checkpoint=checkpoint.name)
    except OSError as error:
        raise EngineError(f"onnxruntime: cannot write the ONNX export to {target.parent}: {error.strerror}") \
            from error
    return target, False


class OnnxRuntimeEngine(InferenceEngine):
    """ONNX Runtime on the best available provider (TensorRT, CUDA, else CPU).

    model_path is a .onnx file, or a PyTorch checkpoint that is exported to ONNX (opset 17, dynamic
    batch) on first use and cached by content hash in options.cache_dir.
    """

    name = ONNXRUNTIME

    def __init__(self, model_path, options: EngineOptions = EngineOptions()):
        try:
            import onnx
            import onnxruntime
        except ImportError as error:
            raise EngineError(f"onnxruntime: not installed ({error.name} missing)") from error
        source = Path(model_path)
        if not source.is_file():
            raise EngineError(f"onnxruntime: {source}: no such model file")
        self.source_path = str(source)
        self.exported = False  # a checkpoint was exported by this engine (not only read back from the cache)
        self.cached = False  # the export of a checkpoint came from the cache
        if source.suffix.lower() in ONNX_SUFFIXES:
            onnx_path = source
        else:
            onnx_path, self.cached = export_checkpoint(source, options.cache_dir)
            self.exported = not self.cached
        self.threads = int(options.threads)
        self.exact_graph = bool(options.exact_graph)
        try:
            self._load(onnx, onnxruntime, onnx_path)
        except EngineError:
            if not self.cached:
                raise
            # A damaged cache entry (the disk, not the checkpoint): export the checkpoint again.
            onnx_path.unlink()
            onnx_path, self.cached = export_checkpoint(source, options.cache_dir)
            self.exported = True
            self._load(onnx, onnxruntime, onnx_path)

    def _load(self, onnx, onnxruntime, onnx_path: Path):
        self.model_path = str(onnx_path)
        try:
            proto = onnx.load(str(onnx_path), load_external_data=False)
        except Exception as error:  # protobuf's DecodeError and onnx's own errors for foreign files
            raise EngineError(f"onnxruntime: {onnx_path.name} is not a readable ONNX model: {first_line(error)}") \
                from error
        self.precision = onnx_precision(proto)
        self.architecture = {p.key: p.value for p in proto.metadata_props}.get(META_ARCHITECTURE, "unknown")
        self.session, self.providers = self._session(onnxruntime, onnx_path)
        self._mel_name, self._face_name, self._input_types = self._inputs()

    def _session(self, onnxruntime, onnx_path: Path):
        settings = onnxruntime.SessionOptions()
        settings.intra_op_num_threads = self.threads
        settings.inter_op_num_threads = 1
        settings.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        settings.graph_optimization_level = (onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL if self.exact_graph
                                             else onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL)
        # Idle worker threads would otherwise spin between frames and burn a core for nothing.
        settings.add_session_config_entry("session.intra_op.allow_spinning", "0")
        settings.log_severity_level = 3
        available = set(onnxruntime.get_available_providers())
        preferred: List[str] = [p for p in PREFERRED_PROVIDERS if p in available]
        attempts = [preferred] if preferred == ["CPUExecutionProvider"] else [preferred, ["CPUExecutionProvider"]]
        error = None
        for providers in attempts:
            try:
                session = onnxruntime.InferenceSession(str(onnx_path), sess_options=settings, providers=providers)
                return session, session.get_providers()
            except Exception as failure:  # onnxruntime raises its own Fail/InvalidGraph/... types
                error = failure
        raise EngineError(f"onnxruntime: cannot load {onnx_path.name}: {first_line(error)}") from error

    def _inputs(self):
        inputs = self.session.get_inputs()
        if len(inputs) != 2:
            raise EngineError(f"onnxruntime: {Path(self.model_path).name} has {len(inputs)} inputs, "
                              f"a generator has 2 (mel, face)")
        names = [i.name for i in inputs]
        if set(names) == set(INPUT_NAMES):
            mel, face = INPUT_NAMES
        else:
            # A foreign export: tell the inputs apart by their channel count (1 for mel, 6 for face).
            channels = {i.name: i.shape[1] if len(i.shape) == 4 else None for i in inputs}
            mel = next((n for n, c in channels.items() if c == 1), names[0])
            face = next((n for n in names if n != mel))
        types = {i.name: np.float16 if i.type == "tensor(float16)" else np.float32 for i in inputs}
        return mel, face, types

    def _infer(self, mel_windows: np.ndarray, face_inputs: np.ndarray) -> np.ndarray:
        feeds = {self._mel_name: mel_windows.astype(self._input_types[self._mel_name], copy=False),
                 self._face_name: face_inputs.astype(self._input_types[self._face_name], copy=False)}
        return self.session.run(None, feeds)[0]

    def describe(self) -> str:
        where = "CPU" if self.providers[0] == "CPUExecutionProvider" else self.providers[0].replace(
            "ExecutionProvider", "")
        return (f"onnxruntime {self.precision} {self.architecture} on {where} "
                f"({self.threads} intra-op thread(s), {Path(self.model_path).name})")
