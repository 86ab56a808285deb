"""The generator in PyTorch: the reference engine, and the fallback when nothing faster loads."""
from pathlib import Path

import numpy as np
import torch

from ..models import CheckpointError, load_generator
from .base import FP32, TORCH, EngineError, EngineOptions, InferenceEngine


class TorchEngine(InferenceEngine):
    """Any checkpoint load_generator reads (official Wav2Lip, Nota's, LightLip's), FP32 on the CPU.

    torch.set_num_threads is process-wide: options.threads sets it for the whole process.
    """

    name = TORCH
    precision = FP32

    def __init__(self, model_path, options: EngineOptions = EngineOptions()):
        self.model_path = str(model_path)
        try:
            self.model = load_generator(model_path)
        except CheckpointError as error:
            raise EngineError(f"torch: {error}") from error
        self.architecture = self.model.architecture
        self.threads = int(options.threads)
        torch.set_num_threads(self.threads)

    def _infer(self, mel_windows: np.ndarray, face_inputs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model(torch.from_numpy(mel_windows), torch.from_numpy(face_inputs)).numpy()

    def describe(self) -> str:
        return f"torch fp32 {self.architecture} on {self.threads} CPU thread(s) ({Path(self.model_path).name})"
