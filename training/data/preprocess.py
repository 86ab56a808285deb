"""Videos (any frame rate, size or container ffmpeg reads) -> the Wav2Lip layout (see training.data.layout).

Per video: ffmpeg resamples the video to 25 fps and the audio to 16 kHz mono; the face is found on every
frame (or every Nth) with LightLip's own detector (lightlip_ros.face.FaceDetector, the one inference uses),
short gaps are interpolated, boxes are smoothed with a centred 5-frame mean, and the crop is the box grown
by the inference pads (lightlip_ros.face.crop_region), so training sees the framing inference will feed.

A clip is written into ``<clip>.partial`` and renamed when complete, so a finished clip folder is always
whole and a rerun skips it (resume); videos judged unusable are listed with their reason in
``preprocess_skipped.json`` and not retried unless asked.
"""
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from lightlip_ros.atomic_files import atomic_write_json
from lightlip_ros.audio import FPS, SAMPLE_RATE
from lightlip_ros.errors import LightLipError, tool_failure
from lightlip_ros.face import Box, FaceDetector, crop_region

from .jobs import run_jobs
from .layout import AUDIO_NAME, DataError, frame_path, read_filelist, write_filelist

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv")
SKIPPED_NAME = "preprocess_skipped.json"
SMOOTH_FRAMES = 5


@dataclass(frozen=True)
class PreprocessConfig:
    crop_size: int = 96  # 0 keeps the crops at their native size (as Wav2Lip's own preprocessing does)
    pads: tuple = (0, 10, 0, 0)  # top, bottom, left, right (lightlip_ros.face default = Wav2Lip inference)
    smooth: bool = True
    detect_every: int = 1
    max_gap: int = 5  # longest run of frames without a face that is interpolated
    max_missing: float = 0.1  # most frames without a detected face before the clip is skipped
    min_face: int = 48  # smallest median face box width in pixels
    min_frames: int = 10
    jpeg_quality: int = 95


class SkipClip(LightLipError):
    """This video cannot become a clip; the message is the reason."""


def _run(command):
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if result.returncode != 0:
        raise SkipClip(f"ffmpeg failed: {tool_failure(result.stderr, f'exit code {result.returncode}')}")
    return result.stdout


def probe_video(path):
    """(width, height) of the first video stream as decoded (rotation applied), or SkipClip."""
    output = _run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                   "stream=width,height:stream_side_data=rotation:stream_tags=rotate", "-of", "json", str(path)])
    streams = json.loads(output or b"{}").get("streams", [])
    if not streams:
        raise SkipClip("no video stream")
    stream = streams[0]
    width, height = int(stream["width"]), int(stream["height"])
    rotation = int(float(stream.get("tags", {}).get("rotate", 0) or 0))
    for side_data in stream.get("side_data_list", []):
        rotation = int(float(side_data.get("rotation", rotation)))
    if abs(rotation) % 180 == 90:
        width, height = height, width
    return width, height


def read_video_frames(path, size):
    """Iterator over the video's frames resampled to 25 fps, as (H, W, 3) uint8 BGR."""
    width, height = size
    process = subprocess.Popen(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-vf", f"fps={FPS}",
                                "-f", "rawvideo", "-pix_fmt", "bgr24", "-"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    frame_bytes = width * height * 3
    try:
        while True:
            data = process.stdout.read(frame_bytes)
            if len(data) < frame_bytes:
                break
            yield np.frombuffer(data, np.uint8).reshape(height, width, 3)
    finally:
        process.stdout.close()
        process.kill()
        process.wait()
        process.stderr.close()


def extract_audio(path, wav_path, start_s, duration_s):
    """The audio from start_s for duration_s seconds as 16 kHz mono 16-bit WAV."""
    _run(["ffmpeg", "-v", "error", "-y", "-i", str(path), "-map", "0:a:0", "-vn", "-ss", f"{start_s:.4f}",
          "-t", f"{duration_s:.4f}", "-ac", "1", "-ar", str(SAMPLE_RATE), "-acodec", "pcm_s16le", str(wav_path)])


def fill_gaps(boxes, max_gap):
    """Linearly interpolate runs of missing boxes (None) of at most max_gap frames between detections, and
    extend the first/last detection over at most max_gap frames at the ends. Returns (array or None rows,
    number of frames still missing)."""
    n = len(boxes)
    found = [i for i, b in enumerate(boxes) if b is not None]
    filled = [None if b is None else np.asarray(b, np.float64) for b in boxes]
    for a, b in zip(found[:-1], found[1:]):
        if 1 < b - a <= max_gap + 1:
            for i in range(a + 1, b):
                t = (i - a) / (b - a)
                filled[i] = (1 - t) * filled[a] + t * filled[b]
    if found:
        for i in range(max(0, found[0] - max_gap), found[0]):
            filled[i] = filled[found[0]]
        for i in range(found[-1] + 1, min(n, found[-1] + max_gap + 1)):
            filled[i] = filled[found[-1]]
    return filled, sum(1 for f in filled if f is None)


def smooth_boxes(boxes, window=SMOOTH_FRAMES):
    """Centred moving mean of (N, 4) boxes over `window` frames (edges use the frames available)."""
    boxes = np.asarray(boxes, np.float64)
    half = window // 2
    out = np.empty_like(boxes)
    for i in range(len(boxes)):
        out[i] = boxes[max(0, i - half):i + half + 1].mean(axis=0)
    return out


def detect_boxes(frames, detector, detect_every):
    boxes = []
    for index, frame in enumerate(frames):
        box = detector.detect(frame) if index % detect_every == 0 else None
        boxes.append(None if box is None else (box.x, box.y, box.width, box.height))
    return boxes


def preprocess_video(video, out_dir, config, detector=None):
    """Write one clip to out_dir (via out_dir.partial); returns the number of frames, or raises SkipClip."""
    video, out_dir = Path(video), Path(out_dir)
    detector = detector or FaceDetector()
    size = probe_video(video)
    if not _run(["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries", "stream=index", "-of", "csv=p=0",
                 str(video)]).strip():
        raise SkipClip("no audio stream")
    # Pass 1: detection (nothing but the boxes is kept, so long videos need no memory).
    boxes = detect_boxes(read_video_frames(video, size), detector, config.detect_every)
    if len(boxes) < config.min_frames:
        raise SkipClip(f"only {len(boxes)} frames at {FPS} fps (need {config.min_frames})")
    detected = sum(1 for b in boxes if b is not None)
    if detected == 0:
        raise SkipClip("no face found")
    filled, missing = fill_gaps(boxes, max(config.max_gap, config.detect_every - 1))
    if missing > config.max_missing * len(boxes):
        raise SkipClip(f"no face in {missing} of {len(boxes)} frames")
    # Frames without a face even after gap filling end the clip (the reader needs consecutive frames):
    # keep the longest run of frames that have a box.
    runs, start = [], None
    for i, box in enumerate(filled + [None]):
        if box is not None and start is None:
            start = i
        elif box is None and start is not None:
            runs.append((start, i))
            start = None
    first, last = max(runs, key=lambda r: r[1] - r[0])
    if last - first < config.min_frames:
        raise SkipClip(f"longest run of frames with a face is {last - first} frames")
    kept = np.array(filled[first:last])
    if config.smooth:
        kept = smooth_boxes(kept)
    if np.median(kept[:, 2]) < config.min_face:
        raise SkipClip(f"face too small ({np.median(kept[:, 2]):.0f} px wide, need {config.min_face})")

    partial = out_dir.with_name(out_dir.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        # The audio spans exactly the frames kept (a container's audio often runs a little longer, and a
        # clip that starts after frame 0 must drop the audio before it to stay in sync).
        extract_audio(video, partial / AUDIO_NAME, first / FPS, (last - first) / FPS)
        # Pass 2: crops.
        written = 0
        for index, frame in enumerate(read_video_frames(video, size)):
            if index < first:
                continue
            if index >= last:
                break
            x, y, w, h = (int(round(v)) for v in kept[index - first])
            x1, y1, x2, y2 = crop_region(Box(x, y, w, h), frame.shape, config.pads)
            crop = frame[y1:y2, x1:x2]
            if config.crop_size:
                crop = cv2.resize(crop, (config.crop_size, config.crop_size), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(frame_path(partial, written)), crop, [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality])
            written += 1
        if written < config.min_frames:
            raise SkipClip(f"video ended early ({written} frames written)")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        partial.rename(out_dir)
        return written
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def find_videos(inputs):
    """(video path, clip name) pairs: a file's clip name is its stem; files under a folder keep their path
    relative to it without the suffix (e.g. LRS2's <video id>/<utterance>)."""
    found = []
    for entry in inputs:
        entry = Path(entry)
        if entry.is_file():
            found.append((entry, entry.stem))
        elif entry.is_dir():
            for path in sorted(entry.rglob("*")):
                if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
                    found.append((path, path.relative_to(entry).with_suffix("").as_posix()))
        else:
            raise DataError(f"{entry}: no such video file or folder")
    if not found:
        raise DataError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) found in {', '.join(map(str, inputs))}")
    return found


_worker_detector = None


def _job(args):
    global _worker_detector
    video, clip, out_root, config = args
    cv2.setNumThreads(1)
    if _worker_detector is None:
        _worker_detector = FaceDetector()
    try:
        return clip, preprocess_video(video, Path(out_root) / clip, config, _worker_detector), None
    except SkipClip as reason:
        return clip, 0, str(reason)


def preprocess(inputs, out_root, config=PreprocessConfig(), split="train", workers=1, retry_skipped=False,
               log=print, progress=True):
    """Preprocess videos into out_root and add the finished clips to filelists/<split>.txt; returns a
    summary. Clips already in out_root are kept (resume); known-bad videos are not retried unless asked."""
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        raise DataError("ffmpeg and ffprobe are needed (apt-get install ffmpeg)")
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    videos = find_videos(inputs)
    skipped_path = out_root / SKIPPED_NAME
    skipped = json.loads(skipped_path.read_text()) if skipped_path.is_file() else {}
    todo, done = [], []
    for video, clip in videos:
        if (out_root / clip / AUDIO_NAME).is_file():
            done.append(clip)
        elif clip in skipped and not retry_skipped:
            continue
        else:
            todo.append((str(video), clip, str(out_root), config))
    log(f"{len(videos)} videos: {len(done)} already done, {len(todo)} to process with {workers} worker(s)")
    frames = 0
    for clip, n, reason in run_jobs(_job, todo, workers, desc="preprocess", unit="video", progress=progress):
        if reason is None:
            done.append(clip)
            frames += n
            skipped.pop(clip, None)
        else:
            skipped[clip] = reason
        atomic_write_json(skipped_path, skipped)
    for clip, reason in sorted(skipped.items()):
        log(f"skipped {clip}: {reason}")
    listed = set(read_filelist(out_root, split)) if (out_root / "filelists" / f"{split}.txt").is_file() else set()
    write_filelist(out_root, split, sorted(listed | set(done)))
    return {"videos": len(videos), "done": len(done), "processed_frames": frames, "skipped": len(skipped)}
