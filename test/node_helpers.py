"""Starting the talking-face node as its own process and watching what it publishes."""
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from lightlip_msgs.msg import AudioChunk, TalkStatus
from ros_helpers import Process, console_script
from sensor_msgs.msg import Image


def start_node(env, log_path, *ros_args):
    return Process([console_script("talking_face_node"), "--ros-args", *ros_args], env, log_path)


class Watcher:
    """Collects frames and statuses of one talking-face node (topics relative to `prefix`)."""

    def __init__(self, context, prefix="", frames_topic="face_frames"):
        self.node = rclpy.create_node("watcher", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.frames = []  # (stamp ns, message)
        self.audio_out = []  # (stamp ns, message)
        self.statuses = []

        def join(name):
            return name if name.startswith("/") else (prefix.rstrip("/") + "/" + name if prefix else name)

        self.node.create_subscription(Image, join(frames_topic), self._on_frame, QoSProfile(depth=500))
        self.node.create_subscription(AudioChunk, join("audio_out"), self._on_audio_out, QoSProfile(depth=500))
        self.node.create_subscription(TalkStatus, join("talk_status"), self.statuses.append,
                                      QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                                                 durability=DurabilityPolicy.TRANSIENT_LOCAL))

    def _on_frame(self, msg):
        self.frames.append((msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, msg))

    def _on_audio_out(self, msg):
        self.audio_out.append((msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, msg))

    @property
    def status(self):
        return self.statuses[-1] if self.statuses else None

    def spin_until(self, predicate, timeout_s, what, process=None):
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if process is not None and process.popen.poll() is not None:
                raise AssertionError(f"node exited ({process.popen.returncode}) while waiting for {what}:\n"
                                     f"{process.output()[-3000:]}")
            if time.monotonic() > deadline:
                log = f"\nnode log:\n{process.output()[-3000:]}" if process is not None else ""
                raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}{log}")
            self.executor.spin_once(timeout_sec=0.05)

    def wait_for_state(self, state, timeout_s=60, process=None):
        self.spin_until(lambda: self.status is not None and self.status.state == state, timeout_s,
                        f"talk_status state {state}", process)
