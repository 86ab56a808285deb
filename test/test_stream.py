"""The streaming core without ROS: frame schedule, equality with offline rendering, bad inputs, overload."""
import math

import numpy as np
import pytest

from lightlip_ros.audio import mel_windows, melspectrogram, resample
from lightlip_ros.face import FaceConfig
from lightlip_ros.pcm import PcmError, StreamingResampler, decode_pcm, float_to_s16
from lightlip_ros.stream import StreamConfig, TalkingFaceStream, frame_lookahead_s, offline_mel_windows
from stream_helpers import SR, T0, FakeClock, RecordingEngine, end_stream, make_core, stream


def check_accounting(core):
    stats = core.stats()
    assert stats.audio_received == stats.audio_consumed + stats.audio_dropped + stats.audio_buffered
    return stats


def chunk_plan(name, total):
    if name == "10ms":
        return [160] * (total // 160 + 1)
    if name == "1s":
        return [SR] * (total // SR + 1)
    rng = np.random.default_rng(7)
    return list(rng.integers(5 * SR // 1000, 300 * SR // 1000 + 1, size=total // 80 + 1))


@pytest.mark.parametrize("chunking", ["10ms", "1s", "random 5-300ms"])
def test_streaming_frames_equal_one_offline_pass(engine, face_image, speech, chunking):
    recorder = RecordingEngine(engine)
    core, clock = make_core(recorder, face_image, idle_fps=0)
    frames = stream(core, clock, speech, chunk_plan(chunking, speech.size))
    frames += end_stream(core, clock, 0.5)
    talking = [f for f in frames if f.talking]
    expected_count = math.ceil(speech.size / 640)
    assert len(talking) == expected_count
    # Offline: one spectrogram of silence(640) + speech + silence, windows k = 0..ceil(n/640)-1, one batch.
    padded = np.concatenate([np.zeros(640, np.float32), speech, np.zeros(SR, np.float32)])
    windows = mel_windows(melspectrogram(padded), expected_count)[:, None]
    np.testing.assert_array_equal(windows.shape, offline_mel_windows(speech).shape)
    assert np.abs(windows - offline_mel_windows(speech)).max() <= 1e-6
    faces = np.broadcast_to(core.faces.face.model_input, (expected_count, 6, 96, 96))
    offline = engine.infer(windows, faces)
    streamed = np.stack(recorder.outputs)
    assert np.abs(streamed - offline).max() <= 1e-5
    # The frames are those predictions pasted.
    for k in (0, expected_count // 2, expected_count - 1):
        np.testing.assert_array_equal(talking[k].image, core.faces.face.paste(streamed[k]))
    # Stamps: the first sample's time + k * 40 ms.
    stamps = np.array([f.stamp_s for f in talking])
    np.testing.assert_allclose(stamps, T0 + 0.04 * np.arange(expected_count), atol=1e-9)
    assert [f.index for f in talking] == list(range(expected_count))
    stats = check_accounting(core)
    assert stats.audio_received == stats.audio_consumed == speech.size and stats.audio_buffered == 0


def test_three_seconds_of_speech_give_75_frames(engine, face_image, speech):
    core, clock = make_core(engine, face_image, idle_fps=5, crossfade_frames=3)
    frames = stream(core, clock, speech[:3 * SR], [320] * 150)
    frames += end_stream(core, clock, 1.0)
    talking = [f for f in frames if f.talking]
    assert len(talking) == 75
    stamps = [f.stamp_s for f in frames]
    assert all(b > a for a, b in zip(stamps, stamps[1:])), "stamps must increase"
    np.testing.assert_allclose(np.diff([f.stamp_s for f in talking]), 0.04, atol=1e-9)
    assert talking[-1].stamp_s == pytest.approx(T0 + 2.96)
    kinds = [f.kind for f in frames]
    assert kinds[75:78] == ["crossfade"] * 3 and set(kinds[78:]) == {"idle"}


def test_frame_is_rendered_as_soon_as_its_window_is_complete(engine, face_image, speech):
    core, clock = make_core(engine, face_image, idle_fps=0)
    first_seen = {}
    for step in range(1, 120):
        clock.now = T0 + step * 0.01
        core.push_audio(speech[(step - 1) * 160:step * 160], stamp_s=T0 + (step - 1) * 0.01)
        for frame in core.poll():
            first_seen[frame.index] = step * 160
    for k in range(20):
        # Frame k's last mel column c = int(3.2 k) + 15 needs padded samples up to 200 c + 400, i.e.
        # speech samples up to 200 c + 400 - 640: about 172 ms after the frame's own time.
        needed = 200 * (int(80 * k / 25) + 15) + 400 - 640
        assert first_seen[k] == 160 * math.ceil(needed / 160), k
        assert frame_lookahead_s(k) == pytest.approx(needed / SR - 0.04 * k)
    assert first_seen[0] == 2880  # frame 0 (stamp T0) appears once 180 ms of audio arrived


def test_latency_is_measured_from_the_completing_chunk(engine, face_image, speech):
    core, clock = make_core(engine, face_image, idle_fps=0)
    stream(core, clock, speech[:2 * SR], [1600] * 20, poll_delay=0.015)
    stats = core.stats()
    assert stats.latency_ms_p50 == pytest.approx(15.0) and stats.latency_ms_p95 == pytest.approx(15.0)
    assert set(stats.stage_ms) == {"mel", "inference", "paste", "total"}
    assert stats.stage_ms["inference"]["mean"] > 0 and stats.stage_ms["paste"]["mean"] > 0
    assert stats.stage_ms["total"]["mean"] >= stats.stage_ms["inference"]["mean"]


def test_gap_in_stamps_starts_a_new_utterance(engine, face_image, speech):
    core, clock = make_core(engine, face_image, idle_fps=0, crossfade_frames=2)
    first, second = speech[:SR], speech[SR:SR + 8000]
    frames = stream(core, clock, first, [1600] * 10)
    frames += stream(core, clock, second, [1600] * 5, start=T0 + 1.5)  # 0.5 s pause between the two
    frames += end_stream(core, clock, 0.6)
    talking = [f for f in frames if f.talking]
    assert [f.utterance for f in talking] == [1] * 25 + [2] * 13
    np.testing.assert_allclose([f.stamp_s for f in talking[25:]], T0 + 1.5 + 0.04 * np.arange(13), atol=1e-9)
    # No crossfade between the utterances (speech goes on); one after the last.
    assert [f.kind for f in frames].count("crossfade") == 2
    assert core.stats().utterances == 2


def test_missing_chunks_are_counted_as_lost_before_the_core(engine, face_image, speech):
    core, clock = make_core(engine, face_image, idle_fps=0)
    chunk, sent = 320, 0
    for index in range(50):  # one second of 20 ms chunks at real time; chunks 20-24 never arrive
        clock.now = T0 + (index + 1) * chunk / SR
        if not 20 <= index < 25:
            core.push_audio(speech[index * chunk:(index + 1) * chunk], stamp_s=T0 + index * chunk / SR)
            core.poll()
        sent += chunk
    end_stream(core, clock)
    stats = check_accounting(core)
    assert stats.audio_lost == 5 * chunk and stats.audio_received + stats.audio_lost == sent
    assert "100 ms of audio (5 chunk(s)) missing" in stats.last_error
    assert stats.utterances == 2


def test_a_pause_is_not_counted_as_loss(engine, face_image, speech):
    core, clock = make_core(engine, face_image, idle_fps=0)
    stream(core, clock, speech[:8000], [320] * 25)
    # 130 ms later (not a whole number of 20 ms chunks) and 0.5 s later (past the gap timeout).
    stream(core, clock, speech[8000:16000], [320] * 25, start=T0 + 0.5 + 0.13)
    stream(core, clock, speech[16000:24000], [320] * 25, start=T0 + 1.63 + 0.5)
    end_stream(core, clock)
    stats = check_accounting(core)
    assert stats.audio_lost == 0 and stats.utterances == 3


def test_speech_stamped_far_ahead_is_reported_and_idle_frames_return_to_the_clock(engine, face_image, speech):
    core, clock = make_core(engine, face_image, idle_fps=5)
    hour = 3600.0
    frames = []
    for offset in range(0, 8000, 800):  # half a second of speech stamped an hour ahead
        clock.now = T0 + (offset + 800) / SR
        core.push_audio(speech[offset:offset + 800], stamp_s=T0 + hour + offset / SR)
        frames += core.poll()
    assert "stamped 3599.9 s ahead of this node's clock" in core.stats().last_error  # arrival 50 ms after the stamp
    frames += end_stream(core, clock, 2.0)
    talking = [f for f in frames if f.talking]
    idle = [f for f in frames if f.kind == "idle"]
    assert talking and talking[0].stamp_s >= T0 + hour  # the audio's own stamps
    assert idle and all(abs(f.stamp_s - T0) < 5.0 for f in idle)


def test_stamps_stepping_back_are_moved_after_the_speech_before(engine, face_image, speech):
    core, clock = make_core(engine, face_image, idle_fps=0)
    frames = stream(core, clock, speech[:SR], [320] * 50)  # T0 .. T0 + 1 s
    clock.now += 0.05
    frames += stream(core, clock, speech[SR:SR + 8000], [320] * 25, start=T0 + 0.2)  # stamped 0.8 s back
    frames += end_stream(core, clock)
    assert "0.80 s before the end of the speech before it" in core.stats().last_error
    stamps = [f.stamp_s for f in frames]
    assert all(b > a for a, b in zip(stamps, stamps[1:])), "stamps never go backwards"
    second = [f for f in frames if f.talking and f.utterance == 2]
    assert len(second) == 13 and second[0].stamp_s == pytest.approx(T0 + 1.0)


def test_idle_frames_after_a_gap(engine, face_image, speech):
    core, clock = make_core(engine, face_image, idle_fps=5, crossfade_frames=4, gap_timeout_s=0.3)
    assert core.state == "idle"
    frames = stream(core, clock, speech[:SR // 2], [800] * 10)
    assert core.state == "talking"
    later = end_stream(core, clock, 0.29)
    assert not [f for f in later if f.kind != "talking"], "the utterance must not end before the gap timeout"
    later += end_stream(core, clock, 2.0)
    assert core.state == "idle"
    kinds = [f.kind for f in later]
    # The utterance ends 0.3 s into the silence; 2 s later 5 idle frames per second have followed.
    assert kinds.count("crossfade") == 4 and kinds.count("idle") in (9, 10)
    crossfade = [f for f in later if f.kind == "crossfade"]
    last_talking = [f for f in frames + later if f.talking][-1]
    idle_image = core.faces.face.image
    distances = [np.abs(f.image.astype(int) - idle_image).mean() for f in [last_talking] + crossfade]
    assert all(b < a for a, b in zip(distances, distances[1:])), "the crossfade must approach the idle face"
    idle = [f for f in later if f.kind == "idle"]
    np.testing.assert_array_equal(idle[0].image, idle_image)
    np.testing.assert_allclose(np.diff([f.stamp_s for f in idle]), 0.2, atol=1e-6)


def test_no_idle_frames_when_idle_rate_is_zero(engine, face_image):
    core, clock = make_core(engine, face_image, idle_fps=0)
    assert end_stream(core, clock, 1.0) == []


def test_waiting_for_face_renders_nothing_then_catches_up(engine, face_image, speech):
    clock = FakeClock()
    core = TalkingFaceStream(engine, StreamConfig(idle_fps=0, max_buffered_s=1.0), clock=clock)
    assert core.state == "waiting_for_face"
    frames = stream(core, clock, speech[:3 * SR], [1600] * 30)
    assert frames == []
    stats = check_accounting(core)
    assert stats.audio_buffered <= SR and stats.audio_dropped >= 2 * SR - 640
    assert core.set_face(face_image).ok
    frames = core.poll()
    # Only the newest second of speech is still shown, the oldest was dropped: the face catches up.
    assert 0 < len(frames) <= 26 and frames[-1].stamp_s > T0 + 2.5
    check_accounting(core)


def test_overload_drops_oldest_audio_and_keeps_the_identity(engine, face_image, speech):
    core, clock = make_core(engine, face_image, idle_fps=0, max_buffered_s=0.5)
    # Audio keeps arriving but nobody polls (rendering stalled): 3 s pile up against a 0.5 s limit.
    offset = 0
    for _ in range(30):
        clock.now += 0.1
        core.push_audio(speech[offset:offset + 1600], stamp_s=T0 + offset / SR)
        offset += 1600
        stats = check_accounting(core)
        assert stats.audio_buffered <= 8000
    assert stats.frames_dropped > 0 and stats.audio_dropped == 640 * stats.frames_dropped
    assert "overload" in stats.last_error
    frames = core.poll()
    # The frames rendered after the jump show the newest audio, in order.
    assert frames and frames[0].index >= stats.frames_dropped
    assert all(b.stamp_s > a.stamp_s for a, b in zip(frames, frames[1:]))
    frames += end_stream(core, clock, 0.5)
    stats = check_accounting(core)
    assert stats.audio_buffered == 0
    assert stats.talking_frames + stats.frames_dropped == math.ceil(48000 / 640)


class HeldEngine:
    """Wraps an engine; each infer call waits until the test releases it, as a slow model would."""

    def __init__(self, engine):
        import threading

        self.engine, self.started, self.release = engine, threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def infer(self, mel, faces):
        self.started.set()
        assert self.release.wait(30), "the test never released the engine"
        return self.engine.infer(mel, faces)


def test_audio_and_faces_are_taken_while_the_engine_runs(engine, face_image, speech):
    import threading

    held = HeldEngine(engine)
    core, clock = make_core(held, face_image, idle_fps=0, max_buffered_s=0.5, max_batch=4)
    for offset in range(0, 8000, 1600):
        core.push_audio(speech[offset:offset + 1600], stamp_s=T0 + offset / SR)
    frames = []
    poller = threading.Thread(target=lambda: frames.extend(core.poll()))
    poller.start()
    assert held.started.wait(30)
    # The engine is busy with frames 0-3: 1.5 s more audio, and a new face, go in meanwhile; the buffer
    # limit drops the frames in flight.
    pusher = threading.Thread(target=lambda: [core.push_audio(speech[o:o + 1600], stamp_s=T0 + o / SR)
                                              for o in range(8000, 32000, 1600)])
    pusher.start()
    pusher.join(10)
    assert not pusher.is_alive(), "push_audio waited for the engine"
    flipped = np.ascontiguousarray(face_image[:, ::-1])
    setter = threading.Thread(target=lambda: core.set_face(flipped))
    setter.start()
    setter.join(10)
    assert not setter.is_alive(), "set_face waited for the engine"
    held.release.set()
    poller.join(30)
    stats = check_accounting(core)
    assert stats.frames_dropped > 0
    rendered = [f.index for f in frames if f.talking]
    assert rendered and min(rendered) >= stats.frames_dropped, "frames dropped in flight must not be published"
    assert rendered == sorted(set(rendered))


def test_ten_megabyte_chunk_is_cut_to_the_buffer(engine, face_image, speech):
    core, clock = make_core(engine, face_image, idle_fps=0, max_buffered_s=2.0)
    stream(core, clock, speech[:8000], [1600] * 5)
    pcm = (np.resize(speech, 5 * 1024 * 1024) * 32767).astype("<i2").tobytes()  # 10 MiB of S16LE
    clock.now += 0.1
    core.push_audio(pcm, stamp_s=T0 + 10.0, sample_rate=SR, sample_format="S16LE", channels=1)
    stats = check_accounting(core)
    assert stats.audio_received == 8000 + 5 * 1024 * 1024
    assert stats.audio_buffered <= 2 * SR
    assert stats.audio_dropped >= 5 * 1024 * 1024 - 2 * SR
    assert "exceeds" in stats.last_error
    frames = core.poll() + end_stream(core, clock, 0.5)
    talking = [f for f in frames if f.talking]
    assert len(talking) <= 50 + 13
    # The newest 2 s are shown with their true time: the chunk's stamp + its duration - 2 s.
    new = [f for f in talking if f.utterance == 2]
    assert new[0].stamp_s == pytest.approx(T0 + 10.0 + 5 * 1024 * 1024 / SR - 2.0)
    assert check_accounting(core).audio_buffered == 0


BAD_CHUNKS = [
    (dict(audio=b"\x00\x01" * 100, sample_format="S24LE"), "unknown sample format"),
    (dict(audio=b"\x00\x01\x02", sample_format="S16LE"), "not a whole number"),
    (dict(audio=b"\x00" * 6, sample_format="F32LE"), "not a whole number"),
    (dict(audio=b"\x00\x01" * 3, sample_format="S16LE", channels=2), "not a whole number"),
    (dict(audio=b"\x00\x01" * 100, sample_format="S16LE", sample_rate=0), "sample rate 0"),
    (dict(audio=b"\x00\x01" * 100, sample_format="S16LE", channels=0), "channel count"),
    (dict(audio=b"", sample_format="S16LE"), "empty"),
    (dict(audio=np.zeros(0, np.float32)), "empty"),
    (dict(audio=np.zeros((10, 2), np.float32)), "1-D float"),
    (dict(audio=b"\x00\x01" * 100), "need a sample_format"),
]


@pytest.mark.parametrize("bad, message", BAD_CHUNKS, ids=[m for _, m in BAD_CHUNKS])
def test_bad_chunks_are_rejected_readably_and_the_stream_goes_on(engine, face_image, speech, bad, message):
    core, clock = make_core(engine, face_image, idle_fps=0)
    frames = stream(core, clock, speech[:4000], [1600] * 3)
    bad = dict(bad)
    audio = bad.pop("audio")
    with pytest.raises(PcmError) as error:
        core.push_audio(audio, stamp_s=T0 + 0.25, **bad)
    assert message in str(error.value) and "\n" not in str(error.value)
    stats = check_accounting(core)
    assert stats.inputs_rejected == 1 and stats.last_error == str(error.value)
    assert stats.audio_received == 4000
    # The stream continues as if the bad chunk had not been sent.
    frames += stream(core, clock, speech[4000:SR], [1600] * 8, start=T0 + 0.25)
    frames += end_stream(core, clock, 0.5)
    assert len([f for f in frames if f.talking]) == 25
    assert check_accounting(core).audio_consumed == SR


def test_nan_floats_are_replaced_by_silence_and_counted(engine, face_image, speech):
    recorder = RecordingEngine(engine)
    core, clock = make_core(recorder, face_image, idle_fps=0)
    chunk = speech[:SR].copy()
    chunk[100:110] = np.nan
    chunk[500] = np.inf
    clock.now = T0 + 1.0
    core.push_audio(chunk.astype("<f4").tobytes(), stamp_s=T0, sample_format="F32LE", channels=1)
    frames = core.poll() + end_stream(core, clock, 0.5)
    stats = check_accounting(core)
    assert stats.nonfinite_samples == 11 and "NaN/Inf" in stats.last_error
    talking = [f for f in frames if f.talking]
    assert len(talking) == 25
    streamed = np.stack(recorder.outputs)
    assert len(streamed) == 25 and np.isfinite(streamed).all()
    clean = chunk.copy()
    clean[~np.isfinite(clean)] = 0
    offline = engine.infer(offline_mel_windows(clean), np.broadcast_to(core.faces.face.model_input, (25, 6, 96, 96)))
    assert np.abs(streamed - offline).max() <= 1e-5


def test_decode_pcm_formats_and_channels():
    stereo = np.array([[1000, -1000], [32767, 32767], [-32768, 0]], "<i2")
    samples, nonfinite = decode_pcm(stereo.tobytes(), "S16LE", 2)
    np.testing.assert_allclose(samples, [0.0, 32767 / 32768, -0.5], atol=1e-7)
    assert samples.dtype == np.float32 and nonfinite == 0
    floats = np.array([0.5, -0.25, np.nan, 1.0], "<f4")
    samples, nonfinite = decode_pcm(floats.tobytes(), "f32le", 1)
    np.testing.assert_array_equal(samples, [0.5, -0.25, 0.0, 1.0])
    assert nonfinite == 1


def test_s16_encoding_is_the_inverse_of_decoding():
    every_value = np.arange(-32768, 32768, dtype="<i2")
    decoded, _ = decode_pcm(every_value.tobytes(), "S16LE", 1)
    np.testing.assert_array_equal(float_to_s16(decoded), every_value)  # exact round trip
    np.testing.assert_array_equal(float_to_s16([1.0, -1.0, 1.7, -3.0, 0.49 / 32768]), [32767, -32768, 32767, -32768, 0])
    assert float_to_s16([0.0]).dtype == np.dtype("<i2")


def test_streaming_resampler_matches_offline_resample(speech):
    audio_48k = resample(speech, SR, 48000)
    resampler = StreamingResampler(48000, SR)
    rng = np.random.default_rng(3)
    pieces, offset = [], 0
    while offset < audio_48k.size:
        size = int(rng.integers(1, 4800))
        pieces.append(resampler.process(audio_48k[offset:offset + size]))
        offset += size
    pieces.append(resampler.flush())
    streamed = np.concatenate(pieces)
    offline = resample(audio_48k, 48000, SR)
    assert abs(streamed.size - offline.size) <= 1
    common = min(streamed.size, offline.size)
    assert np.abs(streamed[:common] - offline[:common]).max() <= 1e-6


def test_48khz_stereo_pcm_stream_renders_the_resampled_speech(engine, face_image, speech):
    core, clock = make_core(engine, face_image, idle_fps=0)
    audio_48k = resample(speech[:SR], SR, 48000)
    pcm = np.clip(np.repeat(audio_48k[:, None], 2, axis=1) * 32767, -32768, 32767).astype("<i2")
    for offset in range(0, pcm.shape[0], 4800):
        clock.now = T0 + (offset + 4800) / 48000
        core.push_audio(pcm[offset:offset + 4800].tobytes(), stamp_s=T0 + offset / 48000, sample_rate=48000,
                        sample_format="S16LE", channels=2)
        core.poll()
    end_stream(core, clock, 0.5)
    stats = check_accounting(core)
    assert abs(stats.audio_received - SR) <= 1 and stats.talking_frames == 25
    assert stats.utterances == 1


def test_sample_rate_change_starts_a_new_utterance(engine, face_image, speech):
    core, clock = make_core(engine, face_image, idle_fps=0)
    stream(core, clock, speech[:8000], [1600] * 5)
    audio_22k = resample(speech[8000:16000], SR, 22050)
    clock.now += 0.5
    core.push_audio(audio_22k, stamp_s=T0 + 0.5, sample_rate=22050)
    core.poll()
    end_stream(core, clock, 0.5)
    stats = check_accounting(core)
    assert stats.utterances == 2 and stats.talking_frames == 13 + math.ceil((stats.audio_received - 8000) / 640)


def test_face_updates_and_rejections(engine, face_image, speech):
    core, clock = make_core(engine, face_image, idle_fps=0)
    assert not core.set_face(face_image).changed
    update = core.set_face(np.full((200, 200, 3), 80, np.uint8))
    assert update.ok and "kept the previous face" in update.note
    assert core.stats().last_error == update.note
    with pytest.raises(ValueError):
        core.set_face(np.zeros((100, 100), np.float64))
    assert core.stats().inputs_rejected == 1
    frames = stream(core, clock, speech[:8000], [1600] * 5)
    assert frames and frames[0].image.shape == face_image.shape


def test_config_rejects_impossible_settings():
    with pytest.raises(ValueError, match="max_buffered_s"):
        StreamConfig(max_buffered_s=0.1)
    with pytest.raises(ValueError, match="max_batch"):
        StreamConfig(max_batch=0)


def test_reconfigure_applies_live(engine, face_image, speech):
    core, clock = make_core(engine, face_image, idle_fps=0, max_buffered_s=2.0)
    prepared = core.faces.face
    core.reconfigure(StreamConfig(idle_fps=0, max_buffered_s=2.0, face=FaceConfig(blend_width_px=0)))
    assert core.faces.face is not prepared and core.faces.face.region == prepared.region
    assert core.faces.face.mask.max() == 1.0 and core.faces.face.mask[-1].min() == 1.0  # a hard paste now
    assert not core.set_face(face_image).changed  # the same image again is still free
    # 1.5 s pile up unrendered; shrinking the buffer to 0.5 s drops the oldest at once.
    for offset in range(0, 24000, 1600):
        clock.now += 0.1
        core.push_audio(speech[offset:offset + 1600], stamp_s=T0 + offset / SR)
    assert check_accounting(core).audio_buffered > 8000
    core.reconfigure(StreamConfig(idle_fps=0, max_buffered_s=0.5))
    stats = check_accounting(core)
    assert stats.audio_buffered <= 8000 and stats.frames_dropped > 0


def test_presentation_queue_releases_frames_at_stamp_plus_delay():
    from lightlip_ros.stream import Frame, PresentationQueue

    image = np.zeros((4, 4, 3), np.uint8)
    queue = PresentationQueue(delay_s=0.25)
    queue.add([Frame(9.0, image, "talking"), Frame(9.96, image, "talking")], 10.0)  # late, on time
    queue.add([Frame(10.0, image, "talking"), Frame(99.0, image, "talking")], 10.0)  # on time, ahead
    queue.add([Frame(10.04, image, "crossfade"), Frame(10.08, image, "idle")], 10.2)
    assert queue.talking_frames == 4
    assert [f.stamp_s for f in queue.due(10.0)] == [9.0]  # late: at once
    assert queue.talking_frames == 3
    assert queue.wait_s(10.0, 1.0) == pytest.approx(0.21)
    assert [f.stamp_s for f in queue.due(10.2)] == []
    assert [f.stamp_s for f in queue.due(10.21)] == [9.96]
    # A stamp ahead of the clock (the publisher's clock runs ahead) waits no longer than the delay.
    assert [f.stamp_s for f in queue.due(10.25)] == [10.0, 99.0]
    assert queue.talking_frames == 0 and len(queue) == 2  # the speech is shown; crossfade and idle remain
    assert [f.stamp_s for f in queue.due(10.33)] == [10.04, 10.08]
    assert queue.wait_s(10.33, 0.5) == 0.5 and len(queue) == 0


def test_a_wave_header_in_front_of_a_chunk_is_stripped():
    import io
    import wave

    from lightlip_ros.pcm import strip_wav_header

    samples = (np.arange(640) - 320).astype("<i2").tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:  # a real WAVE file's header, as a WAVE encoder writes it
        writer.setnchannels(1), writer.setsampwidth(2), writer.setframerate(16000)
        writer.writeframes(samples)
    assert strip_wav_header(buffer.getvalue()) == samples
    assert strip_wav_header(samples) == samples  # later buffers have no header
    with pytest.raises(PcmError, match="without a data chunk"):
        strip_wav_header(buffer.getvalue()[:36])
