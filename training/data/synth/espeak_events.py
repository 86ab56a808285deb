"""Helper program: synthesise speech with libespeak-ng and report its phoneme events.

espeak-ng is GPL-3, so LightLip never loads it into its own processes: this module runs only as a separate
program, run by file path with no LightLip imports, one process per utterance, by ``training.data.synth.speech``.
The request is one JSON line on stdin ``{"text", "voice", "rate", "pitch"}``; the helper answers one JSON
line ``{"sample_rate", "n_samples", "phonemes": [[name, start_sample], ...]}`` followed by the waveform as
n_samples native-endian int16 values, or ``{"error": "..."}`` alone.

One process per utterance because libespeak-ng keeps synthesis state between utterances in a process: the
same request twice gives slightly different samples. A fresh process makes every clip reproducible.

The phoneme events come from the same synthesis run as the audio (espeak-ng reports the sample at which each
phoneme starts), so the timings are exact for the waveform written, with no alignment step.
"""
import ctypes
import ctypes.util
import json
import sys

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_PITCH = 3
_POS_CHARACTER = 1
_CHARS_UTF8 = 1


class _Event(ctypes.Structure):
    """espeak_EVENT from speak_lib.h (the union ``id`` read as the 8-byte phoneme name)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                  ctypes.POINTER(_Event))


def _load_library():
    name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    return ctypes.CDLL(name)


class _Synthesizer:
    def __init__(self):
        self.lib = _load_library()
        self.sample_rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT)
        if self.sample_rate <= 0:
            raise RuntimeError("espeak_Initialize failed")
        self._chunks = []
        self._phonemes = []
        self._callback = _SynthCallback(self._on_synth)  # keep a reference: espeak-ng holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav, n_samples, events):
        if n_samples > 0:
            self._chunks.append(ctypes.string_at(wav, 2 * n_samples))
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                self._phonemes.append([event.id.decode("utf-8", "replace"), int(event.sample)])
            i += 1
        return 0

    def synthesize(self, text, voice, rate, pitch):
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        self.lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        self._chunks, self._phonemes = [], []
        data = text.encode("utf-8")
        status = self.lib.espeak_Synth(ctypes.c_char_p(data), len(data) + 1, 0, _POS_CHARACTER, 0,
                                       _CHARS_UTF8, None, None)
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status}")
        self.lib.espeak_Synchronize()
        return b"".join(self._chunks), self._phonemes


def main():
    try:
        request = json.loads(sys.stdin.readline())
        synthesizer = _Synthesizer()
        payload, phonemes = synthesizer.synthesize(request["text"], request["voice"], request["rate"],
                                                   request["pitch"])
        reply = {"sample_rate": synthesizer.sample_rate, "n_samples": len(payload) // 2, "phonemes": phonemes}
    except (KeyError, ValueError, RuntimeError, OSError) as error:
        reply, payload = {"error": str(error)}, b""
    sys.stdout.buffer.write(json.dumps(reply).encode() + b"\n" + payload)
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
