"""Speech for the synthetic benchmark from two speech engines, each with exact per-phoneme timings.

A voice is named ``<engine>:<voice>``; a name without an engine is an espeak-ng voice.

- espeak-ng (formant synthesis, many accents and variants): the waveform and the phoneme start samples come
  from one libespeak-ng synthesis run, made in a separate helper process (``training/data/synth/espeak_events.py``:
  espeak-ng is GPL-3 and is never loaded into LightLip's own processes). espeak-ng reports the sample at
  which each phoneme starts while it renders the audio, so the timings are exact for the audio written.
- Festival (Debian ``festival`` with ``festvox-kallpc16k``, ``festvox-kdlpc16k``: diphone voices cut from
  recordings of two American men; ``festvox-us-slt-hts``: an HMM voice trained on a woman's CMU ARCTIC
  recordings; all under permissive licences that allow use and redistribution with the notice kept): the
  utterance's Segment relation gives each phone's end time in the waveform it synthesised, again exact.
  Festival's phones (the US "radio" set, ARPAbet) are renamed to espeak-ng's mnemonics, the names the mouth
  shapes (training.data.synth.visemes) are defined for.

Both run as separate programs, one process per utterance, so every clip is reproducible.
"""
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from lightlip_ros.audio import SAMPLE_RATE, resample
from lightlip_ros.errors import tool_failure

from ..layout import DataError
from .visemes import Phoneme

ESPEAK = "espeak"
FESTIVAL = "festival"
# Festival voices (the Scheme function that selects each) and whether they take intonation targets.
FESTIVAL_VOICES = {"kal_diphone": "voice_kal_diphone", "ked_diphone": "voice_ked_diphone",
                   "cmu_us_slt_arctic_hts": "voice_cmu_us_slt_arctic_hts"}
_FESTIVAL_DIPHONE = ("kal_diphone", "ked_diphone")
# ARPAbet (Festival's US phone set, and CMU's dictionaries) -> espeak-ng mnemonic of the same sound.
ARPABET_TO_ESPEAK = {
    "aa": "A:", "ae": "a", "ah": "V", "ao": "O:", "aw": "aU", "ax": "@", "axr": "3", "ay": "aI", "eh": "E",
    "er": "3:", "ey": "eI", "ih": "I", "iy": "i:", "ow": "oU", "oy": "OI", "uh": "U", "uw": "u:",
    "ch": "tS", "dh": "D", "th": "T", "hh": "h", "hv": "h", "jh": "dZ", "ng": "N", "sh": "S", "y": "j",
    "zh": "Z", "dx": "t", "el": "@L", "em": "m", "en": "n", "nx": "n", "pau": "_:", "h#": "_:", "sil": "_:",
}

# English accents of espeak-ng 1.51 and its voice variants; a voice is "<accent>+<variant>".
ACCENTS = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
_HELPER = Path(__file__).resolve().with_name("espeak_events.py")
_TIMEOUT_S = 60


def speech_engine(voice):
    """(engine, voice name) of a voice such as "festival:kal_diphone" or "en-us+m3" (espeak-ng)."""
    engine, sep, name = voice.partition(":")
    return (engine, name) if sep else (ESPEAK, voice)


def synthesize(text, voice, rate=160, pitch=50):
    """(16 kHz mono float32 samples, [Phoneme]) for ``text`` spoken by ``voice`` at ``rate`` words per
    minute and ``pitch`` (0-100, 50 = the voice's own). Phoneme names are espeak-ng mnemonics whatever the
    engine. The same arguments always give the same result."""
    engine, name = speech_engine(voice)
    if engine == ESPEAK:
        return _espeak(text, name, rate, pitch)
    if engine == FESTIVAL:
        return _festival(text, name, rate, pitch)
    raise DataError(f"unknown speech engine {engine!r} in voice {voice!r} (espeak or festival)")


def _espeak(text, voice, rate, pitch):
    request = json.dumps({"text": text, "voice": voice, "rate": int(rate), "pitch": int(pitch)}).encode()
    try:
        # -I: isolated mode, so the helper imports nothing from LightLip or the user's site.
        result = subprocess.run([sys.executable, "-I", str(_HELPER)], input=request + b"\n",
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired as error:
        raise DataError(f"espeak-ng took more than {_TIMEOUT_S} s for {text!r}") from error
    header, _, payload = result.stdout.partition(b"\n")
    if result.returncode != 0 or not header:
        raise DataError("the espeak-ng helper failed: " + tool_failure(
            result.stderr, "is libespeak-ng installed (apt-get install espeak-ng)?"))
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


def _scheme_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _festival(text, voice, rate, pitch):
    if voice not in FESTIVAL_VOICES:
        raise DataError(f"festival has no voice {voice!r} here (known: {', '.join(FESTIVAL_VOICES)})")
    if shutil.which("festival") is None:
        raise DataError("festival is not installed (apt-get install festival festvox-kallpc16k "
                        "festvox-kdlpc16k festvox-us-slt-hts)")
    with tempfile.TemporaryDirectory(prefix="lightlip-festival-") as folder:
        wav_path = Path(folder) / "speech.wav"
        # Duration_Stretch scales every phone's duration: 160 wpm is the voice's own pace.
        lines = [f"({FESTIVAL_VOICES[voice]})", f"(Parameter.set 'Duration_Stretch {160.0 / max(rate, 1):.4f})"]
        if voice in _FESTIVAL_DIPHONE:  # their intonation model takes a target mean and range (Hz)
            mean = 105.0 * 2.0 ** ((pitch - 50) / 50.0)
            lines.append(f"(set! int_lr_params '((target_f0_mean {mean:.1f}) (target_f0_std {0.15 * mean:.1f}) "
                         "(model_f0_mean 170) (model_f0_std 34)))")
        lines += [f"(set! utt (utt.synth (Utterance Text {_scheme_string(text)})))",
                  f"(utt.save.wave utt {_scheme_string(str(wav_path))} 'riff)",
                  "(mapcar (lambda (s) (format t \"%s %f\\n\" (item.name s) (item.feat s \"end\"))) "
                  "(utt.relation.items utt 'Segment))"]
        script = Path(folder) / "say.scm"
        script.write_text("\n".join(lines) + "\n")
        try:
            result = subprocess.run(["festival", "-b", str(script)], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, timeout=_TIMEOUT_S)
        except subprocess.TimeoutExpired as error:
            raise DataError(f"festival took more than {_TIMEOUT_S} s for {text!r}") from error
        if result.returncode != 0 or not wav_path.is_file():
            raise DataError("festival failed: " + tool_failure(result.stderr, f"no audio for {text!r}"))
        samples, rate_hz = soundfile.read(str(wav_path), dtype="float32", always_2d=True)
    phonemes, start = [], 0.0
    for line in result.stdout.decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        end = float(parts[1])
        if end > start:
            phonemes.append(Phoneme(ARPABET_TO_ESPEAK.get(parts[0], parts[0]), start, end))
        start = max(start, end)
    if not phonemes:
        raise DataError(f"festival gave no phone timings for {text!r}")
    return resample(samples[:, 0], rate_hz, SAMPLE_RATE), phonemes


def pad_utterance(wav, phonemes, before_s, after_s, noise_std, rng):
    """Silence around the utterance (the mouth rests there) and a faint noise floor, as in a recording
    (exact digital silence never occurs in real audio and saturates the mel's -100 dB floor)."""
    before, after = int(round(before_s * SAMPLE_RATE)), int(round(after_s * SAMPLE_RATE))
    padded = np.concatenate([np.zeros(before, np.float32), wav, np.zeros(after, np.float32)])
    padded += rng.normal(0.0, noise_std, padded.shape).astype(np.float32)
    offset = before / SAMPLE_RATE
    shifted = [Phoneme(p.name, p.start + offset, p.end + offset) for p in phonemes]
    return np.clip(padded, -1.0, 1.0), shifted
