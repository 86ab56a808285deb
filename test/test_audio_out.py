"""Each talking frame carries the speech it shows (the node republishes it on audio_out): the
concatenated frame audio is the consumed audio, in order, nothing lost or duplicated."""
import numpy as np
import pytest

from lightlip_ros.audio import resample
from lightlip_ros.pcm import StreamingResampler
from stream_helpers import SR, T0, end_stream, make_core, stream


def frame_audio(frames):
    talking = [frame for frame in frames if frame.talking]
    return talking, np.concatenate([frame.audio for frame in talking])


@pytest.mark.parametrize("chunks", ["ragged", "one piece"])
def test_frame_audio_is_exactly_the_consumed_speech_at_16k(engine, face_image, speech, chunks):
    audio = speech[:int(2.3 * SR)]
    sizes = np.random.default_rng(3).integers(1, 4000, size=audio.size) if chunks == "ragged" else [audio.size]
    core, clock = make_core(engine, face_image, idle_fps=0, max_buffered_s=5.0)  # one piece fits
    frames = stream(core, clock, audio, sizes) + end_stream(core, clock)
    talking, republished = frame_audio(frames)
    np.testing.assert_array_equal(republished, audio)
    assert core.stats().audio_consumed == audio.size
    # Each frame's audio starts at its own stamp: the chunks are contiguous in time.
    for frame, following in zip(talking, talking[1:]):
        assert following.stamp_s == pytest.approx(frame.stamp_s + frame.audio.size / SR, abs=1e-9)
    assert talking[0].stamp_s == pytest.approx(T0)


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_frame_audio_is_the_resampled_speech_at_other_rates(engine, face_image, speech, rate):
    audio = resample(speech[:2 * SR], SR, rate)
    sizes = np.random.default_rng(rate).integers(rate // 200, rate // 5, size=audio.size)
    core, clock = make_core(engine, face_image, idle_fps=0)
    frames = stream(core, clock, audio, sizes, rate=rate) + end_stream(core, clock)
    _, republished = frame_audio(frames)
    resampler = StreamingResampler(rate, SR)
    expected = np.concatenate([resampler.process(audio), resampler.flush()])
    np.testing.assert_array_equal(republished, expected)
    assert core.stats().audio_consumed == expected.size


def test_dropped_frames_take_their_audio_with_them(engine, face_image, speech):
    """Under overload the audio of dropped frames is not republished; what is republished stays in order
    and each frame's audio is the speech at its stamp."""
    audio = speech[:4 * SR]
    core, clock = make_core(engine, face_image, idle_fps=0, max_buffered_s=0.5)
    clock.now = T0 + audio.size / SR
    core.push_audio(audio, stamp_s=T0)  # 4 s at once into a 0.5 s buffer: the oldest 3.5 s are dropped
    frames = core.poll() + end_stream(core, clock)
    talking, republished = frame_audio(frames)
    stats = core.stats()
    assert republished.size == stats.audio_consumed and stats.audio_dropped > 0
    for frame in talking:
        start = int(round((frame.stamp_s - T0) * SR))
        np.testing.assert_array_equal(frame.audio, audio[start:start + frame.audio.size])
