"""face_display_node: a web display that shows `face_frames` and plays `audio_out` in sync.

It serves a page (http://127.0.0.1:8765/ by default) that receives the frames as JPEG and the audio as
PCM over a WebSocket and presents both at (stamp + presentation delay) on the browser's own clocks:
the frame stamp is the audio time it shows and the audio stamp the time of its first sample, so the
lips meet the voice whatever the talking-face node's latency. The page shows the talking-face node's
status (talk_status) and the audio-to-picture offset it measures, and exposes its measurements as
window.lightlipStats. When the talking-face node offers face_frames/compressed (image_transport's JPEG
stream), the display takes that instead: the browser gets the node's JPEG as it is, nothing is decoded
or encoded here, and a remote display receives ~30 KB instead of 768 KB per frame.

rclpy spins in the main thread; the aiohttp server runs its asyncio loop in a thread of its own
(lightlip_ros.display.DisplayServer), fed through bounded per-browser queues.

    face_display_node --ros-args -r __ns:=/robot -p port:=8080 -p presentation_delay_ms:=350
"""
import sys

import cv2
import numpy as np
import rclpy
from rcl_interfaces.msg import IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions

from lightlip_msgs.msg import AudioChunk, TalkStatus
from lightlip_ros.display import DisplayServer, ServerStartError
from lightlip_ros.errors import EXIT_ERROR
from lightlip_ros.image_msgs import ImageFormatError, compressed_to_bgr, image_to_bgr
from lightlip_ros.pcm import PcmError, check_sample_rate, decode_pcm
from lightlip_ros.ros_common import LATCHED, spin_until_shutdown, stamp_seconds
from sensor_msgs.msg import CompressedImage, Image

NODE_NAME = "face_display"
DEFAULT_PORT = 8765

# Frames: best effort subscriber, which matches reliable and best-effort publishers alike; a late frame
# is useless anyway. Audio: reliable, since a lost chunk is an audible gap; deep enough for seconds of
# 40 ms chunks. Status: latched like the talking-face node publishes it, so a display started later
# shows the current status at once.
AUDIO_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)

# Browsers' Web Audio API plays sample rates from 3 kHz (AudioContext.createBuffer).
BROWSER_MIN_SAMPLE_RATE = 3000
# Stamps further than this from the node's clock cannot be presented at stamp + delay: warn about it.
STAMP_SKEW_WARNING_S = 5.0
WARNING_PERIOD_S = 10.0
TRANSPORT_CHECK_S = 1.0  # how often the display looks for a compressed frame stream


def browser_audio(msg: AudioChunk) -> np.ndarray:
    """The chunk as float32 mono samples a browser can play; PcmError (one line) when it cannot."""
    rate = check_sample_rate(msg.sample_rate)
    if rate < BROWSER_MIN_SAMPLE_RATE:
        raise PcmError(f"sample rate {rate} Hz is below what browsers play ({BROWSER_MIN_SAMPLE_RATE} Hz)")
    mono, _ = decode_pcm(bytes(msg.data), msg.sample_format, msg.channels)
    return mono


class FaceDisplayNode(Node):
    """Subscribes to face_frames, audio_out and talk_status and streams them to the web display."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self._declare_parameters()
        self._jpeg_quality = self.get_parameter("jpeg_quality").value
        play_audio = self.get_parameter("play_audio").value
        self._server = DisplayServer(
            self.get_parameter("address").value, self.get_parameter("port").value,
            clock=lambda: self.get_clock().now().nanoseconds * 1e-9,
            logger=self.get_logger(),
            max_queued_frames=self.get_parameter("max_queued_frames").value,
            config={"presentation_delay_ms": self.get_parameter("presentation_delay_ms").value,
                    "auto_delay": self.get_parameter("auto_delay").value,
                    "auto_delay_margin_ms": self.get_parameter("auto_delay_margin_ms").value,
                    "play_audio": play_audio})
        self.add_post_set_parameters_callback(self._on_parameters_set)

        overrides = QoSOverridingOptions.with_default_policies()
        self._raw = self.create_subscription(Image, "face_frames", self._on_frame, qos_profile_sensor_data,
                                             qos_overriding_options=overrides)
        self._raw_qos = self._raw.qos_profile  # with the user's QoS overrides applied, for re-subscribing
        self._compressed_topic = self._raw.topic_name + "/compressed"
        self._compressed = None
        self._last_frame_stamp = None
        self.create_timer(TRANSPORT_CHECK_S, self._choose_transport)
        topics = [f"frames {self._raw.topic_name} (or {self._compressed_topic} when offered)"]
        if play_audio:
            audio = self.create_subscription(AudioChunk, "audio_out", self._on_audio, AUDIO_QOS,
                                             qos_overriding_options=overrides)
            topics.append(f"audio {audio.topic_name}")
        status = self.create_subscription(TalkStatus, "talk_status", self._on_talk_status, LATCHED)
        topics.append(f"status {status.topic_name}")

        self._server.start()
        self.get_logger().info(f"face display at {self._server.url} ({', '.join(topics)})")

    def _declare_parameters(self):
        self.declare_parameter("address", "127.0.0.1", ParameterDescriptor(
            description="Interface the web server listens on: 127.0.0.1 for a browser on this machine, "
                        "0.0.0.0 (or ::) to serve other machines, e.g. a kiosk screen",
            read_only=True))
        self.declare_parameter("port", DEFAULT_PORT, ParameterDescriptor(
            description="TCP port of the web server; 0 picks a free port (logged at start)",
            read_only=True, integer_range=[IntegerRange(from_value=0, to_value=65535, step=1)]))
        self.declare_parameter("presentation_delay_ms", 400, ParameterDescriptor(
            description="Frames and audio are presented at their stamp plus this delay; it must exceed "
                        "the time from a stamp to the arrival of its frame (the talking-face node's "
                        "0.17 s audio look-ahead, input chunking and latency) plus the browser's sound "
                        "output latency",
            integer_range=[IntegerRange(from_value=0, to_value=5000, step=1)]))
        self.declare_parameter("auto_delay", False, ParameterDescriptor(
            description="Let each page raise the delay to the largest stamp-to-arrival lag it measured "
                        "over the last seconds plus its sound output latency and auto_delay_margin_ms "
                        "(never below presentation_delay_ms); decreases wait for a pause in the speech"))
        self.declare_parameter("auto_delay_margin_ms", 40, ParameterDescriptor(
            description="Headroom added to the measured lag when auto_delay is on",
            integer_range=[IntegerRange(from_value=0, to_value=1000, step=1)]))
        self.declare_parameter("play_audio", True, ParameterDescriptor(
            description="Subscribe to audio_out and play it in the page; false when the robot's own "
                        "speaker plays the speech (delayed by the presentation delay)",
            read_only=True))
        self.declare_parameter("jpeg_quality", 85, ParameterDescriptor(
            description="JPEG quality of the frames this display encodes for browsers (frames taken from "
                        "face_frames/compressed keep the publisher's quality)",
            integer_range=[IntegerRange(from_value=1, to_value=100, step=1)]))
        self.declare_parameter("max_queued_frames", 12, ParameterDescriptor(
            description="Frames waiting for a slow browser; beyond this its oldest frames are dropped",
            read_only=True, integer_range=[IntegerRange(from_value=1, to_value=250, step=1)]))

    def _on_parameters_set(self, parameters):
        page_settings = {}
        for parameter in parameters:
            if parameter.name == "jpeg_quality":
                self._jpeg_quality = parameter.value
            elif parameter.name in ("presentation_delay_ms", "auto_delay", "auto_delay_margin_ms"):
                page_settings[parameter.name] = parameter.value
        if page_settings:
            self._server.set_config(**page_settings)

    def _choose_transport(self):
        """Subscribes to the compressed stream while someone publishes it; the raw subscription ends
        when its first frame arrives (no gap) and comes back when the compressed publisher goes."""
        offered = self.count_publishers(self._compressed_topic) > 0
        if offered and self._compressed is None:
            self._compressed = self.create_subscription(CompressedImage, self._compressed_topic,
                                                        self._on_compressed_frame, qos_profile_sensor_data)
        elif not offered and self._compressed is not None:
            self.destroy_subscription(self._compressed)
            self._compressed = None
            if self._raw is None:
                self._raw = self.create_subscription(Image, "face_frames", self._on_frame, self._raw_qos)
                self.get_logger().info(f"{self._compressed_topic} is gone: frames from {self._raw.topic_name}")

    def _on_frame(self, msg):
        if not self._server.browser_count:
            return  # nobody is watching: save the JPEG encoding
        try:
            bgr = image_to_bgr(msg)
        except ImageFormatError as error:
            self.get_logger().warning(f"ignored a face_frames image: {error}",
                                      throttle_duration_sec=WARNING_PERIOD_S)
            return
        self._show(stamp_seconds(msg.header.stamp), "face_frames", bgr=bgr)

    def _on_compressed_frame(self, msg):
        switching = self._raw is not None
        if switching:
            self.destroy_subscription(self._raw)
            self._raw = None
            self.get_logger().info(f"frames from {self._compressed_topic} ({msg.format})")
        if not self._server.browser_count:
            return
        stamp = stamp_seconds(msg.header.stamp)
        if switching and self._last_frame_stamp is not None and stamp <= self._last_frame_stamp:
            return  # already shown from the raw stream
        if "jpeg" in msg.format:
            self._show(stamp, self._compressed_topic, jpeg=bytes(msg.data))
            return
        try:
            bgr = compressed_to_bgr(msg)
        except ImageFormatError as error:
            self.get_logger().warning(f"ignored a compressed frame: {error}", throttle_duration_sec=WARNING_PERIOD_S)
            return
        self._show(stamp, self._compressed_topic, bgr=bgr)

    def _show(self, stamp, topic, bgr=None, jpeg=None):
        """Sends one frame to the browsers: JPEG bytes as they are, or a BGR image encoded here."""
        self._last_frame_stamp = stamp
        self._check_stamp(topic, stamp)
        if jpeg is None:
            ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self._jpeg_quality])
            if not ok:
                return
            jpeg = encoded.tobytes()
        self._server.publish_frame(stamp, jpeg)

    def _on_audio(self, msg):
        if not self._server.browser_count:
            return
        try:
            samples = browser_audio(msg)
        except PcmError as error:
            self.get_logger().warning(f"ignored an audio_out chunk: {error}",
                                      throttle_duration_sec=WARNING_PERIOD_S)
            return
        stamp = stamp_seconds(msg.header.stamp)
        self._check_stamp("audio_out", stamp)
        self._server.publish_audio(stamp, msg.sample_rate, samples.astype("<f4").tobytes())

    def _on_talk_status(self, msg):
        self._server.publish_talk_status({
            "state": msg.state_name, "engine": msg.engine, "precision": msg.precision,
            "fps": float(msg.fps), "latency_ms_p50": float(msg.latency_ms_p50),
            "latency_ms_p95": float(msg.latency_ms_p95), "frames_published": int(msg.frames_published),
            "frames_dropped": int(msg.frames_dropped), "last_error": msg.last_error})

    def _check_stamp(self, topic, stamp):
        skew = self.get_clock().now().nanoseconds * 1e-9 - stamp
        if abs(skew) > STAMP_SKEW_WARNING_S:
            self.get_logger().warning(
                f"{topic} stamps are {skew:+.1f} s off this node's clock: the display presents at "
                f"stamp + delay, so stamps must be audio times on this clock (see docs/display.md)",
                throttle_duration_sec=WARNING_PERIOD_S)

    def close(self):
        """Closes every page's connection and stops the web server."""
        self._server.stop()


def main(args=None):
    rclpy.init(args=args)
    node = None
    try:
        node = FaceDisplayNode()
        spin_until_shutdown(node)
    except (ServerStartError, ParameterException) as error:
        rclpy.logging.get_logger(NODE_NAME).error(str(error))
        return EXIT_ERROR
    except KeyboardInterrupt:  # Ctrl-C while the node starts
        pass
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
