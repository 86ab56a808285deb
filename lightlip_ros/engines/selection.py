"""Choosing the fastest engine that can run a model here, and saying why in one line."""
import importlib
import importlib.util
from pathlib import Path
from typing import Tuple

from ..errors import first_line
from .base import AUTO, ENGINE_NAMES, ONNXRUNTIME, TENSORRT, TORCH, EngineError, EngineOptions, InferenceEngine

# The engine registry: name -> "module:class", imported only when the engine is tried. Each class is
# constructed as Class(model_path, options) and raises EngineError when it cannot run the model.
ENGINES = {
    TENSORRT: "lightlip_ros.engines.tensorrt_engine:TensorRTEngine",
    ONNXRUNTIME: "lightlip_ros.engines.onnxruntime_engine:OnnxRuntimeEngine",
    TORCH: "lightlip_ros.engines.torch_engine:TorchEngine",
}
PREFERENCES = (AUTO,) + ENGINE_NAMES

# Model file kinds by suffix, and which engines read each kind.
ENGINE_FILE, ONNX_FILE, CHECKPOINT = "tensorrt", "onnx", "checkpoint"
TENSORRT_SUFFIXES = (".engine", ".plan", ".trt")
ONNX_SUFFIXES = (".onnx",)
READS = {
    TENSORRT: (ENGINE_FILE,),
    ONNXRUNTIME: (ONNX_FILE, CHECKPOINT),
    TORCH: (CHECKPOINT,),
}
KIND_NAMES = {ENGINE_FILE: "a TensorRT engine", ONNX_FILE: "an ONNX model", CHECKPOINT: "a PyTorch checkpoint"}
# Python modules an engine needs before it can be tried at all.
REQUIRED_MODULES = {TENSORRT: "tensorrt", ONNXRUNTIME: "onnxruntime", TORCH: "torch"}


def model_kind(path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in TENSORRT_SUFFIXES:
        return ENGINE_FILE
    if suffix in ONNX_SUFFIXES:
        return ONNX_FILE
    return CHECKPOINT


def _engine_class(name: str):
    module_name, class_name = ENGINES[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:  # a library the engine module needs, beyond REQUIRED_MODULES
        raise EngineError(f"{name}: {error.name} not installed") from error
    return getattr(module, class_name)


def _engine_available(name: str):
    """The engine class, or EngineError saying why this installation cannot run the engine at all."""
    if importlib.util.find_spec(REQUIRED_MODULES[name]) is None:
        raise EngineError(f"{name} not installed")
    return _engine_class(name)


def _load_note(engine: InferenceEngine) -> str:
    """What loading did beyond reading the file (an ONNX export, a cache hit)."""
    source = Path(getattr(engine, "source_path", engine.model_path)).name
    if getattr(engine, "exported", False):
        return f"exported {source} to ONNX (cached)"
    if getattr(engine, "cached", False):
        return f"used the cached ONNX export of {source}"
    return f"loaded {source}"


def select_engine(model_path, preference: str = AUTO, logger=None, options: EngineOptions = EngineOptions(),
                  fallback_model=None) -> Tuple[InferenceEngine, str]:
    """Opens the best engine for model_path -> (engine, reason), reason being one line for the log.

    preference "auto" tries TensorRT, ONNX Runtime, then PyTorch; naming an engine tries it first and
    the others after it. An engine that cannot run the model (module missing, file missing, corrupt or
    of a kind it does not read) is skipped and its reason kept. fallback_model (e.g. the bundled
    checkpoint) is used by engines that cannot read model_path, or when model_path does not exist.
    logger (logging.Logger or an rclpy logger), when given, gets a warning for every engine that was
    asked for or expected to work but failed. Raises EngineError listing every reason if none loads.
    """
    if preference not in PREFERENCES:
        raise ValueError(f"unknown engine preference {preference!r} (choose from {', '.join(PREFERENCES)})")
    order = ENGINE_NAMES if preference == AUTO else (preference,) + tuple(n for n in ENGINE_NAMES if n != preference)
    models = [Path(model_path)]
    if fallback_model is not None and Path(fallback_model) != Path(model_path):
        models.append(Path(fallback_model))
    skipped = []
    for name in order:
        try:
            engine_class = _engine_available(name)
        except EngineError as error:
            skipped.append(str(error))
            if logger is not None and name == preference:
                logger.warning(f"engine {name} unavailable, trying the next one: {error}")
            continue
        readable = [m for m in models if model_kind(m) in READS[name]]
        if not readable:
            skipped.append(f"{name} cannot read {KIND_NAMES[model_kind(models[0])]} ({models[0].name})")
            continue
        for model in readable:
            if not model.is_file():
                skipped.append(f"{name}: {model}: no such model file")
                continue
            try:
                engine = engine_class(model, options)
                engine.warm_up()
            except EngineError as error:
                skipped.append(str(error))
            except Exception as error:  # a bug or an unforeseen library failure: still fall back, but say so
                skipped.append(f"{name}: unexpected {type(error).__name__}: {first_line(error)}")
            else:
                notes = list(skipped)
                if model != models[0]:
                    notes.append(f"{models[0].name} unusable, used fallback {model.name}")
                return engine, f"{name}: " + "; ".join(notes + [_load_note(engine)])
            if logger is not None:
                logger.warning(f"engine {name} failed on {model.name}, trying the next option: {skipped[-1]}")
    raise EngineError(f"no inference engine can run {model_path}: " + "; ".join(skipped))
