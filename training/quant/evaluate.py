"""The quality table: every exported file run under the benchmark's own protocol, by the same driver as
`lightlip-data eval` (training.data.evaluate.open_model and generate_clip_outputs: ground-truth frame with
its lower half masked + the clip's first frame as reference, every frame of every clip, PSNR and SSIM of
8-bit frames over the mouth region, averaged per clip then over clips). An ONNX file runs in ONNX Runtime
with its graph as written, so that each QuantizeLinear/DequantizeLinear and each FP16 operator computes as
a strongly typed TensorRT build does; a TensorRT engine runs in TensorRT.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np
import onnx
from tqdm import tqdm

from lightlip_ros.audio import FPS, MEL_STEP_SIZE, SAMPLE_RATE, load_audio, melspectrogram
from lightlip_ros.engines.base import FP16, FP32, INT8
from lightlip_ros.engines.onnx_graph import layer_precisions
from lightlip_ros.face import CROP_SIZE
from training.data.dataset import training_mel_start
from training.data.evaluate import (EvalClip, clip_metrics, generate_clip, generate_clip_outputs, load_eval_clip,
                                    mouth_region, open_model, to_frames)
from training.data.layout import DataError, read_filelist

from .samples import SampleError, face_input
from .sensitivity import PSNR_CAP_DB, psnr_db


@dataclass(frozen=True)
class FileQuality:
    label: str
    path: str
    int8_layers: int
    fp16_layers: int
    psnr_db: float  # mouth PSNR against the ground truth (8-bit frames), mean over clips
    ssim: float
    psnr_drop_db: float  # the reference (FP32) file's psnr_db minus this one's
    psnr_vs_fp32_db: float  # float outputs against the FP32 file's, over all mouth regions


def dataset_clips(root, split: str, max_clips: int | None = None):
    """The split's clips as the benchmark loads them (lazily, one at a time)."""
    try:
        clips = read_filelist(root, split)
    except DataError as error:
        raise SampleError(str(error)) from error
    if not clips:
        raise SampleError(f"{root}: the {split} file list is empty")
    for clip in clips[:max_clips] if max_clips else clips:
        try:
            yield load_eval_clip(root, clip)
        except DataError as error:
            raise SampleError(str(error)) from error


def media_clip(image_path, audio_path, limit: int | None = None) -> EvalClip:
    """A clip made of one face image held still over a speech recording (no mouth truth: the benchmark
    then measures the lower half of the crop)."""
    crop = np.rint(face_input(image_path)[3:] * 255.0).astype(np.uint8).transpose(1, 2, 0)
    wav = load_audio(audio_path)
    mel = melspectrogram(wav)
    count = int(len(wav) / SAMPLE_RATE * FPS)
    indices = np.array([i for i in range(1, count) if training_mel_start(i) + MEL_STEP_SIZE <= mel.shape[1]])
    if limit is not None:
        indices = indices[:limit]
    return EvalClip(f"{Path(image_path).name} + {Path(audio_path).name}", np.repeat(crop[None], count, axis=0),
                    mel, indices, reference=0)


def evaluate_files(files: Mapping[str, Path], clips: Sequence[EvalClip], reference: str = FP32,
                   batch_size: int = 32, threads: int = 1, progress: bool = True) -> list:
    """FileQuality of each {label: path} over `clips`; `reference` names the FP32 file."""
    if reference not in files:
        raise ValueError(f"the FP32 reference {reference!r} is not among the files ({', '.join(files)})")
    engines = {label: open_model(path, threads) for label, path in files.items()}
    psnrs = {label: [] for label in files}
    ssims = {label: [] for label in files}
    squared = dict.fromkeys(files, 0.0)
    values = 0
    for clip in tqdm(clips, desc="evaluate", unit="clip", disable=not progress, leave=False):
        floats = {}
        for label, engine in engines.items():
            outputs = generate_clip_outputs(engine, clip, batch_size)
            metrics = clip_metrics(clip, to_frames(outputs))
            psnrs[label].append(metrics["psnr"])
            ssims[label].append(metrics["ssim"])
            floats[label] = outputs.astype(np.float64)
        for k, index in enumerate(clip.indices):
            x1, y1, x2, y2 = mouth_region(clip.truth, int(index))
            values += 3 * (y2 - y1) * (x2 - x1)
            for label in files:
                difference = floats[label][k, :, y1:y2, x1:x2] - floats[reference][k, :, y1:y2, x1:x2]
                squared[label] += float((difference ** 2).sum())
    if values == 0:
        raise SampleError("no frames to evaluate")
    fp32 = float(np.mean(psnrs[reference]))
    table = []
    for label, path in files.items():
        counts = _precision_counts(path)
        psnr = float(np.mean(psnrs[label]))
        table.append(FileQuality(label, str(path), counts.get(INT8, 0), counts.get(FP16, 0), psnr,
                                 float(np.mean(ssims[label])), fp32 - psnr, psnr_db(squared[label] / values)))
    return table


def comparison_image(files: Mapping[str, Path], clip: EvalClip, reference: str = FP32, frames: int = 6,
                     gain: float = 8.0, scale: int = 2, threads: int = 1) -> np.ndarray:
    """A BGR picture of the lower face on `frames` frames spread over a clip: the ground truth, each file's
    output, then each file's difference from the reference file's output times `gain` (8-bit frames)."""
    picks = np.linspace(0, len(clip.indices) - 1, min(frames, len(clip.indices))).round().astype(int)
    shown = replace(clip, indices=clip.indices[picks])
    outputs = {label: generate_clip(open_model(path, threads), shown) for label, path in files.items()}
    rows = [("ground truth", clip.frames[shown.indices])] + list(outputs.items())
    for label, frames_out in outputs.items():
        if label != reference:
            difference = np.abs(frames_out.astype(np.int16) - outputs[reference].astype(np.int16)) * gain
            rows.append((f"|{label} - {reference}| x{gain:g}", np.clip(difference, 0, 255).astype(np.uint8)))
    half = CROP_SIZE // 2
    tile_h, tile_w, label_w = half * scale, CROP_SIZE * scale, 190
    image = np.full((tile_h * len(rows), label_w + tile_w * len(picks), 3), 255, np.uint8)
    for row, (label, tiles) in enumerate(rows):
        top = row * tile_h
        cv2.putText(image, label, (6, top + tile_h // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
        for column, tile in enumerate(tiles):
            left = label_w + column * tile_w
            image[top:top + tile_h, left:left + tile_w] = cv2.resize(
                tile[half:], (tile_w, tile_h), interpolation=cv2.INTER_NEAREST)
    return image


def _precision_counts(path) -> dict:
    counts = {}
    for layer in layer_precisions(onnx.load(str(path), load_external_data=False)).values():
        counts[layer["precision"]] = counts.get(layer["precision"], 0) + 1
    return counts


def quality_markdown(table, source: str) -> str:
    lines = [f"{source}: PSNR/SSIM of 8-bit frames over the mouth region (as `lightlip-data eval`), ONNX Runtime "
             "CPU with graph optimisations disabled.", "",
             "| file | INT8 layers | FP16 layers | PSNR (dB) | SSIM | drop vs FP32 (dB) | PSNR vs FP32 output (dB) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in table:
        fidelity = "identical" if row.psnr_vs_fp32_db >= PSNR_CAP_DB else f"{row.psnr_vs_fp32_db:.2f}"
        lines.append(f"| {row.label} | {row.int8_layers} | {row.fp16_layers} | {row.psnr_db:.3f} | {row.ssim:.4f} | "
                     f"{row.psnr_drop_db:+.3f} | {fidelity} |")
    return "\n".join(lines) + "\n"


def quality_json(table) -> list:
    return [asdict(row) for row in table]
