"""The talking-face node as a real process over real DDS: streaming, remaps, params files, bad input."""
import math
import sys

import numpy as np
import pytest
import torch

from conftest import ASSETS
from lightlip_msgs.msg import AudioChunk, TalkStatus
from lightlip_ros.models import save_generator, student
from node_helpers import LATCHED, Watcher, start_node
from ros_helpers import Process

pytestmark = pytest.mark.ros


@pytest.fixture(scope="session")
def student_checkpoint(tmp_path_factory):
    """The paper's student with seeded random weights: real size, real code paths, no training needed."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "student.pt"
    save_generator(student(), path, note="random weights for tests")
    return path


@pytest.fixture
def node_env(ros_env, tmp_path_factory):
    # ONNX exports of the test checkpoint are cached per test session, not in the user's home.
    return dict(ros_env, XDG_CACHE_HOME=str(tmp_path_factory.getbasetemp() / "cache"))


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
            watcher.spin_until(lambda: len(watcher.frames) >= expected - 2 and "done" in streamer.output()
                               and watcher.status.state == TalkStatus.STATE_IDLE, 60,
                               f"{expected} frames and the return to idle", node)
            first_ns = int(streamer.output().split("first_sample_stamp_ns=")[1].split()[0])
    stamps = np.array([stamp for stamp, _ in watcher.frames])
    talking = stamps[stamps < first_ns + int(seconds * 1e9)]
    assert abs(len(talking) - expected) <= 2, f"{len(talking)} frames for {seconds} s of speech"
    assert np.all(np.diff(stamps) > 0), "frame stamps must increase"
    np.testing.assert_allclose(np.diff(talking), 40e6, atol=1e5)
    assert abs(int(talking[0]) - first_ns) < 1e6, "the first frame shows the first sample's time"
    for _, frame in watcher.frames:
        assert (frame.width, frame.height, frame.encoding) == (512, 512, "bgr8")
    status = watcher.status
    assert status.audio_samples_received == status.audio_samples_consumed + status.audio_samples_dropped \
        + status.audio_samples_buffered
    assert status.audio_samples_consumed == round(seconds * 16000)
    assert status.frames_dropped == 0
