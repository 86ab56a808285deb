"""The talking-face node as a real process over real DDS: streaming, remaps, params files, bad input."""
import sys

import numpy as np
import pytest

from conftest import ASSETS
from lightlip_msgs.msg import AudioChunk, TalkStatus
from lightlip_ros.pcm import float_to_s16
from lightlip_ros.ros_common import LATCHED
from node_helpers import Watcher, start_node
from ros_helpers import Process

pytestmark = pytest.mark.ros


def test_streams_real_speech_into_frames_at_40ms_spacing(ros_context, node_env, student_checkpoint, tmp_path):
    seconds = 3.0
    with start_node(node_env, tmp_path / "node.log", "-p", f"model_path:={student_checkpoint}",
                    "-p", "engine:=onnxruntime", "-p", "idle_rate:=0.0") as node:
        watcher = Watcher(ros_context)
        watcher.wait_for_state(TalkStatus.STATE_WAITING_FOR_FACE, process=node)
        assert watcher.status.engine == "onnxruntime", watcher.status.engine_reason
        peer = [sys.executable, "test/peers/stream_speech.py", "--wav", str(ASSETS / "speech.wav"),
                "--image", str(ASSETS / "face.jpg"), "--seconds", str(seconds), "--chunk-ms", "20"]
        with Process(peer, node_env, tmp_path / "streamer.log") as streamer:
            expected = round(seconds * 25)

            def republished():
                return sum(len(m.data) // 2 for _, m in watcher.audio_out)

            def framed():  # each frame goes out just after its audio_out chunk: the frames of every chunk
                return {s for s, _ in watcher.audio_out} <= {s for s, _ in watcher.frames}

            watcher.spin_until(lambda: len(watcher.frames) >= expected - 2 and "done" in streamer.output()
                               and watcher.status.state == TalkStatus.STATE_IDLE
                               and republished() >= seconds * 16000 and framed(), 60,
                               f"{expected} frames, {seconds} s of audio_out and the return to idle", node)
            first_ns = int(streamer.output().split("first_sample_stamp_ns=")[1].split()[0])
    stamps = np.array([stamp for stamp, _ in watcher.frames])
    talking = stamps[stamps < first_ns + int(seconds * 1e9)]
    assert abs(len(talking) - expected) <= 2, f"{len(talking)} frames for {seconds} s of speech"
    assert np.all(np.diff(stamps) > 0), "frame stamps must increase"
    # Exact to the nanosecond: frame k shows the first sample's time + k x 40 ms.
    np.testing.assert_array_equal(talking - first_ns, np.arange(len(talking)) * 40_000_000)
    for _, frame in watcher.frames:
        assert (frame.width, frame.height, frame.encoding) == (512, 512, "bgr8")
    status = watcher.status
    assert status.audio_samples_received == status.audio_samples_consumed + status.audio_samples_dropped \
        + status.audio_samples_buffered
    assert status.audio_samples_consumed == round(seconds * 16000)
    assert status.frames_dropped == 0

    # audio_out: exactly the speech that was sent, in order, each chunk stamped like the frame showing it.
    from lightlip_ros.audio import load_audio

    sent = float_to_s16(load_audio(str(ASSETS / "speech.wav"))[:round(seconds * 16000)])  # as the peer sends it
    chunks = sorted(watcher.audio_out, key=lambda item: item[0])
    audio_out = np.concatenate([np.frombuffer(bytes(m.data), "<i2") for _, m in chunks])
    np.testing.assert_array_equal(audio_out, sent)
    chunk_stamps = np.array([stamp for stamp, _ in chunks])
    ends = chunk_stamps[:-1] + [len(m.data) // 2 * 62500 for _, m in chunks[:-1]]
    np.testing.assert_array_equal(chunk_stamps[1:], ends)  # continuous to the nanosecond
    assert set(chunk_stamps) <= set(stamps.tolist()), "every audio_out chunk has the stamp of a frame"


def _chunk(data, sample_rate=16000, channels=1, sample_format="S16LE", stamp_ns=0):
    chunk = AudioChunk(sample_rate=sample_rate, channels=channels, sample_format=sample_format)
    chunk.header.stamp.sec, chunk.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    chunk.data = bytes(data)
    return chunk


def test_bad_input_is_reported_and_the_node_keeps_working(ros_context, node_env, student_checkpoint, tmp_path):
    import cv2
    from lightlip_ros.audio import load_audio
    from lightlip_ros.image_msgs import bgr_to_image
    from sensor_msgs.msg import Image

    face = cv2.imread(str(ASSETS / "face.jpg"))
    speech = float_to_s16(load_audio(str(ASSETS / "speech.wav"))[:16000])
    with start_node(node_env, tmp_path / "node.log", "-p", f"model_path:={student_checkpoint}",
                    "-p", "idle_rate:=0.0", "-p", "max_buffered_audio:=2.0") as node:
        watcher = Watcher(ros_context)
        audio = watcher.node.create_publisher(AudioChunk, "audio", 100)
        images = watcher.node.create_publisher(Image, "face_image", LATCHED)
        images.publish(bgr_to_image(face))
        watcher.wait_for_state(TalkStatus.STATE_IDLE, process=node)
        watcher.spin_until(lambda: audio.get_subscription_count() > 0, 30, "the node's audio subscription", node)

        rejected = {
            "unknown sample format": _chunk(b"\0" * 64, sample_format="U8"),
            "odd byte count": _chunk(b"\0" * 63),
            "sample rate 0": _chunk(b"\0" * 64, sample_rate=0),
            "channels 0": _chunk(b"\0" * 64, channels=0),
            "empty chunk": _chunk(b""),
        }
        for chunk in rejected.values():
            audio.publish(chunk)
        bad_step = bgr_to_image(face)
        bad_step.step -= 3  # a row shorter than width x 3 bytes
        bad_encoding = bgr_to_image(face)
        bad_encoding.encoding = "yuv422"
        bad_size = bgr_to_image(face)
        bad_size.height += 1  # data shorter than step x height
        watcher.spin_until(lambda: watcher.status.inputs_rejected >= len(rejected), 30,
                           f"{len(rejected)} rejected audio chunks in talk_status", node)
        for count, image in enumerate((bad_step, bad_encoding, bad_size), start=len(rejected) + 1):
            images.publish(image)  # latched (depth 1): one at a time, or a newer one replaces it unsent
            watcher.spin_until(lambda: watcher.status.inputs_rejected >= count, 30,
                               f"{count} rejected inputs in talk_status", node)
        assert watcher.status.inputs_rejected == count
        assert watcher.status.state == TalkStatus.STATE_IDLE, "a rejected image must keep the face"

        # NaN floats are replaced by silence and reported; a 10 MB chunk keeps only the newest 2 s.
        nan_chunk = np.full(1600, np.nan, "<f4")
        audio.publish(_chunk(nan_chunk.tobytes(), sample_format="F32LE"))
        huge = np.zeros(5 * 1024 * 1024, "<i2")  # 10 MB, 328 s at 16 kHz
        audio.publish(_chunk(huge.tobytes()))
        watcher.spin_until(lambda: watcher.status.audio_samples_dropped >= huge.size - 2 * 16000, 30,
                           "the oversized chunk's dropped samples in talk_status", node)
        watcher.spin_until(lambda: watcher.status.state == TalkStatus.STATE_IDLE, 30, "idle after the gap", node)

        # Still answering: real speech afterwards becomes frames.
        before = len(watcher.frames)
        start_ns = watcher.node.get_clock().now().nanoseconds + 10**9
        for offset in range(0, speech.size, 320):
            audio.publish(_chunk(speech[offset:offset + 320].tobytes(), stamp_ns=start_ns + offset * 62500))
        watcher.spin_until(lambda: len(watcher.frames) - before >= 25, 30, "frames from speech after bad input", node)
        status = watcher.status
        assert status.audio_samples_received == status.audio_samples_consumed + status.audio_samples_dropped \
            + status.audio_samples_buffered
    log = node.output()
    for needle in ("unknown sample format", "not a whole number", "sample rate 0", "channel count",
                   "empty audio chunk", "image step", "unsupported image encoding", "image data has"):
        assert needle in log, f"{needle!r} not logged:\n{log[-3000:]}"
    assert node.popen.returncode == 0, "Ctrl-C must end the node cleanly"


def test_corrupt_model_falls_back_to_the_bundled_one(ros_context, node_env, tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 not really a checkpoint")
    with start_node(node_env, tmp_path / "node.log", "-p", f"model_path:={corrupt}") as node:
        watcher = Watcher(ros_context)
        watcher.wait_for_state(TalkStatus.STATE_WAITING_FOR_FACE, process=node)
        status = watcher.status
        assert status.engine in ("onnxruntime", "torch")
        assert "corrupt.pt" in status.engine_reason and "student.pt" in status.engine_reason, status.engine_reason
        assert status.model.endswith("student.pt")
        assert "corrupt.pt unusable, running student.pt" in status.last_error
    assert "corrupt.pt" in node.output(), "the fallback is logged with the reason"


def test_fast_dds_is_configured_only_when_the_user_has_not(tmp_path):
    from lightlip_ros.ros_common import LARGE_FRAMES_PROFILE, configure_fastdds

    environ = {}
    assert "Fast DDS is not configured" in configure_fastdds(environ, cwd=tmp_path)
    assert environ == {"FASTDDS_DEFAULT_PROFILES_FILE": str(LARGE_FRAMES_PROFILE)} and LARGE_FRAMES_PROFILE.is_file()
    for users in ({"FASTDDS_DEFAULT_PROFILES_FILE": ""}, {"FASTRTPS_DEFAULT_PROFILES_FILE": "/robot.xml"},
                  {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}, {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}):
        environ = dict(users)
        assert configure_fastdds(environ, cwd=tmp_path) == "" and environ == users
    (tmp_path / "DEFAULT_FASTDDS_PROFILES.xml").write_text("<dds/>")
    environ = {}
    assert configure_fastdds(environ, cwd=tmp_path) == "" and environ == {}


def test_a_shutdown_from_outside_ends_spinning_quietly_however_early_it_lands(ros_domain):
    """Ctrl-C shuts the context down from rclpy's signal handler at any moment, also while the executor is
    being built (a race that made the node exit with a traceback): spin_until_shutdown returns quietly."""
    import threading

    import rclpy
    from lightlip_ros.ros_common import spin_until_shutdown

    for attempt in range(100):
        context = rclpy.context.Context()
        rclpy.init(context=context, domain_id=ros_domain)
        node = rclpy.create_node(f"spin_{attempt}", context=context)
        node.create_timer(0.001, lambda: None)
        threading.Timer(0.002 + (attempt % 10) * 0.001, context.try_shutdown).start()
        spin_until_shutdown(node)
        assert not context.ok()
        node.destroy_node()


def test_face_sequences_never_end_the_node(ros_context, node_env, student_checkpoint, tmp_path):
    """No face first, then a good one; bad after good; good after bad: over the topic and over set_face."""
    import cv2
    from lightlip_msgs.srv import SetFace
    from lightlip_ros.image_msgs import bgr_to_image
    from sensor_msgs.msg import Image

    face = cv2.imread(str(ASSETS / "face.jpg"))
    blank = np.full((512, 512, 3), 128, np.uint8)  # no face to find
    tiny = cv2.resize(face, (64, 64))  # the face too small to detect
    cv2.imwrite(str(tmp_path / "blank.png"), blank)
    cv2.imwrite(str(tmp_path / "face.png"), face)
    with start_node(node_env, tmp_path / "node.log", "-p", f"model_path:={student_checkpoint}",
                    "-p", "idle_rate:=0.0") as node:
        watcher = Watcher(ros_context)
        images = watcher.node.create_publisher(Image, "face_image", LATCHED)
        client = watcher.node.create_client(SetFace, "set_face")
        watcher.spin_until(lambda: client.service_is_ready(), 30, "the set_face service", node)

        def call(path):
            future = client.call_async(SetFace.Request(path=str(path)))
            watcher.spin_until(future.done, 30, f"set_face({path.name}) answered", node)
            return future.result()

        watcher.wait_for_state(TalkStatus.STATE_WAITING_FOR_FACE, process=node)
        for image in (blank, tiny):  # no face yet: the node keeps waiting for one
            images.publish(bgr_to_image(image))
            watcher.spin_until(lambda: "no face found" in watcher.status.face_note
                               and f"{image.shape[1]}x{image.shape[0]}" in watcher.status.face_note, 30,
                               f"the missing face in the {image.shape[1]}x{image.shape[0]} image reported", node)
        assert watcher.status.state == TalkStatus.STATE_WAITING_FOR_FACE
        images.publish(bgr_to_image(face))  # good after bad
        watcher.wait_for_state(TalkStatus.STATE_IDLE, process=node)
        images.publish(bgr_to_image(blank))  # bad after good keeps the good face
        watcher.spin_until(lambda: "kept the previous face" in watcher.status.face_note, 30, "the kept face", node)
        assert watcher.status.state == TalkStatus.STATE_IDLE

        answer = call(tmp_path / "blank.png")  # the same over the service
        assert not answer.success and "no face found" in answer.message
        answer = call(tmp_path / "face.png")
        assert answer.success, answer.message
        assert not call(tmp_path / "blank.png").success
        assert call(tmp_path / "face.png").success
        assert node.popen.poll() is None, "the node must still run"
    assert node.popen.returncode == 0, node.output()[-3000:]


def _stream(env, tmp_path, name, *args):
    peer = [sys.executable, "test/peers/stream_speech.py", "--wav", str(ASSETS / "speech.wav"),
            "--image", str(ASSETS / "face.jpg"), *args]
    return Process(peer, env, tmp_path / f"{name}.log")


def _sent(streamer):
    return int(streamer.output().split("sent_samples=")[1].split()[0])


def _settled(watcher, speech_samples):
    """All the speech is accounted for (received or lost before the node) and rendered or dropped."""
    status = watcher.status
    return status is not None and status.state == TalkStatus.STATE_IDLE and status.audio_samples_buffered == 0 \
        and status.audio_samples_received + status.audio_samples_lost == speech_samples


def test_ten_times_real_time_with_a_face_stream_loses_nothing(ros_context, node_env, student_checkpoint, tmp_path):
    """30 s of speech at 10x real time in 20 ms chunks, while two faces alternate at 30 Hz: every chunk
    reaches the core, face images are prepared at face_rate and logged at a bounded rate."""
    with start_node(node_env, tmp_path / "node.log", "-p", f"model_path:={student_checkpoint}",
                    "-p", "idle_rate:=0.0") as node:
        watcher = Watcher(ros_context)
        watcher.wait_for_state(TalkStatus.STATE_WAITING_FOR_FACE, process=node)
        with _stream(node_env, tmp_path, "streamer", "--seconds", "5", "--loops", "6", "--speed", "10",
                     "--faces-hz", "30", "--audio-depth", "2000") as streamer:
            watcher.spin_until(lambda: "done" in streamer.output(), 60, "the streamer", node)
            sent = _sent(streamer)
            watcher.spin_until(lambda: _settled(watcher, sent), 120, f"{sent} samples accounted for", node)
    status = watcher.status
    assert sent == 6 * 5 * 16000
    assert status.audio_samples_lost == 0 and status.audio_samples_received == sent
    assert status.audio_samples_received == status.audio_samples_consumed + status.audio_samples_dropped
    faces = node.output().count("face detected at")
    assert 1 <= faces <= 3, f"{faces} 'face detected' lines for a 30 Hz face stream of 3 s"


def test_audio_lost_before_the_node_is_counted_and_warned(ros_context, node_env, student_checkpoint, tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    with start_node(node_env, tmp_path / "node.log", "-p", f"model_path:={student_checkpoint}",
                    "-p", "idle_rate:=0.0") as node:
        watcher = Watcher(ros_context)
        diagnostics = []
        watcher.node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 50)
        watcher.wait_for_state(TalkStatus.STATE_WAITING_FOR_FACE, process=node)
        with _stream(node_env, tmp_path, "streamer", "--seconds", "3", "--skip-chunks", "50:60") as streamer:
            watcher.spin_until(lambda: "done" in streamer.output(), 60, "the streamer", node)
            sent = _sent(streamer)
            watcher.spin_until(lambda: _settled(watcher, 48000), 60, "the speech accounted for", node)

            def warned():
                return any(s.level == DiagnosticStatus.WARN and "lost 0.20 s of audio before the node" in s.message
                           for array in diagnostics for s in array.status)

            watcher.spin_until(warned, 30, "a diagnostics warning about the loss", node)
    status = watcher.status
    assert sent == status.audio_samples_received == 48000 - 10 * 320
    assert status.audio_samples_lost == 10 * 320
    assert "10 chunk(s)) missing" in status.last_error
    assert "lost before this node" in node.output()


def test_a_bare_node_reaches_a_best_effort_viewer(ros_context, node_env, student_checkpoint, tmp_path):
    """Started with no Fast DDS configuration at all (as `ros2 run` does), full-size frames still reach a
    viewer subscribing with sensor-data QoS in another process."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    bare = {key: value for key, value in node_env.items() if key != "FASTDDS_DEFAULT_PROFILES_FILE"}
    with start_node(bare, tmp_path / "node.log", "-p", f"model_path:={student_checkpoint}",
                    "-p", "idle_rate:=0.0") as node:
        watcher = Watcher(ros_context)
        viewed = set()
        watcher.node.create_subscription(Image, "face_frames", lambda m: viewed.add(
            m.header.stamp.sec * 10**9 + m.header.stamp.nanosec), qos_profile_sensor_data)
        watcher.wait_for_state(TalkStatus.STATE_WAITING_FOR_FACE, process=node)
        with _stream(node_env, tmp_path, "streamer", "--seconds", "3") as streamer:
            watcher.spin_until(lambda: "done" in streamer.output(), 60, "the streamer", node)
            first_ns = int(streamer.output().split("first_sample_stamp_ns=")[1].split()[0])
            watcher.spin_until(lambda: _settled(watcher, 48000), 60, "the speech rendered", node)
    talking = [stamp for stamp in viewed if first_ns <= stamp < first_ns + 3 * 10**9]
    assert len(talking) >= 0.9 * 75, f"the best-effort viewer got {len(talking)} of 75 frames"
    assert "Fast DDS is not configured: using" in node.output()


def test_big_faces_compressed_frames_and_a_face_box_outside_the_image(ros_context, node_env, student_checkpoint,
                                                                      tmp_path):
    import cv2
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    from sensor_msgs.msg import CompressedImage

    from lightlip_ros.image_msgs import JPEG_FORMAT, compressed_to_bgr, image_to_bgr

    face = cv2.imread(str(ASSETS / "face.jpg"))
    big = np.zeros((2160, 3840, 3), np.uint8)  # a 4K camera picture with the face in its middle
    big[:, 840:3000] = cv2.resize(face, (2160, 2160), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(tmp_path / "big.png"), big)
    with start_node(node_env, tmp_path / "node.log", "-p", f"model_path:={student_checkpoint}",
                    "-p", "idle_rate:=0.0", "-p", "jpeg_quality:=90") as node:
        watcher = Watcher(ros_context)
        compressed = []
        watcher.node.create_subscription(CompressedImage, "face_frames/compressed", compressed.append, 500)
        watcher.wait_for_state(TalkStatus.STATE_WAITING_FOR_FACE, process=node)
        peer = [sys.executable, "test/peers/stream_speech.py", "--wav", str(ASSETS / "speech.wav"),
                "--image", str(tmp_path / "big.png"), "--seconds", "2"]
        with Process(peer, node_env, tmp_path / "streamer.log") as streamer:
            watcher.spin_until(lambda: "done" in streamer.output(), 60, "the streamer", node)
            watcher.spin_until(lambda: _settled(watcher, 32000) and len(compressed) >= 48, 60,
                               "the speech rendered, raw and compressed", node)
            parameters = AsyncParameterClient(watcher.node, "/talking_face")
            future = parameters.set_parameters([Parameter("face_box", value=[3000, 100, 1000, 1000])])
            watcher.spin_until(future.done, 20, "the parameter service", node)
            outside = future.result().results[0]
            future = parameters.set_parameters([Parameter("face_box", value=[1500, 300, 900, 900])])
            watcher.spin_until(future.done, 20, "the parameter service", node)
            inside = future.result().results[0]
            watcher.spin_until(lambda: "given at" in watcher.status.face_note, 20, "the given box applied", node)
    assert "scaled to 1280x720" in node.output()
    raw = {stamp: image_to_bgr(msg) for stamp, msg in watcher.frames}
    assert {image.shape for image in raw.values()} == {(720, 1280, 3)}
    assert {msg.format for msg in compressed} == {JPEG_FORMAT}
    pairs = [(compressed_to_bgr(msg), raw[msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec])
             for msg in compressed]
    assert all(np.abs(jpeg.astype(int) - frame).mean() < 4 for jpeg, frame in pairs)
    assert not outside.successful and "reaches outside the 3840x2160 image" in outside.reason
    assert inside.successful, inside.reason
    assert "x=500 y=100 300x300" in watcher.status.face_note


def test_audio_common_messages_are_taken_natively(ros_context, node_env, student_checkpoint, tmp_path):
    """ros-drivers' audio_capture publishes AudioDataStamped on audio_stamped, described by AudioInfo on
    audio_info: without info, or with an MP3 coding, chunks get one clear error; with raw PCM ("wave",
    its header in front of the first buffer) the speech renders like AudioChunks."""
    import time

    import cv2
    from audio_common_msgs.msg import AudioDataStamped, AudioInfo
    from sensor_msgs.msg import Image

    from lightlip_ros.audio import load_audio
    from lightlip_ros.image_msgs import bgr_to_image

    pcm = float_to_s16(load_audio(str(ASSETS / "speech.wav"))[:32000])
    wav_header = (b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80>\x00\x00\x00}\x00\x00"
                  b"\x02\x00\x10\x00data\xff\xff\xff\xff")
    with start_node(node_env, tmp_path / "node.log", "-p", f"model_path:={student_checkpoint}",
                    "-p", "idle_rate:=0.0") as node:
        watcher = Watcher(ros_context)
        info_pub = watcher.node.create_publisher(AudioInfo, "audio_info", LATCHED)
        audio = watcher.node.create_publisher(AudioDataStamped, "audio_stamped", 1000)
        faces = watcher.node.create_publisher(Image, "face_image", LATCHED)
        watcher.wait_for_state(TalkStatus.STATE_WAITING_FOR_FACE, process=node)
        assert "audio_common_msgs installed: also taking /audio_stamped" in node.output()
        faces.publish(bgr_to_image(cv2.imread(str(ASSETS / "face.jpg"))))
        watcher.wait_for_state(TalkStatus.STATE_IDLE, process=node)
        watcher.spin_until(lambda: audio.get_subscription_count() > 0, 20, "the audio_stamped subscription", node)

        def chunk(data, stamp_ns=0):
            msg = AudioDataStamped()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
            msg.audio.data = bytes(data)
            return msg

        def send_until(predicate, what, data=pcm[:320].tobytes()):
            deadline = time.monotonic() + 20
            while not predicate():
                assert time.monotonic() < deadline, f"timed out waiting for {what}: {watcher.status}"
                audio.publish(chunk(data))
                until = time.monotonic() + 0.1
                watcher.spin_until(lambda: time.monotonic() >= until, 5, "the next try", node)
        send_until(lambda: "no audio_common_msgs/AudioInfo" in watcher.status.last_error, "the missing info")
        info_pub.publish(AudioInfo(channels=1, sample_rate=16000, sample_format="S16LE", bitrate=256000,
                                   coding_format="mp3"))
        send_until(lambda: "coding_format 'mp3' is not raw PCM" in watcher.status.last_error, "the mp3 error")
        rejected = watcher.status.inputs_rejected
        info_pub.publish(AudioInfo(channels=1, sample_rate=16000, sample_format="S16LE", bitrate=256000,
                                   coding_format="wave"))
        send_until(lambda: watcher.status.audio_samples_received > 0, "raw PCM accepted",
                   data=wav_header + pcm[:320].tobytes())
        probes = watcher.status.audio_samples_received // 320
        watcher.spin_until(lambda: watcher.status.state == TalkStatus.STATE_IDLE, 30, "the probes rendered", node)
        start_ns = watcher.node.get_clock().now().nanoseconds
        started = time.monotonic()
        for index, offset in enumerate(range(0, pcm.size, 320)):
            watcher.spin_until(lambda: time.monotonic() >= started + index * 0.02, 5, "the chunk's time", node)
            audio.publish(chunk(pcm[offset:offset + 320].tobytes(), start_ns + offset * 62500))

        def talking():
            return [stamp for stamp, _ in watcher.frames if start_ns <= stamp < start_ns + 2 * 10**9]

        # The last frames (big messages) may still be on their way when the small status saying idle arrives.
        watcher.spin_until(lambda: watcher.status.audio_samples_received == 320 * probes + pcm.size
                           and watcher.status.state == TalkStatus.STATE_IDLE and len(talking()) >= 50, 60,
                           "the speech rendered: 50 frames", node)
    status = watcher.status
    assert status.inputs_rejected >= rejected >= 2
    assert len(talking()) == 50 and status.audio_samples_lost == 0
