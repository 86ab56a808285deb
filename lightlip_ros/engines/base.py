"""The one interface every inference engine implements."""
import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import LightLipError, first_line

# Engine names, fastest first: the order `auto` tries them in.
TENSORRT, ONNXRUNTIME, TORCH = "tensorrt", "onnxruntime", "torch"
ENGINE_NAMES = (TENSORRT, ONNXRUNTIME, TORCH)
AUTO = "auto"
# Precisions a model runs at (lightlip-quant export writes one ONNX file per precision).
FP32, FP16, INT8, MIXED = "fp32", "fp16", "int8", "mixed"
PRECISIONS = (FP32, FP16, INT8, MIXED)
# The generator's interface, per sample: mel window, face input (masked + reference), output frame.
MEL_SHAPE = (1, 80, 16)
FACE_SHAPE = (6, 96, 96)
FRAME_SHAPE = (3, 96, 96)
# The exported graph's interface (lightlip_ros.engines.onnx_export writes it; the ONNX Runtime and
# TensorRT engines read it). Kept here so that running an .onnx or .engine file needs no torch.
ONNX_OPSET = 17  # TensorRT 10.x (JetPack 6) and ONNX Runtime both run it
INPUT_NAMES = ("mel", "face")
OUTPUT_NAME = "frames"
# Keys LightLip writes into the ONNX file's metadata_props.
META_PREFIX = "lightlip."
META_ARCHITECTURE = META_PREFIX + "architecture"
META_CONFIG = META_PREFIX + "config"
META_PRECISION = META_PREFIX + "precision"  # written by lightlip-quant export: one of PRECISIONS


class EngineError(LightLipError, RuntimeError):
    """An engine cannot be used (missing module, unreadable or unsuitable model); one readable line."""


@dataclass(frozen=True)
class EngineOptions:
    """Settings shared by all engines.

    threads: CPU threads one inference may use (ONNX Runtime intra-op threads, torch.set_num_threads).
    cache_dir: where ONNX exports of PyTorch checkpoints are kept; None: $XDG_CACHE_HOME/lightlip or
        ~/.cache/lightlip.
    exact_graph: ONNX Runtime runs the graph as written, without its graph optimisations, so that each
        QuantizeLinear/DequantizeLinear and FP16 operator computes as a strongly typed TensorRT build does
        instead of being fused into ONNX Runtime's own integer kernels (which round differently). For
        measuring a file's quality, not for speed.
    """
    threads: int = 1
    cache_dir: Optional[Path] = None
    exact_graph: bool = False

    def __post_init__(self):
        if int(self.threads) < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")


class InferenceEngine(abc.ABC):
    """Runs the generator: (B,1,80,16) mel windows + (B,6,96,96) face inputs -> (B,3,96,96) frames.

    All arrays are float32; faces and frames are BGR in [0, 1]. Attributes: name (one of ENGINE_NAMES),
    precision (one of PRECISIONS), model_path (the file loaded),
    architecture ("wav2lip", "student" or "unknown" for a foreign ONNX/engine file).
    """

    name: str = ""
    precision: str = FP32
    model_path: str = ""
    architecture: str = "unknown"

    def infer(self, mel_windows: np.ndarray, face_inputs: np.ndarray) -> np.ndarray:
        # Contiguous, writable float32 (torch.from_numpy refuses read-only views such as broadcasts).
        mel_windows = np.require(mel_windows, np.float32, ("C", "W"))
        face_inputs = np.require(face_inputs, np.float32, ("C", "W"))
        if mel_windows.ndim != 4 or mel_windows.shape[1:] != MEL_SHAPE:
            raise ValueError(f"mel windows must have shape (B, 1, 80, 16), got {mel_windows.shape}")
        if face_inputs.ndim != 4 or face_inputs.shape[1:] != FACE_SHAPE:
            raise ValueError(f"face inputs must have shape (B, 6, 96, 96), got {face_inputs.shape}")
        if mel_windows.shape[0] != face_inputs.shape[0] or mel_windows.shape[0] == 0:
            raise ValueError(f"batch sizes differ or are 0: {mel_windows.shape[0]} mel windows, "
                             f"{face_inputs.shape[0]} faces")
        frames = self._infer(mel_windows, face_inputs)
        return np.ascontiguousarray(frames, dtype=np.float32)

    @abc.abstractmethod
    def _infer(self, mel_windows: np.ndarray, face_inputs: np.ndarray) -> np.ndarray:
        """The engine's own run on validated, contiguous float32 inputs."""

    def warm_up(self) -> None:
        """Runs one frame so the first real frame does not pay for lazy initialisation; checks the output.

        Raises EngineError when the model runs but does not produce (1, 3, 96, 96) frames.
        """
        try:
            frames = self.infer(np.zeros((1,) + MEL_SHAPE, np.float32), np.zeros((1,) + FACE_SHAPE, np.float32))
        except Exception as error:  # the engine's own error types differ; all mean "cannot run"
            raise EngineError(f"{self.name}: {Path(self.model_path).name} fails to run: {first_line(error)}") \
                from error
        if frames.shape != (1,) + FRAME_SHAPE:
            raise EngineError(f"{self.name}: {Path(self.model_path).name} produces {frames.shape}, "
                              f"not (1, 3, 96, 96) frames")

    def describe(self) -> str:
        return f"{self.name} {self.precision} {self.architecture} ({self.model_path})"
