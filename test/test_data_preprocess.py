"""lightlip-data preprocess: real videos (made here with ffmpeg) -> the Wav2Lip layout, skips and resume."""
import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile

from training.data.cli import main
from training.data.layout import count_frames, read_filelist
from training.data.preprocess import PreprocessConfig, fill_gaps, preprocess, smooth_boxes
from training.data.synth import MouthRenderer, find_portrait_face

ASSETS = Path(__file__).resolve().parents[1] / "lightlip_ros" / "assets"


def _write_video(path, frames, fps, audio=None):
    """Encode BGR frames (and optional 16 kHz mono audio) with ffmpeg (MPEG-4 part 2, AAC)."""
    height, width = frames[0].shape[:2]
    command = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}",
               "-r", str(fps), "-i", "-"]
    if audio is not None:
        command += ["-i", str(audio), "-c:a", "aac", "-shortest"]
    command += ["-c:v", "mpeg4", "-q:v", "3", str(path)]
    subprocess.run(command, input=b"".join(f.tobytes() for f in frames), check=True)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    face = cv2.imread(str(ASSETS / "face.jpg"))
    box, mouth = find_portrait_face(face)
    renderer = MouthRenderer(face, mouth, box.height)
    frames = []
    for i in range(60):  # 2 s at 30 fps, a talking mouth and a small drift
        image, _ = renderer.render(0.5 + 0.5 * np.sin(i / 3), 0.2, 0.0)
        shifted = np.roll(image, i // 10, axis=1)
        frames.append(cv2.resize(shifted, (384, 384), interpolation=cv2.INTER_AREA))
    speech, rate = soundfile.read(str(ASSETS / "speech.wav"), dtype="float32")
    soundfile.write(str(folder / "speech.wav"), speech[: 3 * rate], rate)
    (folder / "speaker1").mkdir()
    _write_video(folder / "speaker1" / "talk.mp4", frames, 30, folder / "speech.wav")
    _write_video(folder / "speaker1" / "mute.mp4", frames[:20], 30)
    blank = [np.full((240, 320, 3), 90 + (i % 10), np.uint8) for i in range(50)]
    _write_video(folder / "speaker1" / "noface.mp4", blank, 25, folder / "speech.wav")
    (folder / "speech.wav").unlink()
    return folder


def test_preprocess_writes_layout_skips_bad_videos_and_resumes(videos, tmp_path):
    out = tmp_path / "data"
    summary = preprocess([videos], out, PreprocessConfig(), split="train", workers=1, log=lambda *_: None,
                         progress=False)
    assert summary == {"videos": 3, "done": 1, "processed_frames": 50, "skipped": 2}
    clip = out / "speaker1" / "talk"
    assert read_filelist(out, "train") == ["speaker1/talk"]
    assert count_frames(clip) == 50  # 2 s at 30 fps resampled to 25 fps
    crop = cv2.imread(str(clip / "0.jpg"))
    assert crop.shape == (96, 96, 3)
    wav, rate = soundfile.read(str(clip / "audio.wav"))
    assert rate == 16000 and wav.ndim == 1 and abs(len(wav) / rate - 2.0) < 0.01  # trimmed to the frames
    skipped = json.loads((out / "preprocess_skipped.json").read_text())
    assert skipped == {"speaker1/noface": "no face found", "speaker1/mute": "no audio stream"}
    # The crop holds the face: the landmark-free check is that the crop matches the detector's box of the
    # first video frame, i.e. it is not the blank background.
    assert crop.std() > 20
    # Resume: nothing is redone, the skipped video is not retried.
    stamp = (clip / "0.jpg").stat().st_mtime_ns
    summary = preprocess([videos], out, PreprocessConfig(), workers=1, log=lambda *_: None, progress=False)
    assert summary["done"] == 1 and summary["processed_frames"] == 0
    assert (clip / "0.jpg").stat().st_mtime_ns == stamp
    assert not list(out.rglob("*.partial"))


def test_preprocess_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["preprocess", str(tmp_path / "none.mp4"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such video" in err


def test_fill_gaps_and_smoothing():
    boxes = [(10, 10, 50, 50), None, None, (16, 10, 50, 50), None, None, None, None, None, None, None, (0, 0, 5, 5)]
    filled, missing = fill_gaps(boxes, max_gap=2)
    np.testing.assert_allclose(filled[1], (12, 10, 50, 50))
    np.testing.assert_allclose(filled[2], (14, 10, 50, 50))
    assert missing == 7 and filled[4] is None  # a gap of 7 frames is too long to interpolate
    boxes = [None, None, None, (10, 10, 50, 50), (12, 10, 50, 50), None]
    filled, missing = fill_gaps(boxes, max_gap=2)
    assert missing == 1 and filled[0] is None  # the ends are extended by at most max_gap frames
    np.testing.assert_allclose(filled[1], (10, 10, 50, 50))
    np.testing.assert_allclose(filled[5], (12, 10, 50, 50))
    jitter = np.array([[100 + (5 if i % 2 else -5), 50, 80, 80] for i in range(20)], float)
    smooth = smooth_boxes(jitter)
    assert np.abs(smooth[2:-2, 0] - 100).max() <= 1.0  # +-5 px jitter averaged out over 5 frames
    np.testing.assert_allclose(smooth[:, 2], 80)
