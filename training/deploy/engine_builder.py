"""lightlip-build-engine: a TensorRT engine from one of lightlip-quant's ONNX files, built on the target GPU.

    lightlip-build-engine runs/quant/onnx/generator.mixed.onnx            # -> generator.mixed.engine (+ .json)
    lightlip-build-engine model.onnx -o model.engine --max-batch 32 --timing-cache ~/.cache/lightlip/trt.cache

The precision of every layer is already in the ONNX file (Q/DQ for INT8, float16 tensors for FP16), so the
build is strongly typed: TensorRT 11 always is, and TensorRT 10.x (JetPack 6 ships 10.3) is asked for it with
NetworkDefinitionCreationFlag.STRONGLY_TYPED. Should a 10.x strongly typed build fail, the same graph is
built weakly typed instead, read with float32 tensors and Q/DQ scales (lightlip_ros.engines.onnx_graph.float32_carrier;
older 10.x parsers take no float16 scales): FP16/INT8 builder flags, and every layer the file holds in FP16
constrained to FP16 (OBEY_PRECISION_CONSTRAINTS), the Q/DQ layers giving INT8. TF32 is off, so FP32 means
FP32.

Tactic timings are kept in a timing cache (default: timing.cache beside the engine), so later builds on the
same GPU are fast. Beside the engine goes <engine>.json: TensorRT version, GPU, typing, I/O shapes and the
precision of every engine layer, which the runtime checks before it loads the engine.
"""
import argparse
import datetime
import hashlib
import json
import sys
import time
from pathlib import Path

import onnx

from lightlip_ros.atomic_files import atomic_write_bytes, atomic_write_json
from lightlip_ros.engines.base import FP16, FP32, INT8, META_ARCHITECTURE, EngineError
from lightlip_ros.engines.onnx_graph import float32_carrier, layer_precisions, read_metadata
from lightlip_ros.engines.tensorrt_engine import SIDECAR_FORMAT, SIDECAR_VERSION, cuda_device, sidecar_path
from lightlip_ros.errors import LightLipError, run_command

TYPINGS = ("auto", "strong", "weak")
# Layers that carry no arithmetic of their own: never given a precision constraint in a weak build.
_UNCONSTRAINED = ("CONSTANT", "QUANTIZE", "DEQUANTIZE", "SHAPE", "CAST", "IDENTITY", "SHUFFLE")


class BuildError(LightLipError, RuntimeError):
    """An engine that cannot be built here; one readable line."""


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as error:
        raise BuildError("TensorRT is not installed here (no `tensorrt` Python module): build the engine on the "
                         "target GPU machine, where JetPack or NVIDIA's packages provide it") from error
    major = int(tensorrt.__version__.split(".")[0])
    if major < 10:
        raise BuildError(f"TensorRT {tensorrt.__version__} is too old: LightLip builds with TensorRT 10 or 11")
    return tensorrt, major


def build_engine(onnx_path, engine_path=None, timing_cache=None, opt_batch: int = 1, max_batch: int = 16,
                 workspace_mib: int = 2048, typing: str = "auto", log_level: str = "WARNING") -> dict:
    """Build and write the engine and its sidecar; returns the sidecar dict."""
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise BuildError(f"{onnx_path}: no such ONNX file")
    if typing not in TYPINGS:
        raise BuildError(f"unknown typing {typing!r} (choose from {', '.join(TYPINGS)})")
    if not 1 <= opt_batch <= max_batch:
        raise BuildError(f"need 1 <= opt batch <= max batch, got {opt_batch} and {max_batch}")
    engine_path = Path(engine_path) if engine_path else onnx_path.with_suffix(".engine")
    timing_cache = Path(timing_cache) if timing_cache else engine_path.parent / "timing.cache"
    trt, major = import_tensorrt()
    if major >= 11 and typing == "weak":
        raise BuildError(f"TensorRT {trt.__version__} has no weakly typed networks; use --typing strong")
    try:
        device = cuda_device()
    except EngineError as error:
        raise BuildError(str(error)) from error

    model = onnx.load(str(onnx_path), load_external_data=False)
    logger = trt.Logger(getattr(trt.Logger, log_level))
    started = time.monotonic()
    attempts = ["strong", "weak"] if typing == "auto" and major == 10 else [typing if typing != "auto" else "strong"]
    failures = []
    for attempt in attempts:
        try:
            serialized, shapes = _build(trt, major, logger, onnx_path, model, attempt == "strong", timing_cache,
                                        opt_batch, max_batch, workspace_mib)
            break
        except BuildError as error:
            failures.append(f"{attempt}ly typed: {error}")
    else:
        raise BuildError("; ".join(failures))

    atomic_write_bytes(engine_path, serialized)
    layers = engine_layers(trt, logger, serialized)
    metadata = read_metadata(model)
    counts = {}
    for layer in layers:
        counts[layer["precision"]] = counts.get(layer["precision"], 0) + 1
    sidecar = {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "engine": engine_path.name,
        "onnx": str(onnx_path),
        "onnx_sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "tensorrt_version": trt.__version__,
        "gpu": device,
        "typing": attempt,
        "fallback_reason": failures[0] if failures else None,
        "precision": metadata.get("precision", "unknown"),
        "architecture": {p.key: p.value for p in model.metadata_props}.get(META_ARCHITECTURE, "unknown"),
        "shapes": shapes,
        "layers": layers,
        "precision_counts": counts,
        "timing_cache": str(timing_cache),
        "build_seconds": round(time.monotonic() - started, 1),
        "built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_json(sidecar_path(engine_path), sidecar)
    return sidecar


def _build(trt, major, logger, onnx_path, model, strongly_typed, timing_cache, opt_batch, max_batch, workspace_mib):
    builder = trt.Builder(logger)
    flags = 0
    if strongly_typed and major == 10:  # TensorRT 11 is always strongly typed and ignores the flag
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    # Weakly typed, precision comes from flags and constraints, so the graph is read with float32 tensors
    # and Q/DQ scales, which every 10.x parser takes (float16 scales need a recent one).
    parsed = (parser.parse_from_file(str(onnx_path)) if strongly_typed
              else parser.parse(float32_carrier(model).SerializeToString(), str(onnx_path)))
    if not parsed:
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise BuildError(f"the ONNX parser rejected {onnx_path.name}: {' | '.join(errors) or 'no reason given'}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    shapes = {}
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        rest = tuple(tensor.shape)[1:]
        low, best, high = (1,) + rest, (opt_batch,) + rest, (max_batch,) + rest
        profile.set_shape(tensor.name, low, best, high)
        shapes[tensor.name] = {"min": list(low), "opt": list(best), "max": list(high)}
    for index in range(network.num_outputs):
        tensor = network.get_output(index)
        shapes[tensor.name] = {"shape": ["batch"] + list(tuple(tensor.shape)[1:])}
    config.add_optimization_profile(profile)

    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        # A cache from another GPU or TensorRT version: start a fresh one rather than mix tactics.
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    if not strongly_typed:
        _constrain_precisions(trt, network, config, model)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError("the builder produced no engine (see the TensorRT messages above)")
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized), shapes


def _constrain_precisions(trt, network, config, model) -> None:
    """TensorRT 10.x weak typing: FP16/INT8 flags, and FP16 on every layer the file keeps in FP16."""
    convolutions = layer_precisions(model)
    int8 = [name for name, layer in convolutions.items() if layer["precision"] == INT8]
    half = any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer)
    if int8:
        config.set_flag(trt.BuilderFlag.INT8)
    if not half:
        return
    config.set_flag(trt.BuilderFlag.FP16)
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    unconstrained = {getattr(trt.LayerType, name) for name in _UNCONSTRAINED if hasattr(trt.LayerType, name)}
    outputs = {network.get_output(i).name for i in range(network.num_outputs)}
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        # The INT8 convolutions get their precision from their Q/DQ; a constraint would fight the fusion.
        if layer.type in unconstrained or any(layer.name.startswith(name) for name in int8):
            continue
        layer.precision = trt.float16
        for output in range(layer.num_outputs):
            tensor = layer.get_output(output)
            if tensor.name not in outputs and tensor.dtype in (trt.float32, trt.float16):
                layer.set_output_type(output, trt.float16)


def engine_layers(trt, logger, serialized: bytes) -> list:
    """[{"name", "type", "precision", "formats"}] of every engine layer, from the engine inspector."""
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(serialized)
    if engine is None:
        raise BuildError("the engine just built cannot be deserialized")
    info = json.loads(engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON))
    return [_describe_layer(layer) for layer in info.get("Layers", [])]


def _describe_layer(layer) -> dict:
    """One inspector entry: a name only (low verbosity) or a dict whose I/O entries name their formats.
    The key holding the format differs between TensorRT 10 ("Format/Datatype") and 11, so every string
    value of an input/output entry that names a data type is read."""
    if isinstance(layer, str):
        return {"name": layer, "type": "unknown", "precision": "unknown", "formats": []}
    formats = []
    for entry in layer.get("Inputs", []) + layer.get("Outputs", []):
        if isinstance(entry, dict):
            formats += [value for key, value in entry.items() if isinstance(value, str)
                        and any(word in key for word in ("Format", "Datatype", "DataType"))]
    text = " ".join(formats).lower()
    precision = (INT8 if "int8" in text else FP16 if "half" in text or "fp16" in text
                 else FP32 if "float" in text or "fp32" in text else "unknown")
    return {"name": layer.get("Name", ""), "type": layer.get("LayerType", "unknown"), "precision": precision,
            "formats": formats}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightlip-build-engine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("onnx", type=Path, help="ONNX file from lightlip-quant export (any precision)")
    parser.add_argument("-o", "--output", type=Path, help="engine file (default: the ONNX path with .engine)")
    parser.add_argument("--timing-cache", type=Path, help="timing cache file (default: timing.cache beside the "
                                                          "engine)")
    parser.add_argument("--opt-batch", type=int, default=1, help="batch size to tune for (default: 1)")
    parser.add_argument("--max-batch", type=int, default=16, help="largest batch the engine accepts (default: 16)")
    parser.add_argument("--workspace-mib", type=int, default=2048, help="builder workspace (default: 2048 MiB)")
    parser.add_argument("--typing", choices=TYPINGS, default="auto",
                        help="auto: strongly typed, on TensorRT 10.x falling back to weak typing (default)")
    parser.add_argument("--verbose", action="store_true", help="TensorRT's verbose log")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def build():
        sidecar = build_engine(args.onnx, args.output, args.timing_cache, args.opt_batch, args.max_batch,
                               args.workspace_mib, args.typing, "VERBOSE" if args.verbose else "WARNING")
        counts = ", ".join(f"{n} {p}" for p, n in sorted(sidecar["precision_counts"].items()))
        print(f"built {sidecar['engine']} ({sidecar['precision']}, {sidecar['typing']}ly typed) with TensorRT "
              f"{sidecar['tensorrt_version']} on {sidecar['gpu']['name']} in {sidecar['build_seconds']} s; "
              f"layers: {counts}")

    return run_command("lightlip-build-engine", build)


if __name__ == "__main__":
    sys.exit(main())
