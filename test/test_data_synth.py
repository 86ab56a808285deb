"""Synthetic benchmark: speech + phoneme timings, mouth shapes, rendering consistent with the truth, splits,
determinism and resume. Made from the project's own assets (astronaut + espeak-ng) in a temp folder."""
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile

from lightlip_ros.audio import SAMPLE_RATE
from training.data.layout import DataError, count_frames, read_filelist
from training.data.synth import (MouthRenderer, Phoneme, SynthConfig, find_portrait_face, frame_track,
                                 generate_benchmark, make_sentences, mouth_track, plan_benchmark, synthesize)
from training.data.synth.benchmark import ASTRONAUT

SHARED_PORTRAITS = Path(__file__).resolve().parents[2] / "shared" / "data" / "portraits"
TINY = SynthConfig(sentences=2, heldout_sentences=1, seed=5)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    summary = generate_benchmark(root, TINY, workers=1, log=lambda *_: None, progress=False)
    return root, summary


def test_speech_has_phoneme_timings_and_is_reproducible():
    wav, phonemes = synthesize("Bob moved the blue boat.", "en-us+m3", rate=160, pitch=50)
    again, _ = synthesize("Bob moved the blue boat.", "en-us+m3", rate=160, pitch=50)
    np.testing.assert_array_equal(wav, again)
    with pytest.raises(DataError, match="no voice"):
        synthesize("hello", "xx-nonexistent")
    assert wav.dtype == np.float32 and 0.05 < np.abs(wav).max() <= 1.0
    duration = len(wav) / SAMPLE_RATE
    assert 1.0 < duration < 4.0
    names = [p.name for p in phonemes]
    assert names[0] == "b" and "m" in names and "u:" in names
    starts = [p.start for p in phonemes]
    assert starts == sorted(starts)
    assert all(p.end > p.start for p in phonemes)
    assert abs(phonemes[-1].end - duration) < 0.02
    # The first phoneme (a plosive) starts near the start of sound: the timings belong to this audio.
    onset = np.flatnonzero(np.abs(wav) > 0.02)[0] / SAMPLE_RATE
    assert abs(onset - phonemes[0].start) < 0.15


def test_mouth_shapes_close_on_bilabials_open_on_vowels_round_on_u():
    phonemes = [Phoneme("_", 0.0, 0.2), Phoneme("m", 0.2, 0.3), Phoneme("A:", 0.3, 0.55), Phoneme("p", 0.55, 0.65),
                Phoneme("u:", 0.65, 0.9), Phoneme("_:", 0.9, 1.3)]
    at = lambda t: mouth_track(phonemes, [t])[0]  # noqa: E731
    assert at(0.05)[0] < 0.05  # rest: closed
    assert at(0.43)[0] > 0.8  # "ah": wide open
    assert at(0.6)[0] < 0.2  # "p": lips closed between two vowels
    assert at(0.78)[2] > 0.5 and at(0.43)[2] < 0.2  # "oo" rounds, "ah" does not
    track = frame_track(phonemes, 33, 25)
    assert track.shape == (33, 3) and track.min() >= 0 and track.max() <= 1
    assert np.abs(np.diff(track[:, 0])).max() < 0.5  # coarticulation: no jumps between frames


def test_rendered_opening_darkens_the_mouth_in_proportion_to_jaw():
    image = cv2.imread(str(ASTRONAUT))
    box, mouth = find_portrait_face(image)
    assert box.x < mouth.center_x < box.x + box.width and box.y + box.height / 2 < mouth.center_y
    renderer = MouthRenderer(image, mouth, box.height)
    darkness = []
    for jaw in (0.0, 0.25, 0.5, 0.75, 1.0):
        frame, boxes = renderer.render(jaw, 0.2, 0.0)
        x1, y1, x2, y2 = (int(v) for v in boxes.lips)
        region = cv2.cvtColor(frame[y1 - 2:y2 + 8, x1:x2], cv2.COLOR_BGR2GRAY)
        darkness.append(int((region < 70).sum()))
    assert darkness == sorted(darkness) and darkness[-1] > darkness[0] + 20


def test_tiny_benchmark_layout_and_truth(tiny):
    root, summary = tiny
    assert summary["clips"] == {"train": 2, "val": 1, "test": 1} and summary["failed"] == 0
    assert not summary["identities_held_out"]  # only one portrait ships with the product
    manifest = json.loads((root / "synth.json").read_text())
    assert set(manifest["sentences"]["train"]).isdisjoint(manifest["sentences"]["test"])
    for split in ("train", "val", "test"):
        for clip in read_filelist(root, split):
            clip_dir = root / clip
            truth = json.loads((clip_dir / "truth.json").read_text())
            n = truth["n_frames"]
            assert count_frames(clip_dir) == n and len(truth["jaw"]) == n and len(truth["lips_box"]) == n
            wav, rate = soundfile.read(str(clip_dir / "audio.wav"))
            assert rate == 16000 and wav.ndim == 1 and abs(len(wav) / rate - n / 25) < 0.04
            assert cv2.imread(str(clip_dir / "0.jpg")).shape == (96, 96, 3)
            assert truth["phonemes"][-1][2] <= len(wav) / rate + 1e-3
            assert truth["text"] in manifest["sentences"][split]


def test_truth_matches_rendered_frames(tiny):
    """Dark (mouth-cavity) pixels in the truth's opening box grow with the truth's jaw opening."""
    root, _ = tiny
    jaw, dark = [], []
    for clip in read_filelist(root, "train"):
        truth = json.loads((root / clip / "truth.json").read_text())
        for i in range(truth["n_frames"]):
            frame = cv2.imread(str(root / clip / f"{i}.jpg"))
            x1, y1, x2, y2 = truth["lips_box"][i]
            region = cv2.cvtColor(frame[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))], cv2.COLOR_BGR2GRAY)
            reference = np.percentile(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), 50)
            dark.append(float((region < 0.45 * reference).sum()))
            jaw.append(truth["jaw"][i])
    correlation = np.corrcoef(jaw, dark)[0, 1]
    assert correlation > 0.8, correlation


def test_resume_skips_finished_clips_and_rejects_other_settings(tiny):
    root, _ = tiny
    first = root / read_filelist(root, "train")[0]
    stamp = (first / "0.jpg").stat().st_mtime_ns
    # A clip interrupted before its truth was written is redone.
    broken = root / read_filelist(root, "val")[0]
    (broken / "truth.json").unlink()
    summary = generate_benchmark(root, TINY, workers=1, log=lambda *_: None, progress=False)
    assert summary["rendered"] == 1 and (broken / "truth.json").is_file()
    assert (first / "0.jpg").stat().st_mtime_ns == stamp
    with pytest.raises(DataError, match="other settings"):
        generate_benchmark(root, SynthConfig(sentences=3, heldout_sentences=1, seed=5), log=lambda *_: None,
                           progress=False)


def test_same_seed_same_benchmark(tiny, tmp_path):
    root, _ = tiny
    config = SynthConfig(sentences=1, heldout_sentences=1, seed=5)
    generate_benchmark(tmp_path / "a", config, workers=1, log=lambda *_: None, progress=False)
    generate_benchmark(tmp_path / "b", config, workers=2, log=lambda *_: None, progress=False)

    def digest(base):
        h = hashlib.sha256()
        for path in sorted(p for p in base.rglob("*") if p.is_file() and p.name != "synth.json"):
            h.update(str(path.relative_to(base)).encode())
            h.update(path.read_bytes())
        return h.hexdigest()

    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    # The first training sentence and clip are the same as in the larger benchmark with that seed.
    clip = read_filelist(root, "train")[0]
    assert (tmp_path / "a" / clip / "audio.wav").read_bytes() == (root / clip / "audio.wav").read_bytes()


def test_sentences_are_distinct_and_prefix_stable():
    sentences = make_sentences(200, seed=1)
    assert len(set(sentences)) == 200
    assert make_sentences(20, seed=1) == sentences[:20]
    assert make_sentences(20, seed=2) != sentences[:20]


@pytest.mark.skipif(not SHARED_PORTRAITS.is_dir(), reason="development portraits (../shared/data) are absent")
def test_held_out_splits_have_unseen_identities_and_sentences():
    config = SynthConfig(portraits=(str(SHARED_PORTRAITS),), identities=20, sentences=40, heldout_sentences=10)
    identities, sentences, clips, held_out = plan_benchmark(config, log=lambda *_: None)
    assert held_out
    by_split = {s: {c.identity for c in clips if c.split == s} for s in ("train", "val", "test")}
    assert len(by_split["train"]) == 20 and by_split["val"] and by_split["test"]
    assert by_split["train"].isdisjoint(by_split["val"] | by_split["test"])
    assert by_split["val"].isdisjoint(by_split["test"])
    texts = {s: {c.sentence for c in clips if c.split == s} for s in ("train", "val", "test")}
    assert len(texts["train"]) == 40
    assert texts["train"].isdisjoint(texts["val"] | texts["test"]) and texts["val"].isdisjoint(texts["test"])
    assert sum(1 for c in clips if c.split == "train") == 800


@pytest.mark.parametrize("voice", ["festival:kal_diphone", "festival:ked_diphone"])
def test_festival_speech_has_exact_phone_timings_in_espeak_names(voice):
    wav, phonemes = synthesize("Bob moved the blue boat.", voice, rate=160, pitch=50)
    again, _ = synthesize("Bob moved the blue boat.", voice, rate=160, pitch=50)
    np.testing.assert_array_equal(wav, again)
    names = [p.name for p in phonemes]
    # ARPAbet renamed to espeak-ng mnemonics, the names the mouth shapes know: b, m, u: (uw), oU (ow).
    assert names[0] == "_:" and names[1] == "b" and "m" in names and "u:" in names and "oU" in names
    assert all(b.start == a.end for a, b in zip(phonemes, phonemes[1:]))  # contiguous spans
    duration = len(wav) / SAMPLE_RATE
    assert abs(phonemes[-1].end - duration) < 0.05
    # The first /b/ releases where the sound starts: the timings belong to this waveform.
    onset = np.flatnonzero(np.abs(wav) > 0.02)[0] / SAMPLE_RATE
    assert abs(onset - phonemes[1].start) < 0.1
    slower, slow_phonemes = synthesize("Bob moved the blue boat.", voice, rate=120, pitch=50)
    assert len(slower) > 1.2 * len(wav) and slow_phonemes[-1].end > 1.2 * phonemes[-1].end
    with pytest.raises(DataError, match="festival has no voice"):
        synthesize("hello", "festival:nobody")
    with pytest.raises(DataError, match="unknown speech engine"):
        synthesize("hello", "sapi:anna")


def test_benchmark_mixes_speech_engines_per_clip(tmp_path):
    config = SynthConfig(sentences=4, heldout_sentences=1, seed=5, festival_share=0.5)
    _, _, clips, _ = plan_benchmark(config, log=lambda *_: None)
    voices = [clip.voice for clip in clips]
    assert any(v.startswith("festival:") for v in voices) and any(v == "" for v in voices)
    only_espeak = plan_benchmark(SynthConfig(sentences=4, heldout_sentences=1, seed=5, festival_share=0.0),
                                 log=lambda *_: None)[2]
    assert all(clip.voice == "" for clip in only_espeak)
