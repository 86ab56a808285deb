"""The Wav2Lip-layout reader: shapes, masking, reference and off-sync sampling, mel alignment, seeding."""
import os
import time

import cv2
import numpy as np
import pytest
import soundfile
import torch
from torch.utils.data import DataLoader

from lightlip_ros.audio import SAMPLE_RATE, melspectrogram
from training.data.dataset import (SyncPairDataset, Wav2LipDataset, clip_mel, training_mel_start, valid_starts)
from training.data.layout import DataError, write_filelist

N_FRAMES = 60
BURST_FRAME = 30  # a 1 kHz tone starts exactly at the timestamp of this frame (1.2 s)


def _frame_image(index):
    """A 96x96 frame that encodes its index in every pixel (decodable after JPEG)."""
    return np.full((96, 96, 3), 40 + 3 * index, np.uint8)


def _decode(window):
    """Frame indices of a (3, T, H, W) tensor of frames made by _frame_image."""
    return [int(round((float(m) * 255 - 40) / 3)) for m in window.float().mean(dim=(0, 2, 3))]


def _make_clip(clip_dir, n_frames=N_FRAMES, burst_frame=BURST_FRAME, seconds=None):
    clip_dir.mkdir(parents=True)
    for i in range(n_frames):
        cv2.imwrite(str(clip_dir / f"{i}.jpg"), _frame_image(i), [cv2.IMWRITE_JPEG_QUALITY, 100])
    seconds = seconds or n_frames / 25
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    rng = np.random.default_rng(0)
    wav = rng.normal(0, 1e-4, t.shape)
    onset = burst_frame / 25
    wav[t >= onset] += 0.5 * np.sin(2 * np.pi * 1000 * t[t >= onset])
    soundfile.write(str(clip_dir / "audio.wav"), wav.astype(np.float32), SAMPLE_RATE)


@pytest.fixture
def root(tmp_path):
    for name in ("spk1/a", "spk1/b", "spk2/a"):
        _make_clip(tmp_path / name)
    write_filelist(tmp_path, "train", ["spk1/a", "spk1/b", "spk2/a"])
    return tmp_path


def test_generator_sample_shapes_masking_and_reference(root):
    dataset = Wav2LipDataset(root, "train", seed=1, samples_per_clip=4)
    assert len(dataset) == 12
    for index in range(len(dataset)):
        sample = dataset[index]
        assert sample["face_input"].shape == (6, 5, 96, 96)
        assert sample["target"].shape == (3, 5, 96, 96)
        assert sample["mels"].shape == (5, 1, 80, 16)
        assert sample["sync_mel"].shape == (1, 80, 16)
        start = sample["start"]
        assert start >= 1
        assert _decode(sample["target"]) == list(range(start, start + 5))
        masked, reference = sample["face_input"][:3], sample["face_input"][3:]
        assert torch.all(masked[:, :, 48:] == 0)
        assert torch.equal(masked[:, :, :48], sample["target"][:, :, :48])
        reference_frames = _decode(reference)
        assert reference_frames == list(range(reference_frames[0], reference_frames[0] + 5))
        assert reference_frames[0] != start  # another time of the same clip
        assert 0.0 <= float(sample["target"].min()) and float(sample["target"].max()) <= 1.0


def test_mel_windows_follow_training_convention(root):
    dataset = Wav2LipDataset(root, "train", seed=2, samples_per_clip=8)
    mel = clip_mel(str(root / "spk1/a"))
    for index in range(8):
        sample = dataset[index]
        start = sample["start"]
        for j in range(5):
            first = int(80 * (start + j - 1) / 25)
            assert torch.equal(sample["mels"][j, 0], torch.from_numpy(mel[:, first:first + 16]))
        sync_first = int(80 * start / 25)
        assert torch.equal(sample["sync_mel"][0], torch.from_numpy(mel[:, sync_first:sync_first + 16]))


def test_mel_window_of_frame_i_starts_at_audio_time_of_frame_i_minus_1(tmp_path):
    """Physical check with a tone burst at frame 30's timestamp: in frame i's window the burst begins
    3.2 * (31 - i) columns in, i.e. the window starts at (i - 1) / 25 s."""
    _make_clip(tmp_path / "c")
    mel = clip_mel(str(tmp_path / "c"))
    energy = mel.mean(axis=0)
    threshold = (energy[:60].mean() + energy[-60:].mean()) / 2
    for frame in (26, 28, 30, 31, 32):
        first = training_mel_start(frame)
        window = energy[first:first + 16]
        loud = np.flatnonzero(window > threshold)
        onset = loud[0] if len(loud) else 16
        if frame <= 31:
            expected = 80 * (BURST_FRAME - (frame - 1)) / 25
            assert abs(onset - expected) <= 1.5, (frame, onset, expected)
        else:
            assert onset == 0  # the burst is already under way when the window starts


def test_sync_pairs_in_and_off_sync(root):
    dataset = SyncPairDataset(root, "train", seed=3, samples_per_clip=10, off_sync_min_offset=5)
    labels = []
    for index in range(len(dataset)):
        sample = dataset[index]
        assert sample["faces"].shape == (15, 48, 96)
        assert sample["mel"].shape == (1, 80, 16)
        frames = _decode(sample["faces"].reshape(5, 3, 48, 96).transpose(0, 1).reshape(3, 5, 48, 96))
        assert frames == list(range(sample["frames_start"], sample["frames_start"] + 5))
        in_sync = float(sample["in_sync"])
        labels.append(in_sync)
        if in_sync == 1.0:
            assert sample["frames_start"] == sample["start"]
        else:
            assert abs(sample["frames_start"] - sample["start"]) >= 5
        mel = clip_mel(str(root / dataset.clips[sample["clip"]]))
        first = int(80 * sample["start"] / 25)
        assert torch.equal(sample["mel"][0], torch.from_numpy(mel[:, first:first + 16]))
    assert 0 < sum(labels) < len(labels)  # both kinds occur


def test_sync_matching_candidates_come_from_the_same_clip_first_in_sync(root):
    dataset = SyncPairDataset(root, "train", seed=4, samples_per_clip=6, off_sync_min_offset=3, candidates=4)
    for index in range(len(dataset)):
        sample = dataset[index]
        assert sample["faces"].shape == (4, 15, 48, 96)
        assert "in_sync" not in sample
        starts = [int(first) for first in sample["frames_start"]]
        assert starts[0] == sample["start"]
        assert len(set(starts)) == 4  # no candidate repeated: the clips have enough windows
        assert all(abs(first - sample["start"]) >= 3 for first in starts[1:])
        for first, faces in zip(starts, sample["faces"]):
            assert _decode(faces.reshape(5, 3, 48, 96).transpose(0, 1).reshape(3, 5, 48, 96)) == \
                list(range(first, first + 5))
    with pytest.raises(ValueError, match="candidates must be >= 1, got 0"):
        SyncPairDataset(root, "train", candidates=0)


def test_deterministic_across_workers_and_epochs(root):
    dataset = Wav2LipDataset(root, "train", seed=7, samples_per_clip=4)
    serial = [(int(b["clip"][k]), int(b["start"][k])) for b in DataLoader(dataset, batch_size=3)
              for k in range(len(b["start"]))]
    parallel_batches = list(DataLoader(dataset, batch_size=3, num_workers=2))
    parallel = [(int(b["clip"][k]), int(b["start"][k])) for b in parallel_batches for k in range(len(b["start"]))]
    assert serial == parallel
    assert torch.equal(parallel_batches[0]["face_input"], next(iter(DataLoader(dataset, batch_size=3)))["face_input"])
    dataset.set_epoch(1)
    other_epoch = [int(dataset[i]["start"]) for i in range(len(dataset))]
    assert other_epoch != [start for _, start in serial]
    other_seed = Wav2LipDataset(root, "train", seed=8, samples_per_clip=4)
    assert [int(other_seed[i]["start"]) for i in range(len(dataset))] != [start for _, start in serial]


def test_mel_cache_is_written_and_refreshed(tmp_path):
    clip = tmp_path / "c"
    _make_clip(clip)
    clip_mel.cache_clear()
    mel = clip_mel(str(clip))
    cache = clip / "mel.npy"
    assert cache.is_file()
    np.testing.assert_array_equal(np.load(cache), mel)
    wav, rate = soundfile.read(str(clip / "audio.wav"), dtype="float32")
    np.testing.assert_allclose(mel, melspectrogram(wav), atol=1e-6)
    # New audio (newer than the cache) gives a new spectrogram.
    time.sleep(0.01)
    soundfile.write(str(clip / "audio.wav"), np.zeros_like(wav) + 1e-3, rate)
    os.utime(clip / "audio.wav", (time.time() + 5, time.time() + 5))
    clip_mel.cache_clear()
    assert not np.array_equal(clip_mel(str(clip)), mel)


def test_short_clip_is_skipped_with_a_warning(tmp_path):
    _make_clip(tmp_path / "good")
    _make_clip(tmp_path / "short", n_frames=4)
    write_filelist(tmp_path, "train", ["short", "good"])
    dataset = Wav2LipDataset(tmp_path, "train", seed=0)
    with pytest.warns(UserWarning, match="short"):
        sample = dataset[0]
    assert dataset.clips[sample["clip"]] == "good"


def test_valid_starts_keep_every_window_inside_the_audio():
    starts = valid_starts(100, 320)  # 4 s of frames, 4 s of mel columns
    assert starts[0] == 1
    for s in starts:
        assert int(80 * (s + 3) / 25) + 16 <= 320 and int(80 * s / 25) + 16 <= 320
    assert valid_starts(100, 200).max() < starts.max()  # shorter audio, fewer windows


def test_missing_filelist_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file list"):
        Wav2LipDataset(tmp_path, "val")


def test_samples_without_truth_get_the_prior_mouth_box_and_no_articulation(root):
    from training.data.dataset import MOUTH_PRIOR_BOX

    sample = Wav2LipDataset(root, "train", seed=1)[0]
    assert float(sample["has_truth"]) == 0.0
    assert sample["articulation"].shape == (5, 3) and torch.all(sample["articulation"] == 0)
    expected = torch.tensor(MOUTH_PRIOR_BOX) * 96
    assert torch.allclose(sample["mouth_box"], expected.expand(5, 4))


def test_audio_augmentation_changes_level_and_noise_deterministically(root):
    from training.data.dataset import AudioAugment

    plain = Wav2LipDataset(root, "train", seed=1)
    quieter = Wav2LipDataset(root, "train", seed=1, audio_augment=AudioAugment(gain_db=(-10.0, -10.0)))
    noisy = Wav2LipDataset(root, "train", seed=1, audio_augment=AudioAugment(snr_db=(10.0, 10.0)))
    a, b, c = plain[0], quieter[0], noisy[0]
    assert a["start"] == b["start"] == c["start"]  # the same window, only its audio differs
    # -10 dB lowers every mel value by 0.8 (8 units per 100 dB) while it stays above the floor of -4.
    above = a["mels"] > -3.0
    assert torch.allclose(b["mels"][above], a["mels"][above] - 0.8, atol=0.05)
    # Noise 10 dB under the tone fills the silent part (a 1e-4 noise floor) far above where it was.
    quiet = a["mels"] < -2.0
    assert float((c["mels"][quiet] - a["mels"][quiet]).mean()) > 1.0
    assert torch.equal(noisy[0]["mels"], c["mels"])  # drawn from (seed, epoch, index) alone
    with pytest.raises(ValueError, match="low <= high"):
        AudioAugment(gain_db=(6.0, -6.0))


def test_colour_augmentation_transforms_frames_and_reference_alike(root):
    from training.data.dataset import ColourAugment

    plain = Wav2LipDataset(root, "train", seed=1)
    warmer = Wav2LipDataset(root, "train", seed=1,
                            colour_augment=ColourAugment(channel_gain=(1.2, 1.2), fit_range=False))
    a, b = plain[0], warmer[0]
    assert a["start"] == b["start"] and torch.equal(a["mels"], b["mels"])  # the same window and audio
    assert torch.allclose(b["target"], a["target"] * 1.2, atol=1e-6)  # not clipped: highlights keep their hue
    reference = a["face_input"][3:]
    assert torch.allclose(b["face_input"][3:], reference * 1.2, atol=1e-6)
    assert torch.all(b["face_input"][:3, :, 48:] == 0)  # the lower half is still masked

    # fit_range (the default) maps the whole sample back into [0, 1] by one affine map: the sigmoid output can
    # meet every target, and target and reference keep the same colour relations.
    bright = Wav2LipDataset(root, "train", seed=1,
                            colour_augment=ColourAugment(channel_gain=(2.5, 2.5), fit_range=False))[0]
    fitted = Wav2LipDataset(root, "train", seed=1, colour_augment=ColourAugment(channel_gain=(2.5, 2.5)))[0]
    assert float(bright["target"].max()) > 1.0 and 0.0 <= float(fitted["target"].min())
    assert float(fitted["target"].max()) <= 1.0 and float(fitted["face_input"][3:].max()) <= 1.0
    scale = float(max(bright["target"].max(), bright["face_input"][3:].max()))
    assert torch.allclose(fitted["target"], bright["target"] / scale, atol=1e-6)
    assert torch.allclose(fitted["face_input"][3:], bright["face_input"][3:] / scale, atol=1e-6)
    darker = ColourAugment(brightness=(0.5, 0.5))  # stays inside [0, 1]: left as it is
    colours = torch.rand(3, 2, 4, 4)
    assert torch.allclose(darker([colours], np.random.default_rng(0))[0], colours * 0.5, atol=1e-6)

    # Saturation scales each pixel's distance from its luma: 0 leaves grey, 1 leaves the colours.
    colours = torch.rand(3, 2, 4, 4)
    grey, same = ColourAugment(saturation=(0.0, 0.0)), ColourAugment()
    rng = np.random.default_rng(0)
    flat = grey([colours], rng)[0]
    assert torch.allclose(flat, flat[:1].expand_as(flat), atol=1e-6)
    luma = (colours * torch.tensor([0.114, 0.587, 0.299]).view(3, 1, 1, 1)).sum(0)
    assert torch.allclose(flat[0], luma, atol=1e-6)
    assert torch.allclose(same([colours], rng)[0], colours, atol=1e-6)
    augmented = ColourAugment((0.5, 1.5), (0.8, 1.2), (0.8, 1.2))
    assert torch.equal(augmented([colours], np.random.default_rng(3))[0],
                       augmented([colours], np.random.default_rng(3))[0])  # drawn from the sample's generator
    with pytest.raises(ValueError, match="low <= high"):
        ColourAugment(brightness=(1.2, 0.8))


def test_room_and_microphone_augmentation_filter_and_echo_the_speech():
    from training.data.dataset import AudioAugment

    seconds, onset = 2.4, 1.2  # a 1 kHz tone from 1.2 s, over a faint noise floor
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wav = (np.random.default_rng(0).normal(0, 1e-4, t.shape) + 0.5 * np.sin(2 * np.pi * 1000 * t) * (t >= onset))
    wav = wav.astype(np.float32)
    whole = melspectrogram(wav)
    columns, onset_column = (80, 150), int(onset * 80)

    def augmented(augment, seed=0):
        return augment.mel(wav, np.random.default_rng(seed), columns, whole.shape[1])[:, columns[0]:columns[1]]

    plain = augmented(AudioAugment())
    assert np.allclose(plain, whole[:, columns[0]:columns[1]], atol=1e-5)  # the segment equals the whole clip
    # A 2-4 kHz band-pass (a tinny loudspeaker) takes the 1 kHz tone far down.
    tinny = augmented(AudioAugment(band_hz=((2000, 2000), (4000, 4000))))
    steady = slice(onset_column - columns[0] + 4, None)
    tone_bin = int(plain[:, steady].mean(axis=1).argmax())
    drop_db = 100 / 8 * float((plain[tone_bin, steady] - tinny[tone_bin, steady]).mean())  # 8 mel units per 100 dB
    assert drop_db > 15, drop_db
    # A room echoes only what came before: the quiet before the onset stays quiet (its faint noise coloured by a
    # few dB), the tone does not leak back into it, and the onset's broadband edge rings on after it.
    room = AudioAugment(reverb_s=(0.5, 0.5))
    echoed = augmented(room)
    before = slice(0, onset_column - columns[0] - 3)
    assert np.allclose(echoed[:, before], plain[:, before], atol=0.3)
    assert float(np.abs(echoed[:, steady] - plain[:, steady]).mean()) > 0.02
    assert np.array_equal(echoed, augmented(room))  # drawn from the sample's generator alone
    assert not np.array_equal(echoed, augmented(room, seed=1))
    with pytest.raises(ValueError, match="high-pass corner below"):
        AudioAugment(band_hz=((300, 3000), (2000, 4000)))
    with pytest.raises(ValueError, match=">= 0 s"):
        AudioAugment(reverb_s=(-0.1, 0.3))


def test_wide_open_weight_draws_wide_mouths_more_often(tmp_path):
    import json

    from training.data.dataset import SYNC_FRAMES

    _make_clip(tmp_path / "spk/a")
    jaw = np.zeros(N_FRAMES)
    jaw[40:50] = 1.0  # one wide-open stretch in a closed-mouth clip
    truth = {"crop_size": 96, "jaw": jaw.tolist(), "spread": [0.0] * N_FRAMES, "round": [0.0] * N_FRAMES,
             "lips_box": [[30, 60, 66, 80]] * N_FRAMES}
    (tmp_path / "spk/a/truth.json").write_text(json.dumps(truth))
    write_filelist(tmp_path, "train", ["spk/a"])

    def wide_share(weight):
        data = Wav2LipDataset(tmp_path, "train", seed=0, samples_per_clip=400, wide_open_weight=weight)
        starts = np.array([data[i]["start"] for i in range(len(data))])
        return float(np.mean([jaw[s:s + SYNC_FRAMES].mean() > 0.5 for s in starts]))

    uniform, weighted = wide_share(0.0), wide_share(4.0)
    assert 0.05 < uniform < 0.25  # 11 of the clip's windows are mostly open
    assert weighted > 2 * uniform
    with pytest.raises(ValueError, match="wide_open_weight"):
        Wav2LipDataset(tmp_path, "train", wide_open_weight=-1)


def test_mirror_flips_frames_reference_and_mouth_boxes_together(tmp_path):
    import json

    _make_clip(tmp_path / "spk/a")
    for i in range(N_FRAMES):  # a bright left edge, so that a flip shows
        image = _frame_image(i)
        image[:, :20] = 250
        cv2.imwrite(str(tmp_path / "spk/a" / f"{i}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 100])
    truth = {"crop_size": 96, "jaw": [0.5] * N_FRAMES, "spread": [0.0] * N_FRAMES, "round": [0.0] * N_FRAMES,
             "lips_box": [[20, 60, 50, 80]] * N_FRAMES}
    (tmp_path / "spk/a/truth.json").write_text(json.dumps(truth))
    write_filelist(tmp_path, "train", ["spk/a"])

    plain = Wav2LipDataset(tmp_path, "train", seed=3, samples_per_clip=40)
    mirrored = Wav2LipDataset(tmp_path, "train", seed=3, samples_per_clip=40, mirror=1.0)
    for index in range(5):
        a, b = plain[index], mirrored[index]
        assert a["start"] == b["start"] and torch.equal(a["mels"], b["mels"])  # the same window and audio
        assert torch.equal(b["target"], a["target"].flip(-1))
        assert torch.equal(b["face_input"], a["face_input"].flip(-1))  # masked window and reference alike
        assert float(b["target"][..., -10:].mean()) > 0.9  # the bright edge is now on the right
        assert b["mouth_box"].tolist() == [[46.0, 60.0, 76.0, 80.0]] * 5
        assert torch.equal(b["articulation"], a["articulation"])  # jaw, spread, rounding are symmetric

    half = Wav2LipDataset(tmp_path, "train", seed=3, samples_per_clip=40, mirror=0.5)
    flipped = [float(half[i]["target"][..., -10:].mean()) > 0.9 for i in range(len(half))]
    assert 0.25 < np.mean(flipped) < 0.75
    with pytest.raises(ValueError, match="mirror must be in"):
        Wav2LipDataset(tmp_path, "train", mirror=1.5)
