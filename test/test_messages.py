"""lightlip_msgs across two OS processes over real DDS."""
import re
import sys

import cv2
import numpy as np
import pytest
import soundfile

from conftest import ASSETS, REPO_ROOT
from lightlip_msgs.msg import AudioChunk, TalkStatus
from lightlip_msgs.srv import SetFace
from lightlip_ros.engines import ENGINE_NAMES, PRECISIONS
from lightlip_ros.image_msgs import image_to_bgr
from lightlip_ros.pcm import SAMPLE_FORMATS
from lightlip_ros.ros_common import LATCHED
from lightlip_ros.talking_face_node import STATE_NAMES
from ros_helpers import Process, spin_until
from sensor_msgs.msg import Image

pytestmark = pytest.mark.ros


def documented_values(msg_file, field_line):
    """The quoted values in the comment block right above `field_line` of an interface file."""
    lines = (REPO_ROOT / "lightlip_msgs" / msg_file).read_text().splitlines()
    comment = []
    for line in reversed(lines[:lines.index(field_line)]):
        if not line.startswith("#"):
            break
        comment.insert(0, line)
    return re.findall(r'"([^"]+)"', "\n".join(comment))


def test_interfaces_have_documented_constants():
    # AudioChunk's format constants are exactly the formats the decoder reads.
    assert {AudioChunk.FORMAT_S16LE, AudioChunk.FORMAT_F32LE} == set(SAMPLE_FORMATS)
    # Each TalkStatus.STATE_* constant has the state_name its comment documents, and the node publishes it.
    constants = {name: getattr(TalkStatus, name) for name in dir(TalkStatus) if name.startswith("STATE_")}
    assert sorted(constants.values()) == sorted(STATE_NAMES) == list(range(len(constants)))
    documented_names = documented_values("msg/TalkStatus.msg", "uint8 state")
    assert [STATE_NAMES[value] for value in sorted(STATE_NAMES)] == documented_names
    assert all(STATE_NAMES[value] == name.removeprefix("STATE_").lower() for name, value in constants.items())
    # The engine and precision names the message documents are the engines' vocabulary.
    assert documented_values("msg/TalkStatus.msg", "string engine") == list(ENGINE_NAMES) + list(PRECISIONS)
    request = SetFace.Request()
    assert request.path == "" and (request.box_x, request.box_y, request.box_width, request.box_height) == (0,) * 4


def test_audio_chunk_and_image_cross_processes_intact(ros_context, ros_env, tmp_path):
    wav, image_path = ASSETS / "speech.wav", ASSETS / "face.jpg"
    expected_samples, expected_rate = soundfile.read(wav, dtype="int16", always_2d=True)
    expected_image = cv2.imread(str(image_path))

    import rclpy
    node = rclpy.create_node("receiver", context=ros_context)
    received = {}
    node.create_subscription(AudioChunk, "audio", lambda m: received.setdefault("audio", m), LATCHED)
    node.create_subscription(Image, "face_image", lambda m: received.setdefault("image", m), LATCHED)
    peer = [sys.executable, "test/peers/publish_speech_and_face.py", "--wav", str(wav),
            "--image", str(image_path)]
    with Process(peer, ros_env, tmp_path / "publisher.log") as publisher:
        spin_until(node, lambda: len(received) == 2 or publisher.popen.poll() is not None, 30,
                   "the AudioChunk and the Image from the other process")
        assert len(received) == 2, publisher.output()

    chunk = received["audio"]
    assert chunk.sample_rate == expected_rate and chunk.channels == 1
    assert chunk.sample_format == "S16LE" and chunk.header.frame_id == "test_speaker"
    samples = np.frombuffer(bytes(chunk.data), dtype="<i2").reshape(-1, chunk.channels)
    np.testing.assert_array_equal(samples, expected_samples)

    image = received["image"]
    assert (image.width, image.height, image.encoding) == (512, 512, "bgr8")
    np.testing.assert_array_equal(image_to_bgr(image), expected_image)
    node.destroy_node()
