"""Generator inputs with their ground truth, held in memory for calibration and evaluation.

A `SampleSet` is a few hundred (mel window, face input, target frame) triples: enough to calibrate and to
rank layers, small enough (about 110 KB a sample) to keep in memory so that every pass reads the same
tensors in the same order, which makes cached statistics resumable batch by batch.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from lightlip_ros.audio import FPS, SAMPLE_RATE, load_audio, mel_windows, melspectrogram
from lightlip_ros.engines.base import FACE_SHAPE, FRAME_SHAPE, MEL_SHAPE
from lightlip_ros.errors import LightLipError
from lightlip_ros.face import FaceCache
from lightlip_ros.models.syncnet import SYNC_FRAMES
from training.data.dataset import Wav2LipDataset
from training.data.evaluate import mouth_region
from training.data.layout import DataError, read_filelist, read_truth


class SampleError(LightLipError, ValueError):
    """Samples that cannot be loaded; one readable line."""


def face_input(image_path) -> np.ndarray:
    """The (6, 96, 96) generator input of the face in an image, found and cropped as the node does
    (lightlip_ros.face): the crop with its lower half masked, then the crop itself."""
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise SampleError(f"{image_path}: not a readable image")
    faces = FaceCache()
    update = faces.set_face(image)
    if not update.ok:
        raise SampleError(f"{image_path}: {update.note}")
    return faces.face.model_input


@dataclass(frozen=True)
class SampleSet:
    """mel (N,1,80,16), face (N,6,96,96) and target (N,3,96,96) float32 tensors; regions (N,4) int64: each
    frame's mouth region (x1, y1, x2, y2) in the 96x96 crop, where quality is measured (the benchmark's
    region, training.data.evaluate.mouth_region); `source` says where they came from (reports, cache keys)."""
    mel: torch.Tensor
    face: torch.Tensor
    target: torch.Tensor
    regions: torch.Tensor
    source: str

    def __post_init__(self):
        count = self.mel.shape[0]
        if count == 0:
            raise SampleError(f"{self.source}: no samples")
        expected = {"mel": MEL_SHAPE, "face": FACE_SHAPE, "target": FRAME_SHAPE}
        for name, shape in expected.items():
            tensor = getattr(self, name)
            if tuple(tensor.shape) != (count, *shape) or tensor.dtype != torch.float32:
                raise SampleError(f"{self.source}: {name} must be float32 of shape (N, {shape}), "
                                  f"got {tensor.dtype} {tuple(tensor.shape)}")
        if tuple(self.regions.shape) != (count, 4):
            raise SampleError(f"{self.source}: regions must have shape (N, 4), got {tuple(self.regions.shape)}")

    def __len__(self) -> int:
        return self.mel.shape[0]

    def batches(self, batch_size: int):
        """(mel, face, target) slices in order."""
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            yield self.mel[start:stop], self.face[start:stop], self.target[start:stop]

    def batch_count(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def fingerprint(self) -> str:
        """sha256 of the tensors themselves: the same samples give the same key whatever their path."""
        digest = hashlib.sha256()
        for tensor in (self.mel, self.face, self.target, self.regions):
            digest.update(tensor.contiguous().numpy().tobytes())
        return digest.hexdigest()

    @classmethod
    def from_media(cls, image_path, audio_path, limit: int | None = None) -> "SampleSet":
        """One sample per video frame of a speech recording, all on the face of one image.

        The face's crop (see face_input) is the target of every frame. Without mouth ground truth, quality is
        measured over the lower half of the crop.
        """
        wav = load_audio(audio_path)
        frames = int(len(wav) / SAMPLE_RATE * FPS)
        if limit is not None:
            frames = min(frames, limit)
        windows = mel_windows(melspectrogram(wav), frames)
        face = torch.from_numpy(np.array(face_input(image_path)))
        return cls(mel=torch.from_numpy(windows).unsqueeze(1).float(),
                   face=face.expand(frames, -1, -1, -1).contiguous(),
                   target=face[3:].expand(frames, -1, -1, -1).contiguous(),
                   regions=torch.tensor([mouth_region(None, 0)] * frames),
                   source=f"{Path(image_path).name} + {Path(audio_path).name} ({frames} frames)")


def dataset_samples(root, split: str, count: int, seed: int = 0) -> SampleSet:
    """`count` frames from a Wav2Lip-layout data set (training.data.dataset): 5-frame windows spread evenly over
    the split's clips and drawn with `seed`, each frame one sample (masked crop + reference, its mel window,
    its crop as target)."""
    if count < 1:
        raise SampleError(f"sample count must be >= 1, got {count}")
    try:
        clips = read_filelist(root, split)
        if not clips:
            raise DataError(f"{root}: the {split} file list is empty")
        windows = -(-count // SYNC_FRAMES)
        dataset = Wav2LipDataset(root, split, seed=seed, samples_per_clip=-(-windows // len(clips)), clips=clips)
        mel, face, target, regions, truths = [], [], [], [], {}
        for index in np.linspace(0, len(dataset) - 1, windows).round().astype(int):
            sample = dataset[int(index)]
            mel.append(sample["mels"])
            face.append(sample["face_input"].transpose(0, 1))
            target.append(sample["target"].transpose(0, 1))
            clip = sample["clip"]
            if clip not in truths:
                truths[clip] = read_truth(dataset.clip_dir(clip))
            regions += [mouth_region(truths[clip], sample["start"] + k) for k in range(SYNC_FRAMES)]
    except DataError as error:
        raise SampleError(str(error)) from error
    return SampleSet(torch.cat(mel)[:count].contiguous(), torch.cat(face)[:count].contiguous(),
                     torch.cat(target)[:count].contiguous(), torch.tensor(regions[:count]),
                     source=f"{Path(root).name}/{split} ({count} frames)")
