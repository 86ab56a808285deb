"""lightlip_msgs across two OS processes over real DDS."""
import sys

import cv2
import numpy as np
import pytest
import soundfile

from conftest import ASSETS
from lightlip_msgs.msg import AudioChunk, TalkStatus
from lightlip_msgs.srv import SetFace
from lightlip_ros.image_msgs import image_to_bgr
from lightlip_ros.ros_common import LATCHED
from ros_helpers import Process, spin_until
from sensor_msgs.msg import Image

pytestmark = pytest.mark.ros


def test_interfaces_have_documented_constants():
    assert (AudioChunk.FORMAT_S16LE, AudioChunk.FORMAT_F32LE) == ("S16LE", "F32LE")
    states = [TalkStatus.STATE_WAITING_FOR_FACE, TalkStatus.STATE_IDLE, TalkStatus.STATE_TALKING,
              TalkStatus.STATE_ERROR]
    assert len(set(states)) == 4
    request = SetFace.Request()
    assert request.path == "" and request.box_width == 0
    assert hasattr(SetFace.Response(), "success")


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
