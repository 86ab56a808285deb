"""Raw PCM chunks to float32 mono, and a streaming resampler whose output ignores chunk boundaries."""
from typing import Tuple

import struct

import numpy as np
import soxr

from .errors import LightLipError

# Sample formats as lightlip_msgs/AudioChunk (and audio_common's AudioInfo) name them:
# name -> (numpy little-endian dtype, scale to [-1, 1]).
SAMPLE_FORMATS = {
    "S16LE": (np.dtype("<i2"), 1.0 / 32768.0),
    "F32LE": (np.dtype("<f4"), 1.0),
}
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768000


class PcmError(LightLipError, ValueError):
    """A chunk of audio that cannot be decoded; str() is one readable line."""


def float_to_s16(samples) -> np.ndarray:
    """Float samples in [-1, 1] to S16LE (little-endian int16): the inverse of decoding S16LE, x 32768,
    rounded, clipped at full scale."""
    return np.clip(np.round(np.asarray(samples, np.float32) * 32768.0), -32768, 32767).astype("<i2")


def zero_nonfinite(samples: np.ndarray) -> int:
    """Sets NaN and infinite samples to 0 in place (a silent sample instead of a poisoned mel); returns
    how many there were."""
    finite = np.isfinite(samples)
    nonfinite = int(samples.size - np.count_nonzero(finite))
    if nonfinite:
        samples[~finite] = 0.0
    return nonfinite


def check_sample_rate(sample_rate) -> int:
    rate = int(sample_rate)
    if rate != sample_rate or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise PcmError(f"sample rate {sample_rate} Hz is not supported "
                       f"(whole numbers from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE})")
    return rate


def strip_wav_header(data: bytes) -> bytes:
    """The PCM after a RIFF/WAVE header at the start of a chunk, or the chunk itself when it has none.

    A WAVE encoder streaming into chunks (audio_common's audio_capture with format "wave") puts the file
    header in front of its first buffer only, with placeholder sizes; Python's wave module expects a
    whole file, so the header's chunks are walked here up to "data".
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return data
    offset = 12
    while offset + 8 <= len(data):
        name, size = data[offset:offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        if name == b"data":
            return data[offset + 8:]
        offset += 8 + size + (size & 1)  # chunks are padded to an even length
    raise PcmError("a WAVE header without a data chunk")


def bytes_per_frame(sample_format: str, channels: int) -> int:
    """Bytes of one sample on every channel; raises PcmError for an unknown format or channel count."""
    spec = SAMPLE_FORMATS.get(str(sample_format).upper())
    if spec is None:
        raise PcmError(f"unknown sample format {sample_format!r} (supported: {', '.join(SAMPLE_FORMATS)})")
    if int(channels) != channels or channels < 1:
        raise PcmError(f"channel count must be at least 1, got {channels}")
    return spec[0].itemsize * int(channels)


def decode_pcm(data, sample_format: str, channels: int) -> Tuple[np.ndarray, int]:
    """Interleaved little-endian PCM bytes -> (float32 mono samples, number of non-finite samples).

    Channels are averaged. Non-finite float samples (NaN, +-Inf) are replaced by 0 rather than rejecting
    the chunk: dropping the chunk would cut the utterance in two, while a few zeroed samples are
    inaudible in the mel; their count is returned so that the caller can report it.
    Raises PcmError with one readable line for an unknown format, a channel count below 1, an empty
    chunk, or a byte count that is not a whole number of samples on every channel.
    """
    frame_bytes = bytes_per_frame(sample_format, channels)
    dtype, scale = SAMPLE_FORMATS[str(sample_format).upper()]
    size = len(data)
    if size == 0:
        raise PcmError("empty audio chunk")
    if size % frame_bytes:
        raise PcmError(f"audio chunk of {size} bytes is not a whole number of {sample_format} samples on "
                       f"{channels} channel(s) ({frame_bytes} bytes each)")
    raw = np.frombuffer(data, dtype=dtype).reshape(-1, channels)
    if channels == 1:
        mono = raw[:, 0].astype(np.float32) * np.float32(scale)
    else:
        mono = raw.mean(axis=1, dtype=np.float32) * np.float32(scale)
    return mono, zero_nonfinite(mono) if dtype.kind == "f" else 0


class StreamingResampler:
    """Resamples a stream chunk by chunk; the concatenated output equals resampling it in one piece.

    soxr keeps the filter state between chunks (libsoxr's streaming API), so chunk boundaries do not
    change a single output sample. Input at the output rate passes through untouched.
    """

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ"):
        self.in_rate, self.out_rate = check_sample_rate(in_rate), int(out_rate)
        self._stream = None
        if self.in_rate != self.out_rate:
            self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality=quality)

    def process(self, samples: np.ndarray) -> np.ndarray:
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(samples, last=False)

    def flush(self) -> np.ndarray:
        """The output still held back by the filter's delay; call once at the end of the stream."""
        if self._stream is None:
            return np.zeros(0, np.float32)
        return self._stream.resample_chunk(np.zeros(0, np.float32), last=True)
