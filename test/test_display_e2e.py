"""End to end as a viewer sees it: the real talking-face node fed 10 s of speech at real time, the web
display showing its frames and playing its audio_out in headless Chromium, sound and picture in sync."""
import sys

import numpy as np
import pytest
import soundfile

from conftest import ASSETS
from display_helpers import SYNC_TOLERANCE_MS, DisplaySession, describe_offsets, sync_offsets
from lightlip_msgs.msg import TalkStatus
from node_helpers import Watcher, start_node
from ros_helpers import Process

pytestmark = pytest.mark.ros


def test_real_node_and_display_keep_sound_and_picture_in_sync(ros_context, node_env, student_checkpoint,
                                                              tmp_path):
    seconds = 10
    expected = seconds * 25
    speech, rate = soundfile.read(ASSETS / "speech.wav", dtype="float32")
    long_speech = tmp_path / "speech_10s.wav"
    soundfile.write(long_speech, np.tile(speech, int(np.ceil(seconds * rate / speech.size))), rate)

    # The page presents frames and sound at stamp + its own delay, so the node publishes each frame as soon
    # as it is rendered (presentation_delay 0: a node-side delay would only stack on the display's). An
    # utterance's last frames wait for gap_timeout (their windows reach past the speech), so the lag of its
    # tail is gap_timeout + ~0.17 s look-ahead (0.47 s at the default 0.3); with 0.1 s every lag stays well
    # inside the display's 500 ms minus the browser's sound output latency (~50 ms), stalls of a loaded
    # 2-core machine included.
    node_args = ["-r", "__ns:=/robot", "-p", f"model_path:={student_checkpoint}", "-p", "idle_rate:=0.0",
                 "-p", "gap_timeout:=0.1", "-p", "presentation_delay:=0.0"]
    with start_node(node_env, tmp_path / "node.log", *node_args) as node, \
            DisplaySession(node_env, tmp_path, namespace="robot",
                           parameters=["presentation_delay_ms:=500"]) as display:
        Watcher(ros_context, prefix="/robot").wait_for_state(TalkStatus.STATE_WAITING_FOR_FACE, process=node)
        streamer = [sys.executable, "test/peers/stream_speech.py", "--wav", str(long_speech),
                    "--image", str(ASSETS / "face.jpg"), "--seconds", str(seconds), "--ros-args", "-r", "__ns:=/robot"]
        with Process(streamer, node_env, tmp_path / "streamer.log") as peer:
            display.wait_until(
                lambda c: c["framesReceived"] >= expected and c["audioChunksReceived"] >= expected
                and c["framesRendered"] + c["framesSkipped"] >= c["framesDecoded"] and "done" in peer.output(),
                seconds + 60, f"{expected} frames and audio chunks from the node to arrive and be shown")
        stats = display.stats()
    assert node.popen.returncode == 0 and display.exit_code == 0

    # Every sample of the speech reached the page as audio_out, in order and on time.
    lags = np.array([frame["lagMs"] for frame in stats["frames"]])
    audio = {k: v for k, v in stats.items() if k.startswith("audio") and k != "audio"}
    print(f"\npage audio counters: {audio}")
    assert stats["audioChunksScheduled"] >= expected and stats["audioChunksLate"] == 0
    offsets = sync_offsets(stats)
    print(f"\nreal node -> display, audio-to-picture offset over {len(offsets)} frames: {describe_offsets(offsets)}; "
          f"stamp-to-arrival lag: first frame {lags[0]:.0f} ms, median {np.median(lags):.0f}, max {lags.max():.0f}")
    assert len(offsets) >= 0.95 * expected
    assert np.mean(np.abs(offsets) <= SYNC_TOLERANCE_MS) >= 0.95
