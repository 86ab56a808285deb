"""Lip-sync quality of generator checkpoints on a data split, and a check that a data set carries lip sync.

Generation uses the inputs of Wav2Lip inference: the ground-truth frame with its lower half masked (it gives
head pose and framing) plus one reference frame of the clip (identity), and the mel window of each frame in
the training convention (see training.data.dataset). Metrics per model, averaged over clips:

- psnr / ssim: on the mouth region (the synthetic truth's lips box plus a margin; the lower half of the crop
  for clips without truth), generated vs ground-truth frame, 8-bit BGR. A clip's PSNR comes from its mean
  squared error over frames (inf only when every frame is identical). The reference frame itself is not
  evaluated (its answer is in the input).
- lmd: mean distance (pixels of the 96x96 crop) between the 20 mouth landmarks of the generated and the
  ground-truth frame, both measured by the independent landmarker (training.data.landmarks) in the face box
  found on the ground-truth frame.
- open_corr_truth / open_corr_frames: Pearson correlation over a clip's frames between the landmarker's
  mouth opening on generated frames and the ground-truth jaw track (synthetic truth) / the opening measured
  on the ground-truth frames.
- open_std_ratio: the spread over a clip of the generated mouth opening (landmarker inner-lip gap over the
  outer eye corners' distance) divided by the ground-truth frames' spread: what a blurred, average mouth
  cannot fake (it correlates, but barely moves). open_silence / open_speech: mean generated opening in
  pauses longer than PAUSE_MIN_S (from the truth's phonemes, or the audio's level without truth) and
  during speech; the ground-truth row gives the real values.
- lse_d / lse_c / sync_offset: SyncNet distance and confidence as in Chung & Zisserman's evaluation (LSE-D:
  minimum over audio offsets of the mean embedding distance; LSE-C: median minus minimum; offset: the
  argmin, in frames), when a SyncNet checkpoint is given.

Two baselines frame the numbers: "ground truth" (the frames themselves: the metrics' ideal) and
"reference copy" (the reference frame's lower half pasted under the real upper half: no lip motion at all).
"""
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from lightlip_ros.atomic_files import atomic_write_json, atomic_write_text
from lightlip_ros.audio import FPS, MEL_STEP_SIZE, SAMPLE_RATE, load_audio
from lightlip_ros.engines import TORCH, EngineOptions, InferenceEngine, select_engine
from lightlip_ros.face import CROP_SIZE
from lightlip_ros.models import load_syncnet, syncnet_face_input
from lightlip_ros.models.syncnet import SYNC_FRAMES

from .dataset import (clip_mel, frames_to_tensor, mask_lower_half, mel_window, read_frames, sync_mel_start,
                      training_mel_start)
from .landmarks import LandmarkerUnavailable, load_landmarker, mouth_opening, mouth_points, relative_opening
from .layout import AUDIO_NAME, DataError, count_frames, read_filelist, read_truth

MOUTH_MARGIN = 0.3  # the mouth region is the lips box grown by this fraction of its size on each side
SYNC_OFFSETS = 7  # audio offsets searched for LSE-D/LSE-C, in frames each way
GROUND_TRUTH = "ground truth"
REFERENCE_COPY = "reference copy"
METRICS = ("psnr", "ssim", "lmd", "open_corr_truth", "open_corr_frames", "open_std_ratio", "open_silence",
           "open_speech", "lse_d", "lse_c", "sync_offset")
PAUSE_MIN_S = 0.15  # a pause: at least this long without speech
# Without truth, a frame is silent when its RMS is this far below the clip's 95th-percentile frame RMS.
SILENCE_BELOW_DB = 30.0
# What a generated mouth must reach on one speech clip without video to move like a real speaker's: follow the
# speech envelope, and open as much (frontal recordings of real speakers: std 0.02-0.06, p95 0.08-0.22).
SPEECH_TARGETS = {"r_envelope": 0.5, "open_std": 0.025, "open_p95": 0.10}


def mean_squared_error(generated, target):
    return float(np.mean((generated.astype(np.float64) - target.astype(np.float64)) ** 2))


def psnr_from_mse(error):
    return math.inf if error == 0 else 10.0 * math.log10(255.0 ** 2 / error)


def psnr(generated, target):
    """PSNR (dB) of two uint8 images; inf when identical."""
    return psnr_from_mse(mean_squared_error(generated, target))


def ssim(generated, target):
    """Mean SSIM (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03) over the BGR channels.

    Written here because no SSIM implementation ships in the environment (scikit-image is not a
    dependency); it follows the reference definition exactly.
    """
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = generated.astype(np.float64), target.astype(np.float64)

    def blur(image):
        return cv2.GaussianBlur(image, (7, 7), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def mouth_region(truth, frame, size=CROP_SIZE):
    """(x1, y1, x2, y2) integer mouth region of a frame: the truth's lips box plus a margin, clamped; the
    lower half of the crop without truth."""
    if truth is None:
        return 0, size // 2, size, size
    scale = size / truth["crop_size"]
    x1, y1, x2, y2 = (v * scale for v in truth["lips_box"][frame])
    mx, my = MOUTH_MARGIN * (x2 - x1), MOUTH_MARGIN * (y2 - y1)
    return (max(0, int(math.floor(x1 - mx))), max(0, int(math.floor(y1 - my))),
            min(size, int(math.ceil(x2 + mx))), min(size, int(math.ceil(y2 + my))))


def pearson(a, b):
    """Pearson correlation, or None when either series is constant or too short."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def frame_rms(wav, n_frames, fps=FPS):
    """RMS of the audio under each video frame (the frame's 1/fps seconds)."""
    hop = SAMPLE_RATE / fps
    return np.array([np.sqrt(np.mean(wav[int(i * hop):int((i + 1) * hop)] ** 2)) if int(i * hop) < len(wav)
                     else 0.0 for i in range(n_frames)])


def _long_runs(flags, min_length):
    """flags with only the runs of True that are at least min_length long kept."""
    flags = np.asarray(flags, bool)
    kept = np.zeros_like(flags)
    start = None
    for i, flag in enumerate(np.append(flags, False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start >= min_length:
                kept[start:i] = True
            start = None
    return kept


def pause_frames(n_frames, truth=None, wav=None, fps=FPS):
    """(n_frames,) bool: frames inside a pause of at least PAUSE_MIN_S. From the truth's phonemes (a frame
    at i/fps s is speech when a phoneme other than a pause covers it), else from the audio's level."""
    if truth is not None:
        times = np.arange(n_frames) / float(fps)
        speech = np.zeros(n_frames, bool)
        for name, start, end in truth["phonemes"]:
            if not name.startswith("_"):
                speech |= (times >= start) & (times < end)
        silent = ~speech
    else:
        rms = frame_rms(wav, n_frames, fps)
        level = 20 * np.log10(np.maximum(rms, 1e-6))
        silent = level < np.percentile(level, 95) - SILENCE_BELOW_DB
    return _long_runs(silent, int(math.ceil(PAUSE_MIN_S * fps - 1e-9)))


def opening_statistics(openings, pauses):
    """{open_silence, open_speech} mean openings over pause / speech frames (None where there are none)."""
    openings, pauses = np.asarray(openings, np.float64), np.asarray(pauses, bool)
    return {"open_silence": float(openings[pauses].mean()) if pauses.any() else None,
            "open_speech": float(openings[~pauses].mean()) if (~pauses).any() else None}


@dataclass
class EvalClip:
    """One clip prepared for evaluation: frames, mel, the frames evaluated, truth and GT measurements."""

    clip: str
    frames: np.ndarray  # (N, 96, 96, 3) uint8 BGR
    mel: np.ndarray
    indices: np.ndarray  # frames evaluated
    reference: int
    truth: dict = None
    pauses: np.ndarray = None  # (N,) bool: frame inside a pause (see pause_frames)
    gt_landmarks: dict = field(default_factory=dict)  # frame -> (68, 2)
    gt_faces: dict = field(default_factory=dict)  # frame -> landmarker face box
    audio_embeddings: dict = field(default_factory=dict)  # SyncNet window start -> embedding (shared by models)


def load_eval_clip(root, clip, reference="first", seed=0):
    clip_dir = Path(root) / clip
    n_frames = count_frames(clip_dir)
    mel = clip_mel(str(clip_dir))
    indices = np.array([i for i in range(1, n_frames) if training_mel_start(i) + MEL_STEP_SIZE <= mel.shape[1]])
    if len(indices) < SYNC_FRAMES:
        raise DataError(f"{clip_dir}: too short to evaluate ({n_frames} frames)")
    truth = read_truth(clip_dir)
    if reference == "first":
        reference_index = 0
    elif reference == "widest":  # against "first": how much of the reference's mouth the output copies
        if truth is None:
            raise DataError(f"{clip_dir}: --reference widest needs the synthetic truth (truth.json)")
        reference_index = int(np.argmax(truth["jaw"]))
    else:
        reference_index = int(np.random.default_rng([seed, zlib.crc32(clip.encode())]).integers(n_frames))
    frames = read_frames(clip_dir, range(n_frames))
    indices = indices[indices != reference_index]
    pauses = pause_frames(n_frames, truth, None if truth else load_audio(clip_dir / AUDIO_NAME))
    return EvalClip(clip, frames, mel, indices, reference_index, truth, pauses)


def open_model(path, threads: int = 1) -> InferenceEngine:
    """The engine that runs a generator file for evaluation, by its kind: a checkpoint in PyTorch, an ONNX
    file in ONNX Runtime with its graph as written (EngineOptions.exact_graph), a TensorRT engine in
    TensorRT. The same metrics then measure a model wherever it was converted, on the robot too."""
    engine, _ = select_engine(path, TORCH, options=EngineOptions(threads=threads, exact_graph=True))
    return engine


def generate_clip_outputs(engine: InferenceEngine, clip, batch_size=64) -> np.ndarray:
    """(len(clip.indices), 3, 96, 96) float32 generator outputs for the evaluated frames of a clip."""
    reference = frames_to_tensor(clip.frames[clip.reference][None])[:, 0]
    outputs = []
    for begin in range(0, len(clip.indices), batch_size):
        batch = clip.indices[begin:begin + batch_size]
        targets = frames_to_tensor(clip.frames[batch])  # (3, B, H, W)
        faces = torch.stack([torch.cat([mask_lower_half(targets[:, k]), reference], dim=0)
                             for k in range(len(batch))])
        mels = torch.stack([mel_window(clip.mel, training_mel_start(int(i))) for i in batch])
        outputs.append(engine.infer(mels.numpy(), faces.numpy()))
    return np.concatenate(outputs)


def to_frames(outputs: np.ndarray) -> np.ndarray:
    """Generator outputs (B, 3, H, W) in [0, 1] to (B, H, W, 3) uint8 frames (rounded)."""
    return (np.clip(outputs, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)


def generate_clip(engine: InferenceEngine, clip, batch_size=64) -> np.ndarray:
    """(len(clip.indices), 96, 96, 3) uint8 frames generated for the evaluated frames of a clip."""
    return to_frames(generate_clip_outputs(engine, clip, batch_size))


def reference_copy_clip(clip):
    """The no-motion baseline: each frame's upper half with the reference frame's lower half."""
    frames = clip.frames[clip.indices].copy()
    frames[:, CROP_SIZE // 2:] = clip.frames[clip.reference][CROP_SIZE // 2:]
    return frames


def _landmarks_gt(landmarker, clip, index):
    if index not in clip.gt_landmarks:
        face = landmarker.detect(clip.frames[index])
        clip.gt_faces[index] = face
        clip.gt_landmarks[index] = None if face is None else landmarker.landmarks(clip.frames[index], face)
    return clip.gt_landmarks[index]


def sync_scores(syncnet, clip, frames):
    """(LSE-D, LSE-C, offset in frames) of a clip's generated frames against its audio."""
    indices, mel = clip.indices, clip.mel
    # Windows of 5 consecutive evaluated frames.
    positions = [k for k in range(len(indices) - SYNC_FRAMES + 1) if indices[k + SYNC_FRAMES - 1] - indices[k] ==
                 SYNC_FRAMES - 1]
    if not positions:
        return None
    starts = [int(indices[k]) for k in positions]
    n_columns = mel.shape[1]
    with torch.inference_mode():
        windows = torch.stack([frames_to_tensor(frames[k:k + SYNC_FRAMES]) for k in positions])
        face_embeddings = syncnet.face_encoder(syncnet_face_input(windows)).flatten(1)
        face_embeddings = torch.nn.functional.normalize(face_embeddings, dim=1)
        audio_starts = sorted({s + o for s in starts for o in range(-SYNC_OFFSETS, SYNC_OFFSETS + 1)
                               if s + o >= 0 and sync_mel_start(s + o) + MEL_STEP_SIZE <= n_columns})
        missing = [a for a in audio_starts if a not in clip.audio_embeddings]
        if missing:
            mels = torch.stack([mel_window(mel, sync_mel_start(a)) for a in missing])
            embedded = torch.nn.functional.normalize(syncnet.audio_encoder(mels).flatten(1), dim=1)
            clip.audio_embeddings.update(zip(missing, embedded))
        audio_embeddings = torch.stack([clip.audio_embeddings[a] for a in audio_starts])
    audio_index = {a: k for k, a in enumerate(audio_starts)}
    distances = []
    for offset in range(-SYNC_OFFSETS, SYNC_OFFSETS + 1):
        pairs = [(k, audio_index[s + offset]) for k, s in enumerate(starts) if s + offset in audio_index]
        if not pairs:
            return None
        f, a = zip(*pairs)
        distances.append(float((face_embeddings[list(f)] - audio_embeddings[list(a)]).norm(dim=1).mean()))
    distances = np.array(distances)
    best = int(np.argmin(distances))
    return float(distances[best]), float(np.median(distances) - distances[best]), best - SYNC_OFFSETS


def clip_metrics(clip, generated, landmarker=None, syncnet=None):
    """Metrics of one clip's generated frames (aligned with clip.indices); None where not measurable."""
    errors, ssims, lmds, gen_open, gt_open, jaw = [], [], [], [], [], []
    gen_relative, gt_relative, paused = [], [], []
    for k, index in enumerate(clip.indices):
        target = clip.frames[index]
        x1, y1, x2, y2 = mouth_region(clip.truth, index)
        errors.append(mean_squared_error(generated[k, y1:y2, x1:x2], target[y1:y2, x1:x2]))
        ssims.append(ssim(generated[k, y1:y2, x1:x2], target[y1:y2, x1:x2]))
        if landmarker is not None:
            gt = _landmarks_gt(landmarker, clip, int(index))
            if gt is not None:
                points = landmarker.landmarks(generated[k], clip.gt_faces[int(index)])
                lmds.append(float(np.linalg.norm(mouth_points(points) - mouth_points(gt), axis=1).mean()))
                gen_open.append(mouth_opening(points))
                gt_open.append(mouth_opening(gt))
                gen_relative.append(relative_opening(points))
                gt_relative.append(relative_opening(gt))
                paused.append(bool(clip.pauses[int(index)]))
                if clip.truth is not None:
                    jaw.append(clip.truth["jaw"][int(index)])
    result = {
        "frames": len(clip.indices),
        "psnr": psnr_from_mse(float(np.mean(errors))),
        "ssim": float(np.mean(ssims)),
        "lmd": float(np.mean(lmds)) if lmds else None,
        "open_corr_truth": pearson(gen_open, jaw) if jaw else None,
        "open_corr_frames": pearson(gen_open, gt_open),
        "open_std_ratio": (float(np.std(gen_relative) / np.std(gt_relative))
                           if len(gt_relative) > 2 and np.std(gt_relative) > 0 else None),
        **(opening_statistics(gen_relative, paused) if gen_relative else {"open_silence": None, "open_speech": None}),
        "lse_d": None, "lse_c": None, "sync_offset": None,
    }
    if syncnet is not None:
        scores = sync_scores(syncnet, clip, generated)
        if scores is not None:
            result["lse_d"], result["lse_c"], result["sync_offset"] = scores
    return result


def _mean(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return math.inf if any(v == math.inf for v in values) else float(np.mean(values))


def evaluate(root, split, model_paths=(), syncnet_path=None, max_clips=None, reference="first", seed=0,
             baselines=True, landmarker="auto", batch_size=64, threads=1, log=print, progress=True):
    """Evaluate generator files (checkpoints, ONNX files, TensorRT engines: open_model) and the baselines on
    a split; returns the JSON-ready report."""
    from tqdm import tqdm

    clips = read_filelist(root, split)[:max_clips] if max_clips else read_filelist(root, split)
    if not clips:
        raise DataError(f"{root}: the {split} file list is empty")
    models = {str(path): open_model(path, threads) for path in model_paths}
    syncnet = None
    if syncnet_path is not None:
        syncnet = load_syncnet(syncnet_path)
        syncnet.eval()
    note = None
    if landmarker == "auto":
        try:
            landmarker = load_landmarker()
        except LandmarkerUnavailable as error:
            landmarker, note = None, f"LMD and mouth-opening correlations left out: {error}"
            log(note)
    names = ([GROUND_TRUTH, REFERENCE_COPY] if baselines else []) + list(models)
    per_clip = {name: {} for name in names}
    for clip_name in tqdm(clips, desc=f"eval {split}", unit="clip", disable=not progress):
        clip = load_eval_clip(root, clip_name, reference, seed)
        for name in names:
            if name == GROUND_TRUTH:
                generated = clip.frames[clip.indices]
            elif name == REFERENCE_COPY:
                generated = reference_copy_clip(clip)
            else:
                generated = generate_clip(models[name], clip, batch_size)
            per_clip[name][clip_name] = clip_metrics(clip, generated, landmarker, syncnet)
    rows = {}
    for name in names:
        results = list(per_clip[name].values())
        rows[name] = {"clips": len(results), "frames": int(sum(r["frames"] for r in results)),
                      **{metric: _mean([r[metric] for r in results]) for metric in METRICS}}
    return {"root": str(root), "split": split, "reference": reference, "clips": len(clips),
            "landmarker": None if landmarker is None else landmarker.name, "note": note,
            "syncnet": None if syncnet_path is None else str(syncnet_path), "models": rows, "per_clip": per_clip}


def _format(value, digits=3):
    if value is None:
        return "–"
    if value == math.inf:
        return "inf"
    return f"{value:.{digits}f}"


def markdown_table(report):
    lines = [f"Evaluation on `{report['root']}` split `{report['split']}` ({report['clips']} clips, "
             f"reference frame: {report['reference']}).", ""]
    header = ["model", "frames", "PSNR mouth (dB)", "SSIM mouth", "LMD (px)", "open corr truth",
              "open corr frames", "open std ratio", "open silence", "open speech", "LSE-D", "LSE-C", "sync offset"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for name, row in report["models"].items():
        cells = [name, str(row["frames"]), _format(row["psnr"], 2), _format(row["ssim"]), _format(row["lmd"], 2),
                 _format(row["open_corr_truth"]), _format(row["open_corr_frames"]), _format(row["open_std_ratio"], 2),
                 _format(row["open_silence"]), _format(row["open_speech"]), _format(row["lse_d"]),
                 _format(row["lse_c"]), _format(row["sync_offset"], 1)]
        lines.append("| " + " | ".join(cells) + " |")
    if report.get("note"):
        lines += ["", report["note"]]
    return "\n".join(lines) + "\n"


def _json_ready(value):
    """JSON has no infinity: write it as the string "inf"."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return value


def write_report(report, out_dir, markdown):
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "eval.json", _json_ready(report))
    atomic_write_text(out_dir / "eval.md", markdown)


def sync_signal(root, split, max_clips=None, landmarker=None, max_lag=3, log=print, progress=True):
    """Is lip sync really in a data set? Per clip, correlate the mouth opening measured by the independent
    landmarker on the ground-truth frames with the audio's RMS envelope per frame (and with the synthetic
    jaw truth when present). Returns per-clip and summary numbers."""
    from tqdm import tqdm

    landmarker = landmarker or load_landmarker()
    clips = read_filelist(root, split)[:max_clips] if max_clips else read_filelist(root, split)
    rows = {}
    pooled_open, pooled_rms = [], []
    missed = total = 0
    for clip_name in tqdm(clips, desc=f"sync signal {split}", unit="clip", disable=not progress):
        clip_dir = Path(root) / clip_name
        n_frames = count_frames(clip_dir)
        frames = read_frames(clip_dir, range(n_frames))
        opening = np.full(n_frames, np.nan)
        relative = np.full(n_frames, np.nan)
        for i in range(n_frames):
            points = landmarker.landmarks(frames[i])
            total += 1
            if points is None:
                missed += 1
            else:
                opening[i] = mouth_opening(points)
                relative[i] = relative_opening(points)
        rms = frame_rms(load_audio(clip_dir / AUDIO_NAME), n_frames)
        found = ~np.isnan(opening)
        truth = read_truth(clip_dir)
        lags = {}
        for lag in range(-max_lag, max_lag + 1):  # positive lag: the audio comes later than the mouth
            a = opening[max(0, -lag):n_frames - max(0, lag)]
            b = rms[max(0, lag):n_frames - max(0, -lag)]
            keep = ~np.isnan(a)
            lags[lag] = pearson(a[keep], b[keep])
        rows[clip_name] = {
            "frames": n_frames, "found": int(found.sum()),
            "open_vs_rms": lags[0],
            "best_lag": max((k for k in lags if lags[k] is not None), key=lambda k: lags[k], default=None),
            "open_vs_jaw": pearson(opening[found], np.asarray(truth["jaw"])[found]) if truth else None,
            "rms_vs_jaw": pearson(rms, truth["jaw"]) if truth else None,
            # How far and how often the mouth opens, on the scale real speakers are measured on.
            "open_std": float(np.nanstd(relative)) if found.any() else None,
            "open_p95": float(np.nanpercentile(relative, 95)) if found.any() else None,
        }
        pooled_open.append((opening[found] - opening[found].mean()) / (opening[found].std() + 1e-9))
        pooled_rms.append((rms[found] - rms[found].mean()) / (rms[found].std() + 1e-9))
    summary = {
        "root": str(root), "split": split, "clips": len(rows), "frames": total, "landmarker": landmarker.name,
        "landmarks_missed": missed,
        "open_vs_rms_mean": _mean([r["open_vs_rms"] for r in rows.values()]),
        "open_vs_rms_pooled": pearson(np.concatenate(pooled_open), np.concatenate(pooled_rms)),
        "open_vs_jaw_mean": _mean([r["open_vs_jaw"] for r in rows.values()]),
        "rms_vs_jaw_mean": _mean([r["rms_vs_jaw"] for r in rows.values()]),
        "clips_with_positive_open_vs_rms": sum(1 for r in rows.values() if (r["open_vs_rms"] or 0) > 0),
        "open_std_mean": _mean([r["open_std"] for r in rows.values()]),
        "open_p95_mean": _mean([r["open_p95"] for r in rows.values()]),
    }
    return {"summary": summary, "per_clip": rows}


# --------------------------------------------------------------------------------------------------
# Speech without a video: does the generated mouth follow real speech, and move as much as a speaker's?

ENVELOPE_SMOOTHING_FRAMES = 3  # the mouth follows the speech's level over about 100 ms, not a single frame


def speech_envelope(wav, n_frames, fps=FPS):
    """Per-frame RMS of the speech, smoothed over ENVELOPE_SMOOTHING_FRAMES frames."""
    rms = frame_rms(wav, n_frames, fps)
    kernel = np.ones(ENVELOPE_SMOOTHING_FRAMES) / ENVELOPE_SMOOTHING_FRAMES
    return np.convolve(rms, kernel, mode="same")


def speech_openings(engine: InferenceEngine, model_input, wav, landmarker, batch_size=64):
    """(relative mouth openings (NaN where no landmarks), PSNR above the mouth (see still_face_psnr)) of the
    frames a generator draws for speech `wav` on a prepared face (its (6, 96, 96) model input), exactly as the
    node renders them."""
    from lightlip_ros.stream import offline_mel_windows

    windows = offline_mel_windows(wav)
    faces = np.broadcast_to(np.asarray(model_input, np.float32), (batch_size, *np.shape(model_input)))
    batches = [windows[begin:begin + batch_size] for begin in range(0, len(windows), batch_size)]
    crops = np.concatenate([to_frames(engine.infer(mels, faces[:len(mels)])) for mels in batches])
    still = np.ascontiguousarray((model_input[3:].transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8))
    box = landmarker.detect(still)
    openings = np.full(len(crops), np.nan)
    for k, crop in enumerate(crops):
        points = landmarker.landmarks(crop, box)
        if points is not None:
            openings[k] = relative_opening(points)
    return openings, still_face_psnr(crops, still, landmarker.landmarks(still, box))


def still_face_psnr(crops, still, still_landmarks):
    """PSNR (dB) of generated crops against the still face they were drawn on, between the crop's middle
    (where the generator's drawing starts) and the top of the still mouth: the nose and cheeks, which speech
    does not move. A colour cast or a highlight the generator paints shows here. None without landmarks."""
    if still_landmarks is None:
        return None
    top, bottom = CROP_SIZE // 2, int(np.floor(mouth_points(still_landmarks)[:, 1].min())) - 2
    if bottom <= top:
        return None
    error = (crops[:, top:bottom].astype(np.float64) - still[None, top:bottom].astype(np.float64)) ** 2
    return psnr_from_mse(float(error.mean()))


def speech_metrics(openings, wav):
    """Envelope correlation, spread, 95th percentile and pause/speech openings of one generated clip."""
    n_frames = len(openings)
    found = ~np.isnan(openings)
    envelope = speech_envelope(wav, n_frames)
    pauses = pause_frames(n_frames, wav=wav)
    values = openings[found]
    metrics = {"frames": n_frames, "landmarks_found": int(found.sum()),
               "r_envelope": pearson(values, envelope[found]),
               "open_std": float(values.std()) if len(values) else None,
               "open_p95": float(np.percentile(values, 95)) if len(values) else None,
               **opening_statistics(values, pauses[found])}
    metrics["meets_targets"] = all(metrics[key] is not None and metrics[key] >= target
                                   for key, target in SPEECH_TARGETS.items())
    return metrics


def evaluate_speech(model_paths, audio_files, face_files, landmarker="auto", threads=1, progress=True):
    """Every generator file (open_model) on every (face, speech) pair: one row of speech_metrics per model,
    face and audio. The face is prepared as the node prepares it; frame k shows the audio at k/25 s."""
    from tqdm import tqdm

    from lightlip_ros.face import FaceCache

    if landmarker == "auto":
        landmarker = load_landmarker()
    faces = {}
    for path in face_files:
        image = cv2.imread(str(path))
        if image is None:
            raise DataError(f"{path}: not a readable image")
        cache = FaceCache()
        update = cache.set_face(image)
        if cache.face is None:
            raise DataError(f"{path}: {update.note}")
        faces[str(path)] = cache.face.model_input
    audios = {str(path): load_audio(path) for path in audio_files}
    rows = []
    for model_path in model_paths:
        engine = open_model(model_path, threads)
        pairs = [(f, a) for f in faces for a in audios]
        for face_path, audio_path in tqdm(pairs, desc=f"speech {Path(model_path).name}", unit="clip",
                                          disable=not progress):
            openings, face_psnr = speech_openings(engine, faces[face_path], audios[audio_path], landmarker)
            rows.append({"model": str(model_path), "face": face_path, "audio": audio_path,
                         **speech_metrics(openings, audios[audio_path]), "psnr_above_mouth": face_psnr})
    return {"landmarker": landmarker.name, "rows": rows}


def speech_markdown(report):
    """The per-clip table, then per model and face how many clips meet every one of SPEECH_TARGETS."""
    def model_name(row):
        return f"{Path(row['model']).parent.name}/{Path(row['model']).name}"

    lines = ["| model | face | speech | r envelope | open std | open p95 | open silence | open speech "
             "| PSNR above mouth (dB) | meets targets |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    met = {}
    for row in report["rows"]:
        lines.append(f"| {model_name(row)} | {Path(row['face']).stem} | "
                     f"{Path(row['audio']).stem} | {_format(row['r_envelope'])} | {_format(row['open_std'])} | "
                     f"{_format(row['open_p95'])} | {_format(row['open_silence'])} | {_format(row['open_speech'])} | "
                     f"{_format(row.get('psnr_above_mouth'), 2)} | {'yes' if row['meets_targets'] else 'no'} |")
        counts = met.setdefault((model_name(row), Path(row["face"]).stem), [0, 0])
        counts[0] += bool(row["meets_targets"])
        counts[1] += 1
    targets = ", ".join(f"{key} >= {value}" for key, value in SPEECH_TARGETS.items())
    lines += ["", f"| model | face | clips meeting {targets} |", "|---|---|---|"]
    lines += [f"| {model} | {face} | {hits} of {total} |" for (model, face), (hits, total) in met.items()]
    return "\n".join(lines) + "\n"
