"""The audio front end the public Wav2Lip checkpoints were trained with, offline and streaming.

16 kHz mono speech -> preemphasis 0.97 -> |STFT| (n_fft 800, hop 200, Hann, centred with reflect padding)
-> 80 mel bands (55-7600 Hz, Slaney) -> 20*log10 - 20 dB -> clipped to [-4, 4]. 80 mel columns per second,
so a video frame at 25 fps owns 3.2 columns and sees a 16-column (200 ms) window.
"""
from __future__ import annotations

import functools
from pathlib import Path

import librosa
import numpy as np
import scipy.signal
import soundfile

from .errors import LightLipError

SAMPLE_RATE = 16000
FPS = 25
MEL_STEP_SIZE = 16  # mel columns per generator window
MELS_PER_SECOND = 80
N_MELS = 80
N_FFT = 800
HOP_LENGTH = SAMPLE_RATE // MELS_PER_SECOND  # 200
WIN_LENGTH = 800
STFT_HALF_WINDOW = N_FFT // 2  # centred frames: column c needs samples up to HOP_LENGTH * c + this
PREEMPHASIS = 0.97
FMIN = 55
FMAX = 7600
MIN_LEVEL = 1e-5  # amplitude floor (-100 dB)
REF_LEVEL_DB = 20
MIN_LEVEL_DB = -100
MAX_ABS_VALUE = 4.0
RESAMPLER = "soxr_hq"  # the one resampler used everywhere (librosa's default, backed by libsoxr)

_PREEMPHASIS_B = np.array([1.0, -PREEMPHASIS])
_PREEMPHASIS_A = np.array([1.0])


class AudioError(LightLipError, ValueError):
    """An audio file or array LightLip cannot use."""


@functools.lru_cache(maxsize=1)
def mel_basis() -> np.ndarray:
    """(80, 401) mel filterbank; keyword arguments, as positional ones break on librosa >= 0.10."""
    basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)
    basis.flags.writeable = False
    return basis


def _as_samples(wav) -> np.ndarray:
    wav = np.asarray(wav)
    if wav.ndim != 1:
        raise AudioError(f"expected mono samples of shape (n,), got shape {wav.shape}")
    if not np.issubdtype(wav.dtype, np.floating):
        raise AudioError(f"expected float samples in [-1, 1], got dtype {wav.dtype}")
    return wav.astype(np.float32, copy=False)


def _normalised_mel(magnitude: np.ndarray) -> np.ndarray:
    """STFT magnitudes (401, T) to the normalised log-mel columns (80, T) float32."""
    db = 20.0 * np.log10(np.maximum(MIN_LEVEL, mel_basis() @ magnitude)) - REF_LEVEL_DB
    scaled = 2.0 * MAX_ABS_VALUE * (db - MIN_LEVEL_DB) / -MIN_LEVEL_DB - MAX_ABS_VALUE
    return np.clip(scaled, -MAX_ABS_VALUE, MAX_ABS_VALUE).astype(np.float32)


def _stft_magnitude(signal: np.ndarray, center: bool) -> np.ndarray:
    return np.abs(librosa.stft(signal, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH,
                               window="hann", center=center, pad_mode="reflect"))


def melspectrogram(wav) -> np.ndarray:
    """Normalised log-mel spectrogram (80, 1 + len(wav) // 200) of float 16 kHz mono audio in [-1, 1].

    Samples are taken as float32, as the official pipeline reads them; the arithmetic runs in float64.
    """
    wav = _as_samples(wav)
    if wav.size == 0:
        raise AudioError("cannot compute a mel spectrogram of empty audio")
    emphasised = scipy.signal.lfilter(_PREEMPHASIS_B, _PREEMPHASIS_A, wav)
    return _normalised_mel(_stft_magnitude(emphasised, center=True))


def resample(wav, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Resample float mono audio with libsoxr (high quality) to `target_sr`; float32 out."""
    wav = _as_samples(wav)
    if orig_sr <= 0 or target_sr <= 0:
        raise AudioError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr:
        return wav
    return librosa.resample(wav, orig_sr=orig_sr, target_sr=target_sr, res_type=RESAMPLER).astype(np.float32)


def load_audio(path) -> np.ndarray:
    """Read any file libsndfile reads (WAV, FLAC, OGG, MP3, ...), any rate and channel count, as float32
    16 kHz mono in [-1, 1] (channels averaged)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(f"{path}: cannot read audio ({error})") from error
    if data.shape[0] == 0:
        raise AudioError(f"{path}: holds no audio samples")
    return resample(data.mean(axis=1), rate)


def mel_window_start(frame_index: int, fps: float = FPS) -> int:
    """First mel column of video frame `frame_index` (Wav2Lip's inference convention)."""
    return int(MELS_PER_SECOND * frame_index / fps)


def mel_windows(mel: np.ndarray, n_frames: int, fps: float = FPS) -> np.ndarray:
    """(n_frames, 80, 16) generator windows of a (80, T) mel; a window that would run past the end is the
    last 16 columns, as the official inference does."""
    mel = np.asarray(mel)
    if mel.ndim != 2 or mel.shape[0] != N_MELS:
        raise AudioError(f"expected a mel spectrogram of shape (80, T), got {mel.shape}")
    if mel.shape[1] < MEL_STEP_SIZE:
        raise AudioError(f"a mel window needs {MEL_STEP_SIZE} columns, the spectrogram has {mel.shape[1]}")
    frames = np.arange(n_frames)
    starts = np.minimum((MELS_PER_SECOND * frames / fps).astype(np.int64), mel.shape[1] - MEL_STEP_SIZE)
    windows = np.lib.stride_tricks.sliding_window_view(mel, MEL_STEP_SIZE, axis=1)  # (80, T-15, 16)
    return np.ascontiguousarray(windows[:, starts].transpose(1, 0, 2))


class StreamingMel:
    """Incremental `melspectrogram` for live audio.

    `push(samples)` takes float 16 kHz mono chunks of any size and returns the mel columns (80, k) that became
    complete: column c is centred on sample 200*c and needs samples up to 200*c + 400. `finish()` returns the
    remaining columns, reflect-padded at the end exactly as the offline spectrogram of the whole stream.
    Chunking never changes the result; only the samples still needed are kept.
    """

    def __init__(self):
        self._filter_state = np.zeros(1)  # preemphasis carries across chunks
        self._buffer = np.zeros(0)  # preemphasised samples from absolute index self._offset on
        self._offset = 0
        self.samples_pushed = 0
        self.columns_emitted = 0
        self.finished = False

    @property
    def buffered_samples(self) -> int:
        """Samples held for columns not yet emitted (stays below one chunk + 800)."""
        return self._buffer.size

    def push(self, samples) -> np.ndarray:
        if self.finished:
            raise RuntimeError("StreamingMel.push after finish(); start a new StreamingMel")
        samples = _as_samples(samples)
        emphasised, self._filter_state = scipy.signal.lfilter(_PREEMPHASIS_B, _PREEMPHASIS_A, samples,
                                                              zi=self._filter_state)
        self._buffer = np.concatenate((self._buffer, emphasised))
        self.samples_pushed += samples.size
        # Column c needs samples up to 200*c + 399; column 0 also needs sample 400 for its reflected half.
        half = STFT_HALF_WINDOW
        complete = (self.samples_pushed - half) // HOP_LENGTH + 1 if self.samples_pushed > half else 0
        return self._emit(complete, at_end=False)

    def finish(self) -> np.ndarray:
        """The last columns (those whose window reaches past the end); the stream then takes no more."""
        if self.finished:
            raise RuntimeError("StreamingMel.finish called twice")
        self.finished = True
        total = 1 + self.samples_pushed // HOP_LENGTH if self.samples_pushed else 0
        return self._emit(total, at_end=True)

    def _emit(self, column_count: int, at_end: bool) -> np.ndarray:
        first = self.columns_emitted
        if column_count <= first:
            return np.zeros((N_MELS, 0), np.float32)
        half = STFT_HALF_WINDOW
        index = np.arange(first * HOP_LENGTH - half, (column_count - 1) * HOP_LENGTH + half)
        segment = self._buffer[_reflect(index, self.samples_pushed, at_end) - self._offset]
        columns = _normalised_mel(_stft_magnitude(segment, center=False))
        self.columns_emitted = column_count
        keep_from = max(0, column_count * HOP_LENGTH - half)  # first sample the next column needs
        if keep_from > self._offset:
            self._buffer = self._buffer[keep_from - self._offset:]
            self._offset = keep_from
        return columns


def _reflect(index: np.ndarray, length: int, at_end: bool) -> np.ndarray:
    """Map sample indices outside [0, length) as numpy's 'reflect' padding does (the edge sample is not
    repeated; for very short streams the reflection repeats, period 2*(length-1))."""
    if length == 1:
        return np.zeros_like(index)
    if not at_end:
        return np.abs(index)  # only the start can be exceeded before the stream ends
    period = 2 * (length - 1)
    folded = np.mod(index, period)
    return np.where(folded < length, folded, period - folded)
