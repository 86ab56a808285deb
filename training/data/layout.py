"""The on-disk layout Wav2Lip's preprocessing writes, shared by the reader, preprocess, synth and eval.

    <root>/<clip>/<n>.jpg        face crops of frames 0, 1, ... at 25 fps (BGR JPEG, any square size)
    <root>/<clip>/audio.wav      the clip's audio, 16 kHz mono
    <root>/filelists/<split>.txt one clip path (relative to <root>, may contain '/') per line

Clips made by ``lightlip-data synth`` also hold ``truth.json`` (per-frame mouth ground truth).
"""
import json
import os
from pathlib import Path

from lightlip_ros.atomic_files import atomic_write_text
from lightlip_ros.errors import LightLipError

SPLITS = ("train", "val", "test")
FILELISTS_DIR = "filelists"
AUDIO_NAME = "audio.wav"
TRUTH_NAME = "truth.json"
MEL_CACHE_NAME = "mel.npy"


class DataError(LightLipError):
    """A problem with the user's data or arguments, reported as one readable line."""


def filelist_path(root, split):
    return Path(root) / FILELISTS_DIR / f"{split}.txt"


def read_filelist(root, split):
    """Clip paths (relative to root) of a split; blank lines and '#' comments are ignored."""
    path = filelist_path(root, split)
    if not path.is_file():
        raise DataError(f"{path}: no such file list (expected one clip path per line)")
    clips = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            clips.append(line)
    return clips


def write_filelist(root, split, clips):
    atomic_write_text(filelist_path(root, split), "".join(f"{clip}\n" for clip in clips))


def frame_path(clip_dir, index):
    return Path(clip_dir) / f"{index}.jpg"


def count_frames(clip_dir):
    """Number of consecutive frames 0.jpg, 1.jpg, ... in a clip folder (a gap ends the clip)."""
    names = {entry.name for entry in os.scandir(clip_dir) if entry.name.endswith(".jpg")}
    count = 0
    while f"{count}.jpg" in names:
        count += 1
    return count


def read_truth(clip_dir):
    """The synthetic ground truth of a clip (see training.data.synth), or None for clips without it."""
    path = Path(clip_dir) / TRUTH_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text())
