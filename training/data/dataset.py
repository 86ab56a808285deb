"""Wav2Lip training samples from the Wav2Lip layout (see training.data.layout): generator and lip-sync expert.

Conventions, as Wav2Lip's training code samples them (facts, not code, carried over):
- A sample is a window of T=5 consecutive frames starting at frame s, crops resized to 96x96, BGR in [0, 1].
- Generator input: the window with its lower half zeroed, concatenated on channels with a reference window of
  the same clip at another time (the identity frames) -> (6, T, 96, 96); target: the window (3, T, 96, 96).
- Per-frame mel windows: frame f uses the 16 columns from int(80 * (f - 1) / 25), i.e. one frame earlier
  than the inference convention (lightlip_ros.audio.mel_window_start); hence s >= 1.
- SyncNet mel of a window: the 16 columns from int(80 * s / 25) (the 5 frames' own 200 ms).
- Expert pairs: the mel of window s with the frames of s (in sync, label 1) or of another start (label 0).

Generator samples also carry the mouth labels the recipe's articulation and mouth-weighted terms use:
the synthetic truth's per-frame (jaw, spread, round) and lips box when the clip has ``truth.json``, and for
clips without it (real recordings) zeros with ``has_truth`` 0 and a fixed mouth box (MOUTH_PRIOR_BOX).

Audio augmentation (``AudioAugment``) recomputes a sample's mel from its waveform with a random gain and
noise floor, so the audio side does not learn one synthesiser's loudness and silence.

Randomness comes only from ``numpy.random.default_rng([seed, epoch, index])``, so a sample depends on
(seed, epoch, index) alone: the same with any number of DataLoader workers, in any order. Call
``set_epoch`` each epoch for new windows. Mel spectrograms are cached per clip (``mel.npy`` beside
``audio.wav``, plus a small in-process cache).
"""
import functools
import warnings
from pathlib import Path

import cv2
import numpy as np
import scipy.signal
import torch
from torch.utils.data import Dataset

from lightlip_ros.atomic_files import atomic_write
from lightlip_ros.audio import (FPS, HOP_LENGTH, MEL_STEP_SIZE, N_MELS, SAMPLE_RATE, load_audio, mel_window_start,
                                melspectrogram)
from lightlip_ros.face import CROP_SIZE
from lightlip_ros.models.syncnet import SYNC_FRAMES, syncnet_face_input

from .layout import AUDIO_NAME, MEL_CACHE_NAME, DataError, count_frames, frame_path, read_filelist, read_truth
from .synth.visemes import SHAPE_NAMES

# Mouth region of an inference crop (x1, y1, x2, y2 as fractions of the crop) for clips without truth: where
# the synthetic benchmark's truth lips boxes lie (1st to 99th percentile of each edge over all 79,165 frames:
# 0.30-0.41, 0.60-0.78, 0.59-0.70, 0.75-0.97), rounded out.
MOUTH_PRIOR_BOX = (0.28, 0.58, 0.72, 0.97)
SHAPE_DIMENSIONS = len(SHAPE_NAMES)

# A clip that cannot give a sample (too short, unreadable) is replaced by another clip drawn from the same
# generator; after this many failures in a row the data set is declared unusable.
_MAX_ATTEMPTS = 20


def training_mel_start(frame, fps=FPS):
    """First mel column of frame ``frame``'s window in Wav2Lip training: inference's for the frame before."""
    return mel_window_start(frame - 1, fps)


def sync_mel_start(start_frame, fps=FPS):
    """First mel column of the SyncNet window of the T frames starting at ``start_frame``: the frames' own."""
    return mel_window_start(start_frame, fps)


def valid_starts(n_frames, n_mel_columns, frames=SYNC_FRAMES):
    """Window starts s whose frames s..s+T-1 exist and whose per-frame and SyncNet mels fit the audio."""
    starts = np.arange(1, max(1, n_frames - frames + 1))
    if len(starts) == 0:
        return starts
    last_frame_end = np.array([training_mel_start(s + frames - 1) for s in starts]) + MEL_STEP_SIZE
    sync_end = np.array([sync_mel_start(s) for s in starts]) + MEL_STEP_SIZE
    return starts[(last_frame_end <= n_mel_columns) & (sync_end <= n_mel_columns)]


@functools.lru_cache(maxsize=256)
def clip_mel(clip_dir):
    """(80, T) mel spectrogram of a clip's audio.wav, from mel.npy when it is newer than the audio.

    A read-only data set still works: the cache file is then simply not written.
    """
    clip_dir = Path(clip_dir)
    audio = clip_dir / AUDIO_NAME
    cache = clip_dir / MEL_CACHE_NAME
    try:
        if cache.is_file() and cache.stat().st_mtime >= audio.stat().st_mtime:
            mel = np.load(cache)
            if mel.ndim == 2 and mel.shape[0] == 80:
                return mel
    except (OSError, ValueError):
        pass
    mel = melspectrogram(load_audio(audio))
    try:
        with atomic_write(cache) as temporary:
            np.save(temporary, mel)
    except OSError:
        pass  # a read-only dataset: compute the mel each time
    return mel


@functools.lru_cache(maxsize=64)
def clip_audio(clip_dir):
    """16 kHz mono samples of a clip's audio.wav (read-only array, cached)."""
    wav = load_audio(Path(clip_dir) / AUDIO_NAME)
    wav.flags.writeable = False
    return wav


@functools.lru_cache(maxsize=4096)
def clip_truth(clip_dir):
    """A clip's synthetic truth (training.data.layout.read_truth), cached; None for clips without it."""
    return read_truth(clip_dir)


def has_synthetic_truth(dataset, probe_clips=64):
    """Whether a data set's clips carry the synthetic truth (truth.json), judged on its first probe_clips clips:
    `lightlip-data synth` writes it for every clip, `lightlip-data preprocess` for none."""
    return any(clip_truth(str(dataset.root / clip)) is not None for clip in dataset.clips[:probe_clips])


class AudioAugment:
    """Random loudness, room, microphone and noise floor for a training sample's audio, drawn from the
    sample's generator.

    gain_db: (low, high) gain in dB; snr_db: (low, high) ratio of the clip's speech RMS to added white
    noise, in dB (None: no noise); reverb_s: (low, high) reverberation time (RT60) of a synthetic room,
    an exponentially decaying noise tail behind the direct sound, 0 = dry (None: no room); band_hz:
    ((low, high), (low, high)) cut-offs of a 4th-order Butterworth band-pass, the high-pass then the
    low-pass corner, as a small loudspeaker, a telephone or a cheap microphone cut speech (None: full band).
    The mel columns a sample uses are recomputed from the augmented waveform, so the mel front end and its
    floor behave exactly as on real audio at that level.
    """

    # Columns computed on each side of the needed ones: the STFT window of a column reaches 2 columns out,
    # and the pre-emphasis filter one sample further.
    MARGIN_COLUMNS = 3
    # Direct-to-reverberant energy ratio of the synthetic room (dB): a voice a metre or two from the microphone.
    DIRECT_TO_REVERB_DB = (3.0, 15.0)
    # Audio before the needed columns that the band-pass filter runs over first, so it has settled (s).
    FILTER_SETTLE_S = 0.1

    def __init__(self, gain_db=(0.0, 0.0), snr_db=None, reverb_s=None, band_hz=None):
        self.gain_db = _range(gain_db, "audio gain")
        self.snr_db = None if snr_db is None else _range(snr_db, "audio SNR")
        self.reverb_s = None if reverb_s is None else _range(reverb_s, "reverberation time")
        if self.reverb_s is not None and self.reverb_s[0] < 0:
            raise ValueError(f"reverberation time must be >= 0 s, got {reverb_s}")
        self.band_hz = None
        if band_hz is not None:
            high_pass, low_pass = (_range(corner, "band-pass corner") for corner in band_hz)
            if not 0 < high_pass[1] < low_pass[0]:
                raise ValueError(f"band_hz must be ((high-pass low, high), (low-pass low, high)) with every "
                                 f"high-pass corner below every low-pass corner, got {band_hz}")
            self.band_hz = (high_pass, low_pass)
        context_s = (self.reverb_s[1] if self.reverb_s else 0.0) + (self.FILTER_SETTLE_S if self.band_hz else 0.0)
        self._context_columns = int(np.ceil(context_s * SAMPLE_RATE / HOP_LENGTH))

    @classmethod
    def from_config(cls, section):
        """From a config's data.audio_augment mapping ({gain_db, snr_db, reverb_s, band_hz}) or None (no
        augmentation)."""
        if not section:
            return None
        return cls(section.get("gain_db") or (0.0, 0.0), section.get("snr_db"), section.get("reverb_s"),
                   section.get("band_hz"))

    def mel(self, wav, rng, columns, n_columns):
        """(80, n_columns) mel of the augmented clip, with only the columns in range(*columns) computed
        (the others are zero): a sample needs about 30 of a clip's hundreds, and they equal the columns
        of the whole augmented clip's mel (the segment keeps MARGIN_COLUMNS of real audio on each side, and
        before that as much as the room's echo and the filter reach back)."""
        gain = 10.0 ** (rng.uniform(*self.gain_db) / 20.0)
        first = max(0, columns[0] - self.MARGIN_COLUMNS)
        start = max(0, first - self._context_columns)
        end = min(n_columns, columns[1] + self.MARGIN_COLUMNS)
        stop = len(wav) if end == n_columns else HOP_LENGTH * (end - 1) + 1  # the clip's end reflects as in the whole
        segment = wav[HOP_LENGTH * start:stop].astype(np.float32) * np.float32(gain)
        noise = None
        if self.snr_db is not None:
            speech_rms = gain * clip_rms(wav)
            noise_rms = speech_rms / 10.0 ** (rng.uniform(*self.snr_db) / 20.0)
            noise = rng.normal(0.0, noise_rms, segment.shape).astype(np.float32)
        segment = self._room_and_microphone(segment, rng)  # drawn after the level and noise of earlier versions
        if noise is not None:
            segment = segment + noise
        mel = np.zeros((N_MELS, n_columns), np.float32)
        computed = melspectrogram(np.clip(segment, -1.0, 1.0))
        mel[:, first:end] = computed[:, first - start:end - start]
        return mel

    def _room_and_microphone(self, segment, rng):
        if self.reverb_s is not None:
            reverb_time = rng.uniform(*self.reverb_s)
            if reverb_time > 0:
                length = max(2, int(reverb_time * SAMPLE_RATE))
                decay = np.exp(-np.log(1000.0) * np.arange(length) / length)  # 60 dB down at the reverb time
                tail = rng.normal(0.0, 1.0, length) * decay
                tail *= np.sqrt(10.0 ** (-rng.uniform(*self.DIRECT_TO_REVERB_DB) / 10.0) / np.sum(tail[1:] ** 2))
                tail[0] = 1.0  # the direct sound
                segment = scipy.signal.fftconvolve(segment, tail)[:len(segment)].astype(np.float32)
        if self.band_hz is not None:
            (high_pass, low_pass), nyquist = self.band_hz, SAMPLE_RATE / 2.0
            corners = [rng.uniform(*high_pass), min(rng.uniform(*low_pass), 0.99 * nyquist)]
            band = scipy.signal.butter(4, corners, btype="bandpass", fs=SAMPLE_RATE, output="sos")
            segment = scipy.signal.sosfilt(band, segment).astype(np.float32)
        return segment


class ColourAugment:
    """A random colour transform of a whole generator sample, drawn from the sample's generator and applied
    alike to its frames and its reference (so the target is what the transformed face should become):
    saturation around each pixel's luma, a gain per channel (white balance) and an overall brightness.

    With a few dozen training identities a generator can learn their colours instead of copying the face it
    is given: on the unseen test faces the round-5 student drew a colour cast of up to 14 levels and 15 % less
    chroma even in the upper half of the crop, which it receives unmasked (docs/training.md, round 7).
    """

    # BGR luma weights (ITU-R BT.601), the grey each pixel's saturation is scaled around.
    _LUMA = (0.114, 0.587, 0.299)

    def __init__(self, saturation=(1.0, 1.0), channel_gain=(1.0, 1.0), brightness=(1.0, 1.0), fit_range=True):
        self.saturation = _range(saturation, "colour saturation")
        self.channel_gain = _range(channel_gain, "colour channel gain")
        self.brightness = _range(brightness, "colour brightness")
        self.fit_range = bool(fit_range)

    @classmethod
    def from_config(cls, section):
        """From a config's data.colour_augment mapping ({saturation, channel_gain, brightness, fit_range}) or
        None."""
        if not section:
            return None
        return cls(section.get("saturation") or (1.0, 1.0), section.get("channel_gain") or (1.0, 1.0),
                   section.get("brightness") or (1.0, 1.0), section.get("fit_range", True))

    def __call__(self, windows, rng):
        """The (3, ...) BGR tensors in [0, 1] of one sample, all transformed by one random draw.

        The generator's output is a sigmoid, so a target outside [0, 1] can never be met: it teaches the
        generator to drive bright (or dark) regions to saturation, and round 9's candidate painted white spots
        on a pale face's cheeks (with saturation up to 1.4 and gains up to 1.25 x 1.2, 16 % of a training
        crop's pixels went above 1 and 6 % below 0 on average). Clipping is no cure either: it gives the
        highlights a hue of their own (round 7's yellow nose tip). With fit_range the whole sample is mapped
        back into [0, 1] by one affine map of all channels alike (only where it left the range), which keeps
        every pixel's colour relations; without it (rounds 7 and 9) values may leave [0, 1].
        """
        saturation = rng.uniform(*self.saturation)
        gains = torch.from_numpy(rng.uniform(*self.channel_gain, size=3) * rng.uniform(*self.brightness)).float()
        luma_weights = torch.tensor(self._LUMA)
        transformed = []
        for window in windows:
            shape = (3,) + (1,) * (window.dim() - 1)
            luma = (window * luma_weights.view(shape)).sum(0, keepdim=True)
            coloured = luma + saturation * (window - luma)
            transformed.append(coloured * gains.view(shape))
        if not self.fit_range:
            return transformed
        low = min(0.0, min(float(t.min()) for t in transformed))
        high = max(1.0, max(float(t.max()) for t in transformed))
        if low == 0.0 and high == 1.0:
            return transformed
        return [(t - low) / (high - low) for t in transformed]


def clip_rms(wav):
    """RMS of a whole clip (its speech level, pauses included)."""
    return max(float(np.sqrt(np.mean(np.asarray(wav, np.float64) ** 2))), 1e-4)


def _range(values, what):
    low, high = (float(v) for v in values)
    if high < low:
        raise ValueError(f"{what} range must be (low, high) with low <= high, got {values}")
    return low, high


def _far_starts(starts, start, min_offset):
    """The window starts at least min_offset (and at least 1) frames from start."""
    return starts[np.abs(starts - start) >= max(1, min_offset)]


def _other_starts(starts, start, min_offset):
    """The window starts at least min_offset frames from start or, in a clip too short for that, every other one."""
    far = _far_starts(starts, start, min_offset)
    return far if len(far) else starts[starts != start]


def _window_jaw(truth, starts):
    """Mean jaw opening of the truth over each window starting at one of starts."""
    jaw = np.asarray(truth["jaw"], np.float64)
    return np.array([jaw[start:start + SYNC_FRAMES].mean() for start in starts])


def mouth_labels(truth, frames, img_size=CROP_SIZE):
    """(articulation (T,3), mouth boxes (T,4) in img_size pixels, has_truth) of the given frames."""
    frames = list(frames)
    if truth is None:
        box = np.array(MOUTH_PRIOR_BOX, np.float32) * img_size
        return (np.zeros((len(frames), SHAPE_DIMENSIONS), np.float32), np.tile(box, (len(frames), 1)), 0.0)
    shapes = np.array([[truth[name][f] for name in SHAPE_NAMES] for f in frames], np.float32)
    scale = img_size / float(truth["crop_size"])
    boxes = np.array([truth["lips_box"][f] for f in frames], np.float32) * scale
    return shapes, boxes, 1.0


@functools.lru_cache(maxsize=4096)
def clip_frame_count(clip_dir):
    return count_frames(clip_dir)


def read_frames(clip_dir, indices, size=CROP_SIZE):
    """(len(indices), size, size, 3) uint8 BGR crops; raises DataError for a missing or unreadable frame."""
    frames = []
    for index in indices:
        path = frame_path(clip_dir, int(index))
        image = cv2.imread(str(path))
        if image is None:
            raise DataError(f"{path}: missing or unreadable frame")
        if image.shape[:2] != (size, size):
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        frames.append(image)
    return np.stack(frames)


def frames_to_tensor(frames):
    """(T, H, W, 3) uint8 BGR -> (3, T, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(3, 0, 1, 2))).float().div_(255.0)


def mask_lower_half(window):
    """A copy of a (3, T, H, W) or (3, H, W) tensor with the lower half zeroed (the part to redraw)."""
    masked = window.clone()
    masked[..., window.shape[-2] // 2:, :] = 0.0
    return masked


def mel_window(mel, start):
    """(1, 80, 16) float32 tensor of the 16 mel columns from ``start``."""
    return torch.from_numpy(np.ascontiguousarray(mel[:, start:start + MEL_STEP_SIZE])).float().unsqueeze(0)


class _ClipSampler(Dataset):
    """What both data sets share: the clip list, seeded per-sample generators and clip fallback."""

    def __init__(self, root, split, seed=0, samples_per_clip=1, img_size=CROP_SIZE, clips=None,
                 audio_augment=None):
        self.root = Path(root)
        self.audio_augment = audio_augment
        self.split = split
        self.clips = list(clips) if clips is not None else read_filelist(self.root, split)
        if not self.clips:
            raise DataError(f"{self.root}: the {split} file list is empty")
        if samples_per_clip < 1:
            raise ValueError(f"samples_per_clip must be >= 1, got {samples_per_clip}")
        self.seed = int(seed)
        self.samples_per_clip = int(samples_per_clip)
        self.img_size = int(img_size)
        self.epoch = 0
        self._warned = set()

    def set_epoch(self, epoch):
        """Draw different windows in each epoch (call before iterating; DataLoader workers see it when
        they start, i.e. at each epoch unless persistent_workers is set: then call it before creating
        the loader's iterator)."""
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.clips) * self.samples_per_clip

    def clip_dir(self, clip_index):
        return self.root / self.clips[clip_index]

    def _starts(self, clip_dir):
        n_frames = clip_frame_count(str(clip_dir))
        if n_frames < SYNC_FRAMES + 1:
            return np.zeros(0, np.int64)
        return valid_starts(n_frames, clip_mel(str(clip_dir)).shape[1])

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        clip_index = index // self.samples_per_clip
        for _ in range(_MAX_ATTEMPTS):
            clip_dir = self.clip_dir(clip_index)
            try:
                starts = self._starts(clip_dir)
                if len(starts) >= 2:
                    return self._sample(clip_index, clip_dir, starts, rng)
                problem = "too short for two 5-frame windows"
            except (DataError, OSError, ValueError) as error:
                problem = str(error)
            if clip_dir not in self._warned:
                self._warned.add(clip_dir)
                warnings.warn(f"skipping clip {clip_dir}: {problem}", stacklevel=2)
            clip_index = int(rng.integers(len(self.clips)))
        raise DataError(f"{self.root}: {_MAX_ATTEMPTS} clips in a row gave no sample; check the data")

    def _mel(self, clip_dir, rng, columns):
        """The clip's mel: cached, or with the columns in range(*columns) recomputed from its augmented
        waveform when augmenting."""
        mel = clip_mel(str(clip_dir))
        if self.audio_augment is None:
            return mel
        return self.audio_augment.mel(clip_audio(str(clip_dir)), rng, columns, mel.shape[1])

    def _other_start(self, starts, start, rng, min_offset):
        others = _other_starts(starts, start, min_offset)
        return int(others[rng.integers(len(others))])


class Wav2LipDataset(_ClipSampler):
    """Generator training samples (dict of tensors):

    face_input (6, T, 96, 96): masked window + reference window; target (3, T, 96, 96);
    mels (T, 1, 80, 16): per-frame windows (training convention); sync_mel (1, 80, 16): the window's mel
    for the SyncNet loss; articulation (T, 3), mouth_box (T, 4), has_truth: see ``mouth_labels``;
    clip, start: which clip (index into ``clips``) and first frame.

    reference_min_offset: the reference window starts at least this many frames away (1 = any other
    window, as Wav2Lip does). reference_rest_fraction: share of samples whose reference window is one of
    the clip's most closed mouths (lowest mean jaw truth), like the still face a robot is given; clips
    without truth always get Wav2Lip's random reference. wide_open_weight k: clips with truth draw their
    window with probability proportional to 1 + k * (its mean jaw opening / the clip's widest window's), so
    wide mouths, rare in speech, are seen more often; clips without truth draw uniformly. mirror: share of
    samples flipped left to right (frames, reference and mouth boxes alike), which doubles the faces seen
    without inventing a colour (colour augmentation did: docs/training.md rounds 7-10).
    """

    def __init__(self, root, split, seed=0, samples_per_clip=1, img_size=CROP_SIZE, reference_min_offset=1,
                 clips=None, audio_augment=None, reference_rest_fraction=0.0, colour_augment=None,
                 wide_open_weight=0.0, mirror=0.0):
        super().__init__(root, split, seed, samples_per_clip, img_size, clips, audio_augment)
        self.colour_augment = colour_augment
        if not 0.0 <= mirror <= 1.0:
            raise ValueError(f"mirror must be in [0, 1], got {mirror}")
        self.mirror = float(mirror)
        if wide_open_weight < 0:
            raise ValueError(f"wide_open_weight must be >= 0, got {wide_open_weight}")
        self.wide_open_weight = float(wide_open_weight)
        self.reference_min_offset = int(reference_min_offset)
        if not 0.0 <= reference_rest_fraction <= 1.0:
            raise ValueError(f"reference_rest_fraction must be in [0, 1], got {reference_rest_fraction}")
        self.reference_rest_fraction = float(reference_rest_fraction)

    def _reference(self, starts, start, truth, rng):
        if truth is not None and self.reference_rest_fraction and rng.random() < self.reference_rest_fraction:
            others = _far_starts(starts, start, self.reference_min_offset)
            if len(others):
                window_jaw = _window_jaw(truth, others)
                rest = others[window_jaw <= np.quantile(window_jaw, 0.2)]
                return int(rest[rng.integers(len(rest))])
        return self._other_start(starts, start, rng, self.reference_min_offset)

    def _window_start(self, starts, truth, rng):
        if truth is None or not self.wide_open_weight:
            return int(starts[rng.integers(len(starts))])
        window_jaw = _window_jaw(truth, starts)
        weight = 1.0 + self.wide_open_weight * window_jaw / max(window_jaw.max(), 1e-6)
        return int(rng.choice(starts, p=weight / weight.sum()))

    def _sample(self, clip_index, clip_dir, starts, rng):
        truth = clip_truth(str(clip_dir))
        start = self._window_start(starts, truth, rng)
        reference = self._reference(starts, start, truth, rng)
        frames = range(start, start + SYNC_FRAMES)
        window = frames_to_tensor(read_frames(clip_dir, frames, self.img_size))
        reference_window = frames_to_tensor(read_frames(clip_dir, range(reference, reference + SYNC_FRAMES),
                                                        self.img_size))
        mel = self._mel(clip_dir, rng, (training_mel_start(start),
                                        max(training_mel_start(start + SYNC_FRAMES - 1), sync_mel_start(start))
                                        + MEL_STEP_SIZE))
        mels = torch.stack([mel_window(mel, training_mel_start(f)) for f in frames])
        articulation, boxes, has_truth = mouth_labels(truth, frames, self.img_size)
        if self.colour_augment is not None:  # drawn last: the other draws stay those of an unaugmented sample
            window, reference_window = self.colour_augment([window, reference_window], rng)
        if self.mirror and rng.random() < self.mirror:  # no draw at 0: earlier recipes keep their samples
            window, reference_window = window.flip(-1), reference_window.flip(-1)
            boxes = np.stack([self.img_size - boxes[:, 2], boxes[:, 1], self.img_size - boxes[:, 0], boxes[:, 3]], 1)
        return {
            "face_input": torch.cat([mask_lower_half(window), reference_window], dim=0),
            "target": window,
            "mels": mels,
            "sync_mel": mel_window(mel, sync_mel_start(start)),
            "articulation": torch.from_numpy(articulation),
            "mouth_box": torch.from_numpy(boxes),
            "has_truth": torch.tensor(has_truth),
            "clip": clip_index,
            "start": start,
        }


class SyncPairDataset(_ClipSampler):
    """Lip-sync expert samples (dict of tensors): mel (1, 80, 16) of the window at ``start`` and face windows,
    each the lower halves of 5 frames stacked on channels (15, 48, 96, the SyncNet input), plus clip, start.

    candidates = 1, Wav2Lip's pairs: faces (15, 48, 96), in_sync (1.0 when the frames are that window's,
    0.0 when they come from another start of the same clip), frames_start. candidates = K > 1, multi-way
    matching (Chung & Zisserman's SyncNet training): faces (K, 15, 48, 96), the first the in-sync window and
    the others K - 1 different starts of the same clip, frames_start (K,). Same-clip candidates share the
    face, the voice and the light, so only the mouth tells them apart.

    positive_fraction: share of in-sync pairs (Wav2Lip: one half; pairs only). off_sync_min_offset: an
    off-sync window starts at least this many frames away (1 = any other window, as Wav2Lip does).
    """

    def __init__(self, root, split, seed=0, samples_per_clip=1, img_size=CROP_SIZE, positive_fraction=0.5,
                 off_sync_min_offset=1, candidates=1, clips=None, audio_augment=None):
        super().__init__(root, split, seed, samples_per_clip, img_size, clips, audio_augment)
        if not 0.0 <= positive_fraction <= 1.0:
            raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction}")
        self.positive_fraction = float(positive_fraction)
        if int(off_sync_min_offset) < 1:
            raise ValueError(f"off_sync_min_offset must be >= 1, got {off_sync_min_offset}")
        self.off_sync_min_offset = int(off_sync_min_offset)
        if int(candidates) < 1:
            raise ValueError(f"candidates must be >= 1, got {candidates}")
        self.candidates = int(candidates)

    def _sample(self, clip_index, clip_dir, starts, rng):
        start = int(starts[rng.integers(len(starts))])
        mel = self._mel(clip_dir, rng, (sync_mel_start(start), sync_mel_start(start) + MEL_STEP_SIZE))
        sample = {"mel": mel_window(mel, sync_mel_start(start)), "clip": clip_index, "start": start}
        if self.candidates == 1:
            in_sync = bool(rng.random() < self.positive_fraction)
            frames_start = start if in_sync else self._other_start(starts, start, rng, self.off_sync_min_offset)
            return {**sample, "faces": self._faces([frames_start], clip_dir)[0],
                    "in_sync": torch.tensor(1.0 if in_sync else 0.0), "frames_start": frames_start}
        others = _other_starts(starts, start, self.off_sync_min_offset)
        # Without repeats while the clip has enough windows: a repeated candidate is a free wrong answer.
        others = rng.choice(others, self.candidates - 1, replace=len(others) < self.candidates - 1)
        frames_starts = [start, *(int(other) for other in others)]
        return {**sample, "faces": self._faces(frames_starts, clip_dir), "frames_start": torch.tensor(frames_starts)}

    def _faces(self, frames_starts, clip_dir):
        """(len(frames_starts), 15, 48, 96) expert inputs of the windows at frames_starts, each frame read once."""
        indices = sorted({index for first in frames_starts for index in range(first, first + SYNC_FRAMES)})
        frames = frames_to_tensor(read_frames(clip_dir, indices, self.img_size))  # (3, N, H, W)
        position = {index: i for i, index in enumerate(indices)}
        windows = torch.stack([frames[:, [position[first + t] for t in range(SYNC_FRAMES)]]
                               for first in frames_starts])
        return syncnet_face_input(windows)
