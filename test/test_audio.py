"""The audio front end against an independent numpy implementation of Wav2Lip's formulas, loading,
resampling, the mel window convention and StreamingMel's chunk independence."""
import contextlib

import numpy as np
import pytest
import soundfile

from conftest import ASSETS, SHARED_DATA
from lightlip_ros.audio import (FPS, MEL_STEP_SIZE, MELS_PER_SECOND, SAMPLE_RATE, AudioError, StreamingMel,
                                load_audio, mel_window_start, mel_windows, melspectrogram, resample)

SPEECH_CLIPS = sorted((SHARED_DATA / "speech").glob("*.wav")) if (SHARED_DATA / "speech").is_dir() else []


# ---- independent reference: numpy only (no librosa, no scipy.signal) ----

def _slaney_hz_to_mel(hz):
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log, linear)


def _slaney_mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * (200.0 / 3)
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log, linear)


def _reference_filterbank(sr=16000, n_fft=800, n_mels=80, fmin=55.0, fmax=7600.0):
    """Slaney-style triangular filters, area-normalised (the Auditory Toolbox definition)."""
    bin_hz = np.arange(n_fft // 2 + 1) * sr / n_fft
    edges = _slaney_mel_to_hz(np.linspace(_slaney_hz_to_mel(fmin), _slaney_hz_to_mel(fmax), n_mels + 2))
    filters = np.zeros((n_mels, bin_hz.size))
    for m in range(n_mels):
        low, centre, high = edges[m], edges[m + 1], edges[m + 2]
        rising = (bin_hz - low) / (centre - low)
        falling = (high - bin_hz) / (high - centre)
        filters[m] = np.maximum(0.0, np.minimum(rising, falling)) * 2.0 / (high - low)
    return filters


def _reference_mel(wav):
    x = wav.astype(np.float64)
    emphasised = np.concatenate(([x[0]], x[1:] - 0.97 * x[:-1]))
    padded = np.pad(emphasised, 400, mode="reflect")
    n_frames = 1 + (padded.size - 800) // 200
    frames = np.stack([padded[i * 200:i * 200 + 800] for i in range(n_frames)])
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(800) / 800)  # periodic Hann
    magnitude = np.abs(np.fft.rfft(frames * hann, axis=1)).T
    db = 20.0 * np.log10(np.maximum(1e-5, _reference_filterbank() @ magnitude)) - 20.0
    return np.clip(8.0 * (db + 100.0) / 100.0 - 4.0, -4.0, 4.0)


@pytest.fixture(scope="module")
def speech_mel(speech):
    return melspectrogram(speech)


def test_bundled_speech_loads_as_16k_mono_float(speech):
    info = soundfile.info(str(ASSETS / "speech.wav"))
    assert speech.dtype == np.float32 and speech.ndim == 1
    assert speech.size == info.frames  # already 16 kHz mono: no resampling
    assert 0.05 < np.abs(speech).max() <= 1.0


def test_mel_matches_independent_implementation_on_bundled_speech(speech, speech_mel):
    reference = _reference_mel(speech)
    assert speech_mel.dtype == np.float32
    assert speech_mel.shape == (80, 1 + speech.size // 200) == reference.shape
    assert np.abs(speech_mel - reference).max() < 1e-5
    # Real speech spans the range: silence at the floor, voiced frames well above it.
    assert speech_mel.min() == -4.0 and speech_mel.max() > 0.5


@pytest.mark.parametrize("clip", SPEECH_CLIPS or [None], ids=lambda p: p.name if p else "absent")
def test_mel_matches_independent_implementation_on_real_speech(clip):
    if clip is None:
        pytest.skip(f"development speech clips not present at {SHARED_DATA / 'speech'}")
    stereo, rate = soundfile.read(str(clip), dtype="float32", always_2d=True)
    wav = load_audio(clip)
    assert rate == SAMPLE_RATE and stereo.shape[1] == 2
    np.testing.assert_allclose(wav, stereo.mean(axis=1), atol=1e-7)
    mel = melspectrogram(wav)
    assert mel.shape == (80, 1 + wav.size // 200)
    assert np.abs(mel - _reference_mel(wav)).max() < 1e-5


def test_mel_uses_reflect_padding_at_both_ends(speech):
    # Constant (zero) padding, librosa >= 0.10's default, changes exactly the edge columns.
    wav = speech[16000:24000]
    mel = melspectrogram(wav)
    x = wav.astype(np.float64)
    emphasised = np.concatenate(([x[0]], x[1:] - 0.97 * x[:-1]))
    zero_padded = np.pad(emphasised, 400)
    first = np.abs(np.fft.rfft(zero_padded[:800] * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(800) / 800))))
    db = 20 * np.log10(np.maximum(1e-5, _reference_filterbank() @ first)) - 20
    assert np.abs(np.clip(8 * (db + 100) / 100 - 4, -4, 4) - mel[:, 0]).max() > 0.01
    assert np.abs(mel - _reference_mel(wav)).max() < 1e-5


def test_mel_rejects_integer_stereo_and_empty_input():
    with pytest.raises(AudioError, match="float"):
        melspectrogram(np.zeros(1600, dtype=np.int16))
    with pytest.raises(AudioError, match="mono"):
        melspectrogram(np.zeros((1600, 2), dtype=np.float32))
    with pytest.raises(AudioError, match="empty"):
        melspectrogram(np.zeros(0, dtype=np.float32))


def _write_tone(path, rate, channels, seconds=1.0, hz=440.0):
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.5 * np.sin(2 * np.pi * hz * t)
    data = np.stack([tone * (1.0 if c == 0 else 0.5) for c in range(channels)], axis=1)
    soundfile.write(str(path), data, rate, subtype="FLOAT")
    return tone


@pytest.mark.parametrize("rate,channels", [(44100, 2), (48000, 1), (8000, 3), (22050, 2)])
def test_load_audio_downmixes_and_resamples_any_file(tmp_path, rate, channels):
    path = tmp_path / f"tone_{rate}_{channels}.wav"
    _write_tone(path, rate, channels)
    wav = load_audio(path)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert abs(wav.size - SAMPLE_RATE) <= 1
    # Same 440 Hz tone at 16 kHz; amplitude is the channel mean, edges excluded (filter transients).
    gain = np.mean([1.0] + [0.5] * (channels - 1))
    expected = gain * 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(wav.size) / SAMPLE_RATE)
    assert np.abs(wav[800:-800] - expected[800:-800]).max() < 2e-3


def test_resample_keeps_the_band_and_removes_aliases():
    rate = 48000
    t = np.arange(rate) / rate
    wav = (0.4 * np.sin(2 * np.pi * 1000 * t) + 0.4 * np.sin(2 * np.pi * 11000 * t)).astype(np.float32)
    out = resample(wav, rate)
    assert out.dtype == np.float32 and out.size == SAMPLE_RATE
    spectrum = np.abs(np.fft.rfft(out[1000:-1000] * np.hanning(out.size - 2000)))
    freqs = np.fft.rfftfreq(out.size - 2000, 1 / SAMPLE_RATE)
    in_band = spectrum[np.abs(freqs - 1000) < 20].max()
    alias = spectrum[np.abs(freqs - 5000) < 20].max()  # 11 kHz would fold to 5 kHz without filtering
    assert alias < 1e-3 * in_band
    assert np.array_equal(resample(out, SAMPLE_RATE), out)  # already 16 kHz: unchanged


def test_load_audio_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.wav"
    with pytest.raises(AudioError, match="missing.wav: no such audio file"):
        load_audio(missing)
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio at all")
    with pytest.raises(AudioError, match="notes.wav: cannot read audio"):
        load_audio(not_audio)


def test_mel_window_start_is_the_inference_convention():
    assert MELS_PER_SECOND == 80 and FPS == 25 and MEL_STEP_SIZE == 16
    assert [mel_window_start(i) for i in range(6)] == [0, 3, 6, 9, 12, 16]
    assert mel_window_start(25) == 80 and mel_window_start(30, fps=30) == 80


def _official_inference_windows(mel, fps):
    """Wav2Lip's inference loop, restated: windows until one runs past the end, which takes the last 16."""
    chunks, i = [], 0
    while True:
        start = int(i * 80.0 / fps)
        if start + 16 > mel.shape[1]:
            chunks.append(mel[:, mel.shape[1] - 16:])
            return np.stack(chunks)
        chunks.append(mel[:, start:start + 16])
        i += 1


@pytest.mark.parametrize("fps", [25, 30])
def test_mel_windows_match_the_official_inference_loop(speech_mel, fps):
    official = _official_inference_windows(speech_mel, fps)
    windows = mel_windows(speech_mel, len(official), fps=fps)
    assert windows.shape == (len(official), 80, 16) and windows.dtype == np.float32
    assert np.array_equal(windows, official)
    # Frames past the audio keep the last window.
    extra = mel_windows(speech_mel, len(official) + 3, fps=fps)
    assert np.array_equal(extra[-1], speech_mel[:, -16:]) and np.array_equal(extra[:-3], official)


def test_mel_windows_reject_short_or_misshapen_mels():
    with pytest.raises(AudioError, match="16 columns"):
        mel_windows(np.zeros((80, 10), np.float32), 1)
    with pytest.raises(AudioError, match=r"\(80, T\)"):
        mel_windows(np.zeros((40, 100), np.float32), 1)


def _complete_columns(pushed):
    """Columns whose STFT frame lies inside the first `pushed` samples (column 0 reflects sample 400)."""
    return 0 if pushed <= 400 else (pushed - 400) // 200 + 1


def _stream(wav, chunk_sizes):
    stream = StreamingMel()
    outputs, pushed, peak_buffer = [], 0, 0
    for size in chunk_sizes:
        chunk = wav[pushed:pushed + size]
        columns = stream.push(chunk)
        pushed += chunk.size
        outputs.append(columns)
        assert columns.shape[0] == 80 and columns.dtype == np.float32
        assert stream.columns_emitted == _complete_columns(pushed)
        peak_buffer = max(peak_buffer, stream.buffered_samples - chunk.size)
        if pushed >= wav.size:
            break
    assert pushed == wav.size
    outputs.append(stream.finish())
    return np.concatenate(outputs, axis=1), peak_buffer


def _chunks(kind, total, rng):
    if kind == "random":
        return list(rng.integers(80, 4801, size=total // 80 + 1))  # 5 to 300 ms
    return [kind] * (total // kind + 1)


@pytest.mark.parametrize("kind", [1, 160, 3200, "random"])
def test_streaming_mel_equals_offline_for_any_chunking(speech, speech_mel, kind):
    wav = speech[:24000] if kind == 1 else speech  # single samples: 1.5 s keeps the test quick
    offline = speech_mel if kind != 1 else melspectrogram(wav)
    rng = np.random.default_rng(7)
    streamed, peak_buffer = _stream(wav, _chunks(kind, wav.size, rng))
    assert streamed.shape == offline.shape
    assert np.abs(streamed - offline).max() <= 1e-5
    assert peak_buffer <= 800  # memory bounded: consumed samples are dropped


def test_streaming_columns_are_final_when_emitted(speech):
    # Each column emitted mid-stream already equals the offline column of the whole stream.
    offline = melspectrogram(speech)
    stream = StreamingMel()
    emitted = np.concatenate([stream.push(speech[:12345]), stream.push(speech[12345:30001])], axis=1)
    assert emitted.shape[1] == _complete_columns(30001)
    assert np.abs(emitted - offline[:, :emitted.shape[1]]).max() <= 1e-5


@pytest.mark.parametrize("length", [1, 2, 150, 400, 401, 599, 799, 1000, 1203])
def test_streaming_mel_handles_streams_shorter_than_a_window(length):
    wav = (0.3 * np.sin(np.arange(length) * 0.37)).astype(np.float32)
    stream = StreamingMel()
    streamed = np.concatenate([stream.push(wav[i:i + 97]) for i in range(0, length, 97)] + [stream.finish()], 1)
    with pytest.warns(UserWarning) if length < 800 else contextlib.nullcontext():  # librosa: n_fft > length
        offline = melspectrogram(wav)
    assert streamed.shape == offline.shape
    assert np.abs(streamed - offline).max() <= 1e-5


def test_streaming_mel_refuses_input_after_finish():
    stream = StreamingMel()
    stream.push(np.zeros(1000, np.float32))
    stream.finish()
    with pytest.raises(RuntimeError, match="after finish"):
        stream.push(np.zeros(10, np.float32))
