"""talking_face_node: lip-syncs a face image to a live audio stream and publishes the face frames.

A thin rclpy shell around the ROS-free streaming core (lightlip_ros.stream): it converts messages, owns
the threads and publishes frames, status and diagnostics. Topics (relative, remappable):
  audio (lightlip_msgs/AudioChunk) and face_image (sensor_msgs/Image) in;
  face_frames (sensor_msgs/Image, bgr8), audio_out (lightlip_msgs/AudioChunk), talk_status
  (lightlip_msgs/TalkStatus) and /diagnostics out; service set_face (lightlip_msgs/SetFace).
"""
import collections
import hashlib
import re
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from lightlip_msgs.msg import AudioChunk, TalkStatus
from lightlip_msgs.srv import SetFace
from lightlip_ros.image_msgs import ImageFormatError, bgr_to_image, image_to_bgr
from lightlip_ros.ros_common import LATCHED, StampClock
from sensor_msgs.msg import Image

BUNDLED_MODEL = Path(__file__).resolve().parent / "assets" / "student.pt"
ENGINES = ("auto", "tensorrt", "onnxruntime", "torch")
STATE_NAMES = {TalkStatus.STATE_WAITING_FOR_FACE: "waiting_for_face", TalkStatus.STATE_IDLE: "idle",
               TalkStatus.STATE_TALKING: "talking", TalkStatus.STATE_ERROR: "error"}

# A "latched" face image (reliable, transient local) reaches a node started later; a best-effort
# volatile subscription also matches camera drivers that publish with sensor-data QoS. Both listen on
# face_image; an image delivered twice is recognised by its hash and costs nothing.
AUDIO_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
FRAMES_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def _descriptor(description, read_only=False, integer_range=None, float_range=None):
    descriptor = ParameterDescriptor(description=description, read_only=read_only)
    if integer_range is not None:
        descriptor.integer_range = [IntegerRange(from_value=integer_range[0], to_value=integer_range[1], step=1)]
    if float_range is not None:
        descriptor.floating_point_range = [FloatingPointRange(from_value=float_range[0], to_value=float_range[1],
                                                              step=0.0)]
    return descriptor


# name -> (default, descriptor). Documented for users in config/talk.yaml.
PARAMETERS = {
    "model_path": ("", _descriptor("Generator checkpoint (.pt/.pth), ONNX file or TensorRT engine; "
                                   "empty: the bundled student", read_only=True)),
    "engine": ("auto", _descriptor("auto | tensorrt | onnxruntime | torch", read_only=True)),
    "inference_threads": (1, _descriptor("CPU threads for one inference", read_only=True, integer_range=(1, 16))),
    "fps": (25, _descriptor("Output frame rate; the models are trained on 25 fps", read_only=True,
                            integer_range=(25, 25))),
    "face_box": ([0, 0, 0, 0], _descriptor("Face box (x, y, width, height) in face-image pixels; zeros: detect")),
    "detector": ("haar", _descriptor("Face detector: haar (OpenCV frontal-face cascades)", read_only=True)),
    "blend_width": (16, _descriptor("Soft paste-back edge in pixels; 0: hard rectangle", integer_range=(0, 128))),
    "idle_rate": (5.0, _descriptor("Frames per second while idle; 0: none", float_range=(0.0, 30.0))),
    "gap_timeout": (0.3, _descriptor("Seconds without audio that end an utterance", float_range=(0.05, 5.0))),
    "max_buffered_audio": (10.0, _descriptor("Most seconds of audio waiting to be rendered before the oldest "
                                            "is dropped", float_range=(0.3, 30.0))),
    "presentation_delay": (0.25, _descriptor(
        "Seconds after the audio time a frame shows at which the frame and its audio_out chunk are published "
        "(a steady latency budget); 0: publish as soon as rendered", float_range=(0.0, 5.0))),
    "status_rate": (1.0, _descriptor("TalkStatus and diagnostics rate (Hz)", read_only=True,
                                     float_range=(0.1, 10.0))),
}


class InputErrors:
    """Rejected inputs the node sees before the core does (malformed images, failed services), and rate
    limiting of log lines: each kind of problem (its message with the numbers left out) is logged at
    once, then at most once a period, with the count of repeats in between."""

    def __init__(self, logger, clock, period_s=5.0):
        self.logger, self.clock, self.period_s = logger, clock, period_s
        self.count = 0
        self.last = ""
        self.last_time = None
        self._logged = {}

    def reject(self, kind, message):
        self.count += 1
        self.note(kind, message)

    def note(self, kind, message):
        now = self.clock()
        self.last, self.last_time = message, now
        self.log(kind, message)

    def log(self, kind, message):
        now = time.monotonic()
        kind = (kind, re.sub(r"[-+.\d]+", "#", message))
        previous = self._logged.get(kind)
        if previous is None and len(self._logged) >= 256:
            self._logged.clear()  # bounded memory whatever messages arrive
        if previous is None or now - previous[0] >= self.period_s:
            suppressed = previous[1] if previous else 0
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            self.logger.warning(f"{message}{more}")
            self._logged[kind] = [now, 0]
        else:
            previous[1] += 1


class TalkingFaceNode(Node):
    def __init__(self, **kwargs):
        super().__init__("talking_face", **kwargs)
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)
        param = lambda name: self.get_parameter(name).value
        self._stamps = StampClock(self.get_clock().now().nanoseconds)  # the core's seconds <-> ROS stamps
        self._errors = InputErrors(self.get_logger(), self._now_s)
        self._face_note = "no face image received yet"
        self._face_detected = False
        self._last_image_key = None
        self._last_face = None  # (image, frame_id) to re-prepare when face_box or blend_width change
        self._frame_id = ""
        self._engine_reason = ""
        self._engine_error = ""
        self._model_path = str(param("model_path") or BUNDLED_MODEL)
        if param("engine") not in ENGINES:
            self.get_logger().error(f"unknown engine {param('engine')!r}; using auto (choose from {', '.join(ENGINES)})")
        self.core = self._make_core(param)
        self._recent_frames = []  # publication times of the last status period (for fps)

        self.create_subscription(AudioChunk, "audio", self._on_audio, AUDIO_QOS)
        self.create_subscription(Image, "face_image", self._on_face_image, LATCHED)
        self.create_subscription(Image, "face_image", self._on_face_image, qos_profile_sensor_data)
        self.create_service(SetFace, "set_face", self._on_set_face)
        self._frames_pub = self.create_publisher(Image, "face_frames", FRAMES_QOS)
        self._audio_out_pub = self.create_publisher(AudioChunk, "audio_out", AUDIO_QOS)
        self._status_pub = self.create_publisher(TalkStatus, "talk_status", LATCHED)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.add_on_set_parameters_callback(self._on_parameters)
        self.create_timer(1.0 / param("status_rate"), self._publish_status)

        self._published_state = None
        self._outbox = collections.deque()  # rendered frames waiting for their release time
        self._wake = threading.Event()
        self._running = True
        self._render_thread = threading.Thread(target=self._render_loop, name="render", daemon=True)
        self._render_thread.start()
        self._publish_status()

    # ------------------------------------------------------------------------------------------ set-up
    def _now_s(self) -> float:
        return self._stamps.seconds_from_ns(self.get_clock().now().nanoseconds)

    def _stream_config(self, param):
        from lightlip_ros.face import FaceConfig
        from lightlip_ros.stream import StreamConfig

        return StreamConfig(idle_fps=float(param("idle_rate")), gap_timeout_s=float(param("gap_timeout")),
                            max_buffered_s=float(param("max_buffered_audio")),
                            face=FaceConfig(blend_width_px=int(param("blend_width"))))

    def _make_core(self, param):
        """Opens the engine (logging why it was chosen) and the streaming core; None if no engine loads."""
        from lightlip_ros.engines import EngineError, EngineOptions, select_engine
        from lightlip_ros.stream import TalkingFaceStream

        preference = param("engine") if param("engine") in ENGINES else "auto"
        try:
            engine, self._engine_reason = select_engine(
                self._model_path, preference, logger=self.get_logger(),
                options=EngineOptions(threads=int(param("inference_threads"))), fallback_model=BUNDLED_MODEL)
        except EngineError as error:
            self._engine_error = str(error)
            self._errors.note("engine", self._engine_error)
            self.get_logger().error("no frames will be published until the node is restarted with a usable model")
            return None
        self.get_logger().info(f"engine {engine.name} ({engine.precision}, {engine.architecture}) chosen: "
                               f"{self._engine_reason}")
        return TalkingFaceStream(engine, self._stream_config(param), clock=self._now_s)

    # ------------------------------------------------------------------------------------------ inputs
    def _on_audio(self, msg: AudioChunk):
        from lightlip_ros.pcm import PcmError

        if self.core is None:
            self._errors.reject("audio", "audio chunk ignored: no inference engine is loaded")
            return
        # A zero stamp (publisher did not fill it) continues the stream, or starts one now.
        unset = msg.header.stamp.sec == 0 and msg.header.stamp.nanosec == 0
        try:
            self.core.push_audio(bytes(msg.data), stamp_s=None if unset else self._stamps.seconds(msg.header.stamp),
                                 sample_rate=msg.sample_rate, sample_format=msg.sample_format,
                                 channels=msg.channels)
        except PcmError as error:  # counted by the core
            self._errors.log("audio", f"audio chunk rejected: {error}")
        self._wake.set()

    def _on_face_image(self, msg: Image):
        # Both face_image subscriptions receive what a latched publisher sends: handle it once.
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id, msg.width, msg.height,
               msg.encoding, msg.step, hashlib.blake2b(bytes(msg.data), digest_size=16).digest())
        if key == self._last_image_key:
            return
        self._last_image_key = key
        try:
            image = image_to_bgr(msg)
        except ImageFormatError as error:
            self._errors.reject("face_image", f"face image rejected: {error}")
            return
        self._set_face(image, msg.header.frame_id)

    def _set_face(self, image, frame_id=""):
        """-> (success, message). The face box parameter, when set, replaces detection."""
        from lightlip_ros.face import FaceImageError

        box = [int(v) for v in self.get_parameter("face_box").value]
        box = box if len(box) == 4 and box[2] > 0 and box[3] > 0 else None
        if self.core is None:
            return False, "no inference engine is loaded: " + self._engine_error
        try:
            update = self.core.set_face(image, box)
        except FaceImageError as error:
            self._errors.log("face_image", f"face image rejected: {error}")
            return False, str(error)
        # One call site per severity: rclpy refuses a call site whose severity changes between calls.
        if update.changed:
            self._face_note, self._face_detected = update.note, update.detected
            self.get_logger().info(update.note)
        elif update.box is None:  # no face in the image: the previous face (if any) stays
            self._face_note = update.note
            self.get_logger().warning(update.note)
        if update.ok:
            self._last_face = (image, frame_id)
            self._frame_id = frame_id
        self._wake.set()
        return update.ok and (update.changed or update.box is not None), update.note

    def _on_set_face(self, request, response):
        if request.path:
            image = cv2.imread(request.path, cv2.IMREAD_COLOR)
            if image is None:
                response.success, response.message = False, f"cannot read image file {request.path!r}"
                self._errors.reject("set_face", f"set_face: {response.message}")
                return response
            frame_id = ""
        else:
            try:
                image = image_to_bgr(request.image)
            except ImageFormatError as error:
                response.success, response.message = False, f"image rejected: {error}"
                self._errors.reject("set_face", f"set_face: {response.message}")
                return response
            frame_id = request.image.header.frame_id
        box = [request.box_x, request.box_y, request.box_width, request.box_height]
        if any(box):
            self.set_parameters([Parameter("face_box", Parameter.Type.INTEGER_ARRAY, box)])
        response.success, response.message = self._set_face(image, frame_id)
        return response

    def _on_parameters(self, parameters):
        """Live changes: face_box and blend_width re-prepare the face; idle_rate, gap_timeout and
        max_buffered_audio reconfigure the stream."""
        values = {p.name: p.value for p in parameters}
        if "face_box" in values and len(values["face_box"]) not in (0, 4):
            return SetParametersResult(successful=False, reason="face_box needs four integers (x, y, width, height)")
        if self.core is not None:
            param = lambda name: values[name] if name in values else self.get_parameter(name).value
            try:
                config = self._stream_config(param)
            except ValueError as error:
                return SetParametersResult(successful=False, reason=str(error))
            self._reconfigure_later = (config, "face_box" in values or "blend_width" in values)
            self._wake.set()
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------------------------------- outputs
    def _render_loop(self):
        """Renders frames as soon as their audio is complete, off the executor's thread so that audio keeps
        arriving while the generator runs, and publishes each frame with its audio at stamp +
        presentation_delay on the node's clock (at once if rendering took longer)."""
        while self._running and rclpy.ok(context=self.context):
            wait = 0.01
            if self._outbox:
                wait = min(wait, max(0.0, self._outbox[0][0] - self._now_s()))
            self._wake.wait(timeout=wait)
            self._wake.clear()
            if self.core is None:
                continue
            pending, self._reconfigure_later = getattr(self, "_reconfigure_later", None), None
            if pending is not None:
                config, refresh_face = pending
                self.core.reconfigure(config)
                if refresh_face and self._last_face is not None:
                    self._set_face(*self._last_face)
            try:
                frames = self.core.poll()
            except Exception as error:  # a bug must not silence the display: report it and go on
                self._errors.note("render", f"rendering failed: {type(error).__name__}: {error}")
                time.sleep(0.1)
                continue
            now = self._now_s()
            delay = self.get_parameter("presentation_delay").value
            # Stamps come from the audio publisher's clock: one running ahead of ours must not hold
            # frames back longer than the delay itself.
            self._outbox.extend((min(frame.stamp_s, now) + delay, frame) for frame in frames)
            while self._outbox and self._outbox[0][0] <= now:
                self._publish_frame(self._outbox.popleft()[1])
            if self.core.state != self._published_state:
                self._publish_status()

    def _publish_frame(self, frame):
        header = Image().header
        header.stamp, header.frame_id = self._stamps.stamp(frame.stamp_s), self._frame_id
        if frame.audio is not None and frame.audio.size:
            chunk = AudioChunk(sample_rate=16000, channels=1, sample_format=AudioChunk.FORMAT_S16LE)
            chunk.header = header
            chunk.data = np.clip(np.round(frame.audio * 32768.0), -32768, 32767).astype("<i2").tobytes()
            self._audio_out_pub.publish(chunk)
        self._frames_pub.publish(bgr_to_image(frame.image, header))
        self._recent_frames.append(time.monotonic())

    def _state(self):
        if self.core is None:
            return TalkStatus.STATE_ERROR
        return {"waiting_for_face": TalkStatus.STATE_WAITING_FOR_FACE, "idle": TalkStatus.STATE_IDLE,
                "talking": TalkStatus.STATE_TALKING}[self.core.state]

    def _status(self):
        status = TalkStatus()
        now = self._now_s()
        status.header.stamp = self._stamps.stamp(now)
        status.state = self._state()
        status.state_name = STATE_NAMES[status.state]
        status.model = self._model_path
        status.face_detected = self._face_detected
        status.face_note = self._face_note
        last_error, last_error_time = self._errors.last, self._errors.last_time
        if self.core is not None:
            engine = self.core.engine
            status.engine, status.engine_reason, status.precision = engine.name, self._engine_reason, engine.precision
            # The file the user configured (or the fallback), not an ONNX export cached from it.
            status.model = str(getattr(engine, "source_path", engine.model_path))
            status.architecture = engine.architecture
            stats = self.core.stats()
            cutoff = time.monotonic() - 1.0 / self.get_parameter("status_rate").value
            self._recent_frames = [t for t in self._recent_frames if t >= cutoff]
            status.fps = len(self._recent_frames) * self.get_parameter("status_rate").value
            status.latency_ms_p50, status.latency_ms_p95 = stats.latency_ms_p50, stats.latency_ms_p95
            status.frames_published, status.frames_dropped = stats.frames_published, stats.frames_dropped
            status.audio_samples_received = stats.audio_received
            status.audio_samples_consumed = stats.audio_consumed
            status.audio_samples_dropped = stats.audio_dropped
            status.audio_samples_buffered = stats.audio_buffered
            status.inputs_rejected = stats.inputs_rejected + self._errors.count
            if stats.last_error_time is not None and (last_error_time is None or stats.last_error_time > last_error_time):
                last_error, last_error_time = stats.last_error, stats.last_error_time
        else:
            status.inputs_rejected = self._errors.count
        status.last_error = last_error
        if last_error_time is not None:
            status.last_error_stamp = self._stamps.stamp(last_error_time)
        return status

    def _publish_status(self):
        status = self._status()
        self._published_state = None if self.core is None else self.core.state
        self._status_pub.publish(status)
        self._diagnostics_pub.publish(self._diagnostics(status))

    def _diagnostics(self, status):
        diagnostic = DiagnosticStatus(name=f"{self.get_fully_qualified_name()}: talking face",
                                      hardware_id=status.engine or "none")
        if status.state == TalkStatus.STATE_ERROR:
            diagnostic.level, diagnostic.message = DiagnosticStatus.ERROR, status.last_error
        elif status.state == TalkStatus.STATE_WAITING_FOR_FACE:
            diagnostic.level, diagnostic.message = DiagnosticStatus.WARN, status.face_note
        elif status.frames_dropped or status.audio_samples_dropped:
            diagnostic.level = DiagnosticStatus.WARN
            diagnostic.message = f"{status.state_name}; dropped {status.frames_dropped} frame(s) under overload"
        else:
            diagnostic.level, diagnostic.message = DiagnosticStatus.OK, status.state_name
        values = {
            "state": status.state_name, "engine": status.engine, "engine_reason": status.engine_reason,
            "precision": status.precision, "model": status.model, "architecture": status.architecture,
            "face": status.face_note, "fps": f"{status.fps:.1f}",
            "latency_ms_p50": f"{status.latency_ms_p50:.1f}", "latency_ms_p95": f"{status.latency_ms_p95:.1f}",
            "frames_published": status.frames_published, "frames_dropped": status.frames_dropped,
            "audio_samples_received": status.audio_samples_received,
            "audio_samples_consumed": status.audio_samples_consumed,
            "audio_samples_dropped": status.audio_samples_dropped,
            "audio_samples_buffered": status.audio_samples_buffered,
            "inputs_rejected": status.inputs_rejected, "last_error": status.last_error,
        }
        diagnostic.values = [KeyValue(key=key, value=str(value)) for key, value in values.items()]
        array = DiagnosticArray()
        array.header.stamp = status.header.stamp
        array.status = [diagnostic]
        return array

    def destroy_node(self):
        self._running = False
        self._wake.set()
        if self._render_thread.is_alive():
            self._render_thread.join(timeout=2.0)
        super().destroy_node()


def main(args=None):
    rclpy.init(args=args)
    node = None
    try:
        node = TalkingFaceNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
