"""Speech for the synthetic benchmark: espeak-ng audio with exact per-phoneme timings.

The waveform and the phoneme start samples come from one libespeak-ng synthesis run, made in a separate
helper process (``training.synth.espeak_events``: espeak-ng is GPL-3 and is never loaded into LightLip's
own processes). Because espeak-ng reports the sample at which each phoneme starts while it renders the
audio, the timings are exact for the audio written, without forced alignment.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from lightlip_ros.audio import SAMPLE_RATE, resample

from ..layout import DataError
from .visemes import Phoneme

# English accents of espeak-ng 1.51 and its voice variants; a voice is "<accent>+<variant>".
ACCENTS = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")


class Speaker:
    """A running espeak-ng helper process; use as a context manager (or call close())."""

    def __init__(self):
        self._process = subprocess.Popen(
            [sys.executable, "-m", "training.synth.espeak_events"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(Path(__file__).resolve().parents[2]))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._process.poll() is None:
            self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for stream in (self._process.stdout, self._process.stderr):
            stream.close()

    def synthesize(self, text, voice, rate=160, pitch=50):
        """(16 kHz mono float32 samples, [Phoneme]) for ``text`` spoken by ``voice`` at ``rate`` words per
        minute and ``pitch`` (0-100)."""
        request = {"text": text, "voice": voice, "rate": int(rate), "pitch": int(pitch)}
        try:
            self._process.stdin.write(json.dumps(request).encode() + b"\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        except BrokenPipeError:
            line = b""
        if not line:
            error = self._process.stderr.read().decode(errors="replace").strip().splitlines()
            raise DataError("the espeak-ng helper stopped: "
                            + (error[-1] if error else "is libespeak-ng installed (apt-get install espeak-ng)?"))
        reply = json.loads(line)
        if "error" in reply:
            raise DataError(f"espeak-ng: {reply['error']}")
        rate_hz, n_samples = reply["sample_rate"], reply["n_samples"]
        samples = np.frombuffer(self._process.stdout.read(2 * n_samples), "<i2").astype(np.float32) / 32768.0
        wav = resample(samples, rate_hz, SAMPLE_RATE)
        phonemes = []
        events = reply["phonemes"] + [[None, reply["n_samples"]]]
        for (name, start), (_, end) in zip(events[:-1], events[1:]):
            if end > start:
                phonemes.append(Phoneme(name, start / rate_hz, end / rate_hz))
        return wav, phonemes


def pad_utterance(wav, phonemes, before_s, after_s, noise_std, rng):
    """Silence around the utterance (the mouth rests there) and a faint noise floor, as in a recording
    (exact digital silence never occurs in real audio and saturates the mel's -100 dB floor)."""
    before, after = int(round(before_s * SAMPLE_RATE)), int(round(after_s * SAMPLE_RATE))
    padded = np.concatenate([np.zeros(before, np.float32), wav, np.zeros(after, np.float32)])
    padded += rng.normal(0.0, noise_std, padded.shape).astype(np.float32)
    offset = before / SAMPLE_RATE
    shifted = [Phoneme(p.name, p.start + offset, p.end + offset) for p in phonemes]
    return np.clip(padded, -1.0, 1.0), shifted
