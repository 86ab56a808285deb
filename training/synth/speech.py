"""Speech for the synthetic benchmark: espeak-ng audio with exact per-phoneme timings.

The waveform and the phoneme start samples come from one libespeak-ng synthesis run, made in a separate
helper process (``training/synth/espeak_events.py``: espeak-ng is GPL-3 and is never loaded into LightLip's
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
_HELPER = Path(__file__).resolve().with_name("espeak_events.py")
_TIMEOUT_S = 60


def synthesize(text, voice, rate=160, pitch=50):
    """(16 kHz mono float32 samples, [Phoneme]) for ``text`` spoken by ``voice`` (e.g. "en-us+m3") at
    ``rate`` words per minute and ``pitch`` (0-100). The same arguments always give the same result."""
    request = json.dumps({"text": text, "voice": voice, "rate": int(rate), "pitch": int(pitch)}).encode()
    try:
        # -I: isolated mode, so the helper imports nothing from LightLip or the user's site.
        result = subprocess.run([sys.executable, "-I", str(_HELPER)], input=request + b"\n",
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired as error:
        raise DataError(f"espeak-ng took more than {_TIMEOUT_S} s for {text!r}") from error
    header, _, payload = result.stdout.partition(b"\n")
    if result.returncode != 0 or not header:
        error = result.stderr.decode(errors="replace").strip().splitlines()
        raise DataError("the espeak-ng helper failed: "
                        + (error[-1] if error else "is libespeak-ng installed (apt-get install espeak-ng)?"))
    reply = json.loads(header)
    if "error" in reply:
        raise DataError(f"espeak-ng: {reply['error']}")
    rate_hz, n_samples = reply["sample_rate"], reply["n_samples"]
    samples = np.frombuffer(payload[:2 * n_samples], np.int16).astype(np.float32) / 32768.0
    wav = resample(samples, rate_hz, SAMPLE_RATE)
    phonemes = []
    events = reply["phonemes"] + [[None, n_samples]]
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
