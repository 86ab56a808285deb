"""The web display without a browser: audio conversion, the server's per-browser queues, and
face_display_node as a process (page, WebSocket protocol, clock pongs, remapped topics, live parameters,
Ctrl-C, unusable ports), driven by an aiohttp client."""
import asyncio
import json
import re
import socket
import subprocess
import sys
import time

import aiohttp
import cv2
import numpy as np
import pytest

from conftest import ASSETS, REPO_ROOT
from lightlip_msgs.msg import AudioChunk, TalkStatus
from lightlip_ros.display import KIND_AUDIO, KIND_FRAME, PACKET_HEADER, DisplayServer
from lightlip_ros.face_display_node import browser_audio
from lightlip_ros.pcm import PcmError
from ros_helpers import Process, spin_until

RECEIVE_TIMEOUT_S = 20.0


def chunk(samples, sample_format, rate=16000):
    samples = np.asarray(samples)
    msg = AudioChunk(sample_rate=rate, channels=samples.shape[1], sample_format=sample_format)
    dtype = "<i2" if sample_format == "S16LE" else "<f4"
    msg.data = samples.astype(dtype).tobytes()
    return msg


def test_audio_chunks_become_mono_float_for_the_browser():
    stereo = np.array([[100, 300], [-32768, -32768]])
    np.testing.assert_array_equal(browser_audio(chunk(stereo, "S16LE")), np.array([200, -32768]) / 32768)
    floats = np.array([[0.5, 0.25], [-1.0, -1.0]])
    np.testing.assert_array_equal(browser_audio(chunk(floats, "F32LE")), [0.375, -1.0])


@pytest.mark.parametrize("change, message", [
    (dict(sample_format="U8"), "unknown sample format 'U8'"),
    (dict(sample_rate=2000), "sample rate 2000 Hz is below what browsers play"),
    (dict(channels=3), "not a whole number of S16LE samples on 3 channel(s)"),
])
def test_unplayable_audio_chunks_are_explained(change, message):
    msg = chunk(np.zeros((4, 1)), "S16LE")
    for field, value in change.items():
        setattr(msg, field, value)
    with pytest.raises(PcmError, match=re.escape(message)):
        browser_audio(msg)


class RecordingLogger:
    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(("info", text))

    def warning(self, text):
        self.lines.append(("warning", text))


def unpack(packet):
    kind, sample_rate, stamp, sequence = PACKET_HEADER.unpack_from(packet)
    return kind, sample_rate, stamp, sequence, packet[PACKET_HEADER.size:]


def wait_for(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


def test_a_slow_browser_loses_its_oldest_frames_never_its_audio():
    logger = RecordingLogger()
    server = DisplayServer("127.0.0.1", 0, clock=time.time, logger=logger, max_queued_frames=3)
    server.start()
    frames, audio_chunks = 120, 40
    frame_payload = np.random.default_rng(0).integers(0, 256, 256 * 1024, dtype=np.uint8).tobytes()

    async def slow_browser():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{server.port}/ws") as websocket:
                hello = await websocket.receive_json(timeout=RECEIVE_TIMEOUT_S)
                assert hello["type"] == "hello"
                await asyncio.to_thread(wait_for, lambda: server.browser_count == 1, 10, "the browser")
                # The page does not read while 30 MB are published: TCP backs up, the queue overflows.
                for index in range(frames):
                    server.publish_frame(1000.0 + index * 0.04, frame_payload)
                    if index % 3 == 0:
                        server.publish_audio(1000.0 + index * 0.04, 16000, np.zeros(640, "<f4").tobytes())
                await asyncio.to_thread(
                    wait_for, lambda: server.stats()["frames_received"] == frames, 10, "the frames")
                sequences, audio_received, reported = [], 0, None
                while sequences[-1:] != [frames - 1] or reported is None or reported["frames_dropped"] < (
                        frames - len(sequences)):
                    message = await websocket.receive(timeout=RECEIVE_TIMEOUT_S)
                    if message.type == aiohttp.WSMsgType.BINARY:
                        kind, _, stamp, sequence, payload = unpack(message.data)
                        if kind == KIND_FRAME:
                            assert payload == frame_payload and stamp == pytest.approx(1000.0 + sequence * 0.04)
                            sequences.append(sequence)
                        else:
                            audio_received += 1
                    elif json.loads(message.data)["type"] == "server":
                        reported = json.loads(message.data)
                return sequences, audio_received, reported

    try:
        sequences, audio_received, reported = asyncio.run(slow_browser())
    finally:
        server.stop()
    dropped = frames - len(sequences)
    assert dropped > 0, "the test did not make the browser slow"
    assert sequences == sorted(sequences) and sequences[-1] == frames - 1  # the newest frames survive
    assert audio_received == audio_chunks
    assert reported["frames_dropped"] == dropped == server.stats()["frames_dropped"]
    assert reported["audio_chunks_dropped"] == 0
    assert any(level == "warning" and "reads too slowly" in text for level, text in logger.lines)


@pytest.mark.ros
def test_a_port_in_use_or_an_impossible_port_ends_the_node_with_one_line(ros_env, tmp_path):
    env = dict(ros_env, PYTHONPATH=str(REPO_ROOT))
    node = [sys.executable, "-m", "lightlip_ros.face_display_node", "--ros-args", "-p"]
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        busy = subprocess.run(node + [f"port:={port}"], env=env, capture_output=True, text=True, timeout=60)
    impossible = subprocess.run(node + ["port:=70000"], env=env, capture_output=True, text=True, timeout=60)
    for result in (busy, impossible):
        assert result.returncode == 1
        assert "Traceback" not in result.stderr + result.stdout
        assert len((result.stderr + result.stdout).strip().splitlines()) == 1
    assert f"cannot listen on 127.0.0.1 port {port}" in busy.stderr
    assert "port out of range" in impossible.stderr


@pytest.mark.ros
def test_node_serves_the_page_and_streams_what_it_receives(ros_context, ros_env, tmp_path):
    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from lightlip_ros.image_msgs import bgr_to_image
    from sensor_msgs.msg import Image

    env = dict(ros_env, PYTHONPATH=str(REPO_ROOT))
    argv = [sys.executable, "-m", "lightlip_ros.face_display_node", "--ros-args", "-r", "__ns:=/robot",
            "-r", "face_frames:=lips", "-p", "port:=0", "-p", "presentation_delay_ms:=350"]
    face = cv2.imread(str(ASSETS / "face.jpg"))[200:360, 180:380]  # small: one DDS fragment
    speech = np.stack([np.linspace(-0.5, 0.5, 441), np.linspace(0.5, -0.5, 441) * 0.5], axis=1)

    node = rclpy.create_node("display_feeder", context=ros_context)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    frames = node.create_publisher(Image, "/robot/lips", reliable)
    audio = node.create_publisher(AudioChunk, "/robot/audio_out", reliable)
    status = node.create_publisher(TalkStatus, "/robot/talk_status", latched)
    parameters = AsyncParameterClient(node, "/robot/face_display")

    with Process(argv, env, tmp_path / "face_display.log") as display:
        wait_for(lambda: re.search(r"face display at (http://\S+/)", display.output())
                 or display.popen.poll() is not None, 30, "the display's address")
        url = re.search(r"face display at (http://\S+/)", display.output()).group(1)
        assert "frames /robot/lips (or /robot/lips/compressed when offered), audio /robot/audio_out, " \
               "status /robot/talk_status" in display.output()

        async def browser():
            async with aiohttp.ClientSession() as session:
                async with session.get(url) as page:
                    assert page.status == 200 and '<canvas id="face"' in await page.text()
                async with session.get(url + "static/display.js") as script:
                    assert script.status == 200 and "lightlipStats" in await script.text()
                async with session.ws_connect(url + "ws") as websocket:
                    received = {}

                    async def receive_until(predicate):
                        deadline = time.monotonic() + RECEIVE_TIMEOUT_S
                        while not predicate():
                            assert time.monotonic() < deadline, f"got only {sorted(received)}"
                            message = await websocket.receive(timeout=RECEIVE_TIMEOUT_S)
                            assert message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), message
                            if message.type == aiohttp.WSMsgType.BINARY:
                                kind = unpack(message.data)[0]
                                received["frame" if kind == KIND_FRAME else "audio"] = unpack(message.data)
                            else:
                                content = json.loads(message.data)
                                received[content["type"]] = content
                        return received

                    await receive_until(lambda: "hello" in received)
                    assert received["hello"]["presentation_delay_ms"] == 350
                    assert received["hello"]["play_audio"] is True and received["hello"]["auto_delay"] is False

                    await websocket.send_json({"type": "ping", "page_time": 123.5})
                    await receive_until(lambda: "pong" in received)
                    assert received["pong"]["page_time"] == 123.5
                    assert received["pong"]["server_time"] == pytest.approx(time.time(), abs=2.0)

                    spin_until(node, lambda: min(frames.get_subscription_count(), audio.get_subscription_count(),
                                                 status.get_subscription_count()) > 0, 20,
                               "the display's subscriptions")
                    image = bgr_to_image(face)
                    image.header.stamp.sec, image.header.stamp.nanosec = int(time.time()), 40_000_000

                    async def stream_frames():
                        # A stream, as frames are: best-effort delivery may miss the first ones.
                        while "frame" not in received:
                            frames.publish(image)
                            await asyncio.sleep(0.1)

                    streaming = asyncio.ensure_future(stream_frames())
                    speech_chunk = chunk(speech, "F32LE", rate=22050)
                    speech_chunk.header.stamp = image.header.stamp
                    audio.publish(speech_chunk)
                    status.publish(TalkStatus(state=TalkStatus.STATE_TALKING, state_name="talking",
                                              engine="onnxruntime", precision="int8", fps=24.5,
                                              latency_ms_p50=31.0, latency_ms_p95=48.0))
                    await receive_until(lambda: {"frame", "audio", "talk_status"} <= received.keys())
                    await streaming

                    future = parameters.set_parameters([Parameter("presentation_delay_ms", value=500),
                                                        Parameter("port", value=1234)])
                    spin_until(node, future.done, 20, "the parameter service")
                    results = future.result().results
                    await receive_until(lambda: "config" in received)
                    return received, results, image.header.stamp

        received, results, stamp = asyncio.run(browser())
        assert display.stop() == 0
    assert "Traceback" not in display.output()
    node.destroy_node()

    expected_stamp = stamp.sec + stamp.nanosec * 1e-9
    kind, sample_rate, frame_stamp, sequence, jpeg = received["frame"]
    assert (kind, sample_rate, frame_stamp) == (KIND_FRAME, 0, expected_stamp)
    shown = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert shown.shape == face.shape and np.abs(shown.astype(int) - face).mean() < 4

    kind, sample_rate, audio_stamp, sequence, pcm = received["audio"]
    assert (kind, sample_rate, audio_stamp, sequence) == (KIND_AUDIO, 22050, expected_stamp, 0)
    np.testing.assert_allclose(np.frombuffer(pcm, "<f4"), speech.mean(axis=1), atol=1e-6)

    assert received["talk_status"]["engine"] == "onnxruntime" and received["talk_status"]["fps"] == 24.5
    assert received["talk_status"]["state"] == "talking" and received["talk_status"]["latency_ms_p95"] == 48.0
    assert [result.successful for result in results] == [True, False]  # port is read-only
    assert received["config"]["presentation_delay_ms"] == 500


@pytest.mark.ros
def test_node_forwards_the_offered_compressed_stream_as_it_is(ros_context, ros_env, tmp_path):
    """A publisher of face_frames/compressed (the talking-face node's JPEG stream) makes the display take
    it: the browser gets the publisher's JPEG bytes unchanged and the raw subscription ends."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from lightlip_ros.image_msgs import bgr_to_compressed, bgr_to_image
    from sensor_msgs.msg import CompressedImage, Image

    env = dict(ros_env, PYTHONPATH=str(REPO_ROOT))
    argv = [sys.executable, "-m", "lightlip_ros.face_display_node", "--ros-args", "-r", "__ns:=/robot",
            "-p", "port:=0"]
    face = cv2.imread(str(ASSETS / "face.jpg"))[200:360, 180:380]
    node = rclpy.create_node("compressed_feeder", context=ros_context)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    raw = node.create_publisher(Image, "/robot/face_frames", reliable)
    compressed = node.create_publisher(CompressedImage, "/robot/face_frames/compressed", reliable)
    with Process(argv, env, tmp_path / "face_display.log") as display:
        wait_for(lambda: re.search(r"face display at (http://\S+/)", display.output())
                 or display.popen.poll() is not None, 30, "the display's address")
        url = re.search(r"face display at (http://\S+/)", display.output()).group(1)

        async def browser():
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(url + "ws") as websocket:
                    spin_until(node, lambda: compressed.get_subscription_count() > 0, 20,
                               "the display's subscription to the compressed stream")
                    frames = []
                    for index in range(1, 200):
                        stamp = (int(time.time()), index * 40_000_000 % 10**9)
                        jpeg = bgr_to_compressed(face, quality=37)
                        jpeg.header.stamp.sec, jpeg.header.stamp.nanosec = stamp
                        image = bgr_to_image(face)
                        image.header = jpeg.header
                        compressed.publish(jpeg)
                        raw.publish(image)
                        try:
                            message = await websocket.receive(timeout=0.1)
                        except asyncio.TimeoutError:
                            continue
                        if message.type == aiohttp.WSMsgType.BINARY and unpack(message.data)[0] == KIND_FRAME:
                            frames.append((unpack(message.data)[4], bytes(jpeg.data)))
                        if len(frames) >= 5:
                            return frames
                    raise AssertionError(f"only {len(frames)} frames reached the page")

        frames = asyncio.run(browser())
        wait_for(lambda: "frames from /robot/face_frames/compressed" in display.output(), 10, "the switch logged")
        assert display.stop() == 0
    node.destroy_node()
    # After the switch the page gets the publisher's JPEG itself (quality 37, not the display's 85).
    assert any(shown == sent for shown, sent in frames[-3:])
