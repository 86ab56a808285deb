"""The generator in TensorRT: a serialized engine from lightlip-build-engine and its JSON sidecar.

A TensorRT engine runs only under the TensorRT version that built it, on the GPU model it was tuned for.
lightlip-build-engine writes `<engine>.json` beside every engine (TensorRT version, GPU, precision per
layer, shapes); this engine compares it with the running TensorRT and GPU before deserializing, so a
mismatch becomes one clear EngineError (and select_engine falls back to ONNX Runtime) instead of a
TensorRT crash or a silent failure.

I/O lives in device buffers sized for the engine's largest batch, allocated once: torch CUDA tensors when
torch has CUDA, else cuda-python (`cuda.bindings.runtime`, or `cuda.cudart` in cuda-python < 12.6).
Each call binds them with set_tensor_address and runs execute_async_v3 on the engine's own stream.
"""
import json
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import first_line
from .base import (FACE_SHAPE, FP32, FRAME_SHAPE, INPUT_NAMES, MEL_SHAPE, OUTPUT_NAME, TENSORRT, EngineError,
                   EngineOptions, InferenceEngine)

SIDECAR_FORMAT = "lightlip-tensorrt-engine"
SIDECAR_VERSION = 1


def sidecar_path(engine_path) -> Path:
    """Where lightlip-build-engine writes the description of an engine: `<engine>.json`."""
    return Path(str(engine_path) + ".json")


def read_sidecar(engine_path) -> dict:
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise EngineError(f"tensorrt: {Path(engine_path).name} has no {path.name} beside it, so its TensorRT "
                          "version and GPU are unknown; rebuild it with lightlip-build-engine")
    try:
        sidecar = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise EngineError(f"tensorrt: {path.name} is not readable JSON: {first_line(error)}") from error
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        raise EngineError(f"tensorrt: {path.name} is not a LightLip engine description")
    return sidecar


def compatibility_problem(sidecar: dict, tensorrt_version: str, device: dict) -> Optional[str]:
    """Why an engine described by `sidecar` cannot run under this TensorRT on this GPU, or None."""
    built_with = sidecar.get("tensorrt_version")
    if built_with != tensorrt_version:
        return f"was built with TensorRT {built_with}, but this is TensorRT {tensorrt_version}"
    gpu = sidecar.get("gpu") or {}
    if (gpu.get("name"), gpu.get("compute_capability")) != (device["name"], device["compute_capability"]):
        return (f"was built for {gpu.get('name')} (compute capability {gpu.get('compute_capability')}), "
                f"but this GPU is {device['name']} (compute capability {device['compute_capability']})")
    return None


def _cudart():
    """cuda-python's runtime module, under its current or its pre-12.6 name."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        from cuda import cudart as runtime
    return runtime


def cuda_device(index: int = 0) -> dict:
    """{"name", "compute_capability"} of a CUDA device, via torch or cuda-python."""
    try:
        import torch
        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(index)
            return {"name": torch.cuda.get_device_name(index), "compute_capability": f"{major}.{minor}"}
    except ImportError:
        pass
    try:
        cudart = _cudart()
    except ImportError as error:
        raise EngineError("tensorrt: no CUDA device can be queried (neither torch with CUDA nor cuda-python is "
                          "installed)") from error
    error, properties = cudart.cudaGetDeviceProperties(index)
    if error != cudart.cudaError_t.cudaSuccess:
        raise EngineError(f"tensorrt: no CUDA device {index} ({error})")
    name = properties.name.decode() if isinstance(properties.name, bytes) else str(properties.name)
    return {"name": name.rstrip("\x00"), "compute_capability": f"{properties.major}.{properties.minor}"}


class _TorchBuffers:
    """Device memory and a stream from torch."""

    def __init__(self, torch):
        self.torch = torch
        self.stream = torch.cuda.Stream()
        self.handle = self.stream.cuda_stream

    def allocate(self, nbytes: int):
        return self.torch.empty(nbytes, dtype=self.torch.uint8, device="cuda")

    @staticmethod
    def address(buffer) -> int:
        return buffer.data_ptr()

    def upload(self, buffer, array: np.ndarray) -> None:
        with self.torch.cuda.stream(self.stream):
            buffer[:array.nbytes].copy_(self.torch.from_numpy(array.reshape(-1).view(np.uint8)), non_blocking=True)

    def download(self, buffer, array: np.ndarray) -> None:
        with self.torch.cuda.stream(self.stream):
            self.torch.from_numpy(array.reshape(-1).view(np.uint8)).copy_(buffer[:array.nbytes])

    def synchronize(self) -> None:
        self.stream.synchronize()

    def release(self) -> None:
        pass  # torch frees its tensors


class _CudaPythonBuffers:
    """Device memory and a stream from cuda-python's runtime API."""

    def __init__(self, cudart):
        self.cudart = cudart
        self.stream = self._check(cudart.cudaStreamCreate())
        self.handle = int(self.stream)
        self._allocations = []

    def _check(self, result):
        error, *values = result if isinstance(result, tuple) else (result,)
        if error != self.cudart.cudaError_t.cudaSuccess:
            raise EngineError(f"tensorrt: CUDA call failed ({error})")
        return values[0] if len(values) == 1 else None

    def allocate(self, nbytes: int):
        pointer = self._check(self.cudart.cudaMalloc(nbytes))
        self._allocations.append(pointer)
        return pointer

    @staticmethod
    def address(buffer) -> int:
        return int(buffer)

    def upload(self, buffer, array: np.ndarray) -> None:
        self._check(self.cudart.cudaMemcpyAsync(buffer, array.ctypes.data, array.nbytes,
                                                self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))

    def download(self, buffer, array: np.ndarray) -> None:
        self._check(self.cudart.cudaMemcpyAsync(array.ctypes.data, buffer, array.nbytes,
                                                self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))

    def synchronize(self) -> None:
        self._check(self.cudart.cudaStreamSynchronize(self.stream))

    def release(self) -> None:
        for pointer in self._allocations:
            self.cudart.cudaFree(pointer)
        self._allocations = []
        self.cudart.cudaStreamDestroy(self.stream)


def _device_buffers():
    try:
        import torch
        if torch.cuda.is_available():
            return _TorchBuffers(torch)
    except ImportError:
        pass
    try:
        return _CudaPythonBuffers(_cudart())
    except ImportError as error:
        raise EngineError("tensorrt: needs torch with CUDA or cuda-python for its device buffers") from error


class TensorRTEngine(InferenceEngine):
    """A serialized TensorRT engine (.engine/.plan/.trt) built by lightlip-build-engine, on CUDA device 0."""

    name = TENSORRT

    def __init__(self, model_path, options: EngineOptions = EngineOptions()):
        try:
            import tensorrt as trt
        except ImportError as error:
            raise EngineError(f"tensorrt: not installed ({error.name} missing)") from error
        path = Path(model_path)
        if not path.is_file():
            raise EngineError(f"tensorrt: {path}: no such engine file")
        self.model_path = str(path)
        sidecar = read_sidecar(path)
        problem = compatibility_problem(sidecar, trt.__version__, cuda_device())
        if problem:
            raise EngineError(f"tensorrt: {path.name} {problem}; rebuild it here with lightlip-build-engine")
        self.precision = sidecar.get("precision", FP32)
        self.architecture = sidecar.get("architecture", "unknown")

        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise EngineError(f"tensorrt: {path.name} could not be deserialized (see the TensorRT log)")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if sorted(inputs) != sorted(INPUT_NAMES) or len(outputs) != 1:
            raise EngineError(f"tensorrt: {path.name} has inputs {inputs} and outputs {outputs}, a generator "
                              f"engine has inputs {list(INPUT_NAMES)} and one output ({OUTPUT_NAME})")
        self._mel_name, self._face_name = INPUT_NAMES
        self._output_name = outputs[0]
        self._dtypes = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))) for n in names}
        self.max_batch = int(self._engine.get_tensor_profile_shape(self._mel_name, 0)[2][0])

        self._io = _device_buffers()
        shapes = {self._mel_name: MEL_SHAPE, self._face_name: FACE_SHAPE, self._output_name: FRAME_SHAPE}
        self._buffers = {}
        for name, shape in shapes.items():
            nbytes = self.max_batch * int(np.prod(shape)) * self._dtypes[name].itemsize
            self._buffers[name] = self._io.allocate(nbytes)
            self._context.set_tensor_address(name, self._io.address(self._buffers[name]))

    def _infer(self, mel_windows: np.ndarray, face_inputs: np.ndarray) -> np.ndarray:
        frames = [self._run(mel_windows[start:start + self.max_batch], face_inputs[start:start + self.max_batch])
                  for start in range(0, len(mel_windows), self.max_batch)]
        return frames[0] if len(frames) == 1 else np.concatenate(frames)

    def _run(self, mel_windows: np.ndarray, face_inputs: np.ndarray) -> np.ndarray:
        batch = len(mel_windows)
        # Copies from pageable host memory return once the data is staged, so the arrays may go afterwards.
        for name, array in ((self._mel_name, mel_windows), (self._face_name, face_inputs)):
            array = np.ascontiguousarray(array, dtype=self._dtypes[name])
            if not self._context.set_input_shape(name, array.shape):
                raise EngineError(f"tensorrt: {Path(self.model_path).name} rejects {name} of shape {array.shape}")
            self._io.upload(self._buffers[name], array)
        if not self._context.execute_async_v3(self._io.handle):
            raise EngineError(f"tensorrt: {Path(self.model_path).name} failed to run a batch of {batch}")
        frames = np.empty((batch, *FRAME_SHAPE), self._dtypes[self._output_name])
        self._io.download(self._buffers[self._output_name], frames)
        self._io.synchronize()
        return frames

    def __del__(self):
        io = getattr(self, "_io", None)
        if io is not None:
            try:
                io.release()
            except Exception:  # at interpreter exit the CUDA bindings may already be gone; the OS frees it all
                pass

    def describe(self) -> str:
        return f"tensorrt {self.precision} {self.architecture} on GPU (max batch {self.max_batch}, " \
               f"{Path(self.model_path).name})"
