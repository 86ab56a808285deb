"""talking_face_node: lip-syncs a face image to a live audio stream and publishes the face frames.

A thin rclpy shell around the ROS-free streaming core (lightlip_ros.stream): it converts messages, owns
the threads and publishes frames, status and diagnostics. Topics (relative, remappable):
  audio (lightlip_msgs/AudioChunk) and face_image (sensor_msgs/Image) in; where audio_common_msgs is
  installed, also audio_stamped (audio_common_msgs/AudioDataStamped) described by audio_info
  (audio_common_msgs/AudioInfo), as ros-drivers' audio_capture publishes them;
  face_frames (sensor_msgs/Image, bgr8), face_frames/compressed (sensor_msgs/CompressedImage, JPEG, only
  while subscribed), audio_out (lightlip_msgs/AudioChunk), talk_status (lightlip_msgs/TalkStatus) and
  /diagnostics out; service set_face (lightlip_msgs/SetFace).

Threads: the executor (rclpy.spin) only takes messages, service calls and parameters, each in
microseconds, so audio never waits; face images and set_face requests are converted, detected and
prepared on the face thread (newest image first, at most face_rate a second); frames are rendered and
published on the render thread. (rclpy's MultiThreadedExecutor dispatches callbacks too slowly for audio
at 10x real time: 290 chunks/s against 500 sent, and the reader's history overflows.)
"""
import collections
import re
import threading
import time
from pathlib import Path

import cv2
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.task import Future

from lightlip_msgs.msg import AudioChunk, TalkStatus
from lightlip_msgs.srv import SetFace
from lightlip_ros import ASSETS
from lightlip_ros.engines import AUTO, PREFERENCES
from lightlip_ros.image_msgs import ImageFormatError, bgr_to_compressed, bgr_to_image, image_to_bgr
from lightlip_ros.pcm import float_to_s16
from lightlip_ros.ros_common import LATCHED, StampClock, configure_fastdds, spin_until_shutdown
from lightlip_ros.stream import PresentationQueue
from sensor_msgs.msg import CompressedImage, Image

BUNDLED_MODEL = ASSETS / "student.pt"
# audio_common's coding_format values that carry raw PCM ("wave": a WAVE stream, header in front of the
# first buffer only).
RAW_CODINGS = ("wave", "wav", "raw", "pcm")
STATE_NAMES = {TalkStatus.STATE_WAITING_FOR_FACE: "waiting_for_face", TalkStatus.STATE_IDLE: "idle",
               TalkStatus.STATE_TALKING: "talking", TalkStatus.STATE_ERROR: "error"}
STATES_BY_NAME = {name: state for state, name in STATE_NAMES.items()}

# A "latched" face image (reliable, transient local) reaches a node started later; a best-effort
# volatile subscription also matches camera drivers that publish with sensor-data QoS. Both listen on
# face_image; an image delivered twice is recognised by the face cache's hash and costs nothing.
# Audio: 1000 chunks of history (20 s of 20 ms chunks at real time, 2 s at 10x) absorb any pause of
# the executor; the samples are small, so the depth costs memory only while it is in use.
AUDIO_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
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
    "engine": (AUTO, _descriptor(" | ".join(PREFERENCES), read_only=True)),
    "inference_threads": (1, _descriptor("CPU threads for one inference", read_only=True, integer_range=(1, 16))),
    "face_box": ([0, 0, 0, 0], _descriptor("Face box (x, y, width, height) in face-image pixels; zeros: detect")),
    "face_rate": (2.0, _descriptor("Most face images prepared per second; a faster face_image stream keeps "
                                   "only its newest image waiting", float_range=(0.1, 30.0))),
    "max_image_side": (1280, _descriptor("Face images whose longer side exceeds this many pixels are scaled "
                                         "down to it once, so frames are at most this size; 0: keep the "
                                         "image's size", read_only=True, integer_range=(0, 8192))),
    "jpeg_quality": (80, _descriptor("JPEG quality of face_frames/compressed", integer_range=(1, 100))),
    "blend_width": (16, _descriptor("Soft paste-back edge in pixels; 0: hard rectangle", integer_range=(0, 128))),
    "idle_rate": (5.0, _descriptor("Frames per second while idle; 0: none", float_range=(0.0, 30.0))),
    "gap_timeout": (0.3, _descriptor("Seconds without audio that end an utterance", float_range=(0.05, 5.0))),
    "max_buffered_audio": (10.0, _descriptor(
        "Most seconds of audio waiting to be rendered before the oldest is dropped", float_range=(0.3, 30.0))),
    "presentation_delay": (0.25, _descriptor(
        "Seconds after the audio time a frame shows at which the frame and its audio_out chunk are published "
        "(a steady latency budget); 0: publish as soon as rendered", float_range=(0.0, 5.0))),
    "status_rate": (1.0, _descriptor("TalkStatus and diagnostics rate (Hz)", read_only=True,
                                     float_range=(0.1, 10.0))),
}


class InputErrors:
    """Problems the node sees before the core does (malformed images, failed services): counted by the
    core once it exists (`core`), by this object before (a model that did not load); and rate limiting
    of log lines: each kind of message (its text with the numbers left out) is logged at once, then at
    most once a period, with the count of repeats in between."""

    def __init__(self, logger, clock, period_s=5.0):
        self.logger, self.clock, self.period_s = logger, clock, period_s
        self.core = None
        self.reported = ""
        self.count = 0
        self.last = ""
        self.last_time = None
        self._logged = {}

    def reject(self, kind, message):
        self._record(message, rejected=True)
        self.log(kind, message)

    def note(self, kind, message):
        self._record(message, rejected=False)
        self.log(kind, message)

    def _record(self, message, rejected):
        if self.core is not None:
            self.core.report_input_error(message, rejected)
            self.reported = message  # logged here already: the render thread need not log it again
            return
        self.count += rejected
        self.last, self.last_time = message, self.clock()

    def log(self, kind, message, severity="warning"):
        """Logs at most once a period per kind of message; severity "info" or "warning"."""
        now = time.monotonic()
        kind = (kind, severity, re.sub(r"[-+.\d]+", "#", message))
        previous = self._logged.get(kind)
        if previous is None and len(self._logged) >= 256:
            self._logged.clear()  # bounded memory whatever messages arrive
        if previous is None or now - previous[0] >= self.period_s:
            suppressed = previous[1] if previous else 0
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            # One call site per severity: rclpy refuses a call site whose severity changes between calls.
            if severity == "info":
                self.logger.info(f"{message}{more}")
            else:
                self.logger.warning(f"{message}{more}")
            self._logged[kind] = [now, 0]
        else:
            previous[1] += 1


class TalkingFaceNode(Node):
    def __init__(self, transport_note="", **kwargs):
        super().__init__("talking_face", **kwargs)
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)

        def param(name):
            return self.get_parameter(name).value

        if transport_note:
            self.get_logger().info(transport_note)
        self._stamps = StampClock(self.get_clock().now().nanoseconds)  # the core's seconds <-> ROS stamps
        self._errors = InputErrors(self.get_logger(), self._now_s)
        self._frame_id = ""
        self._engine_reason = ""
        self._engine_error = ""
        self._model_path = str(param("model_path") or BUNDLED_MODEL)
        if param("engine") not in PREFERENCES:
            self.get_logger().error(f"unknown engine {param('engine')!r}; using {AUTO} "
                                    f"(choose from {', '.join(PREFERENCES)})")
        self.core = self._make_core(param)
        self._errors.core = self.core
        self._recent_frames = []  # publication times of the last status period (for fps)
        self._reported = (0, 0, 0)  # frames dropped, audio dropped, audio lost at the last diagnostics
        self._core_error_time = None  # of the core's last error already logged

        # Face work for the face thread: the newest face_image message (older ones are skipped), and
        # set_face requests and face_box changes in order, each answered or applied once done.
        self._newest_face_image = None
        self._face_jobs = collections.deque()
        self._face_wake = threading.Event()
        self.create_subscription(AudioChunk, "audio", self._on_audio, AUDIO_QOS)
        self.create_subscription(Image, "face_image", self._on_face_image, LATCHED)
        self.create_subscription(Image, "face_image", self._on_face_image, qos_profile_sensor_data)
        self.create_service(SetFace, "set_face", self._on_set_face)
        self._audio_info = None  # the last audio_common_msgs/AudioInfo
        self._subscribe_audio_common()
        self._frames_pub = self.create_publisher(Image, "face_frames", FRAMES_QOS)
        # image_transport's naming: the compressed stream lives under the (remapped) raw topic.
        self._compressed_pub = self.create_publisher(CompressedImage, self._frames_pub.topic_name + "/compressed",
                                                     FRAMES_QOS)
        self._audio_out_pub = self.create_publisher(AudioChunk, "audio_out", AUDIO_QOS)
        self._status_pub = self.create_publisher(TalkStatus, "talk_status", LATCHED)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self.create_timer(1.0 / param("status_rate"), self._publish_status)

        self._published_state = None
        self._presentation = PresentationQueue(param("presentation_delay"))
        self._wake = threading.Event()
        self._running = True
        self._render_thread = threading.Thread(target=self._render_loop, name="render", daemon=True)
        self._render_thread.start()
        self._face_thread = threading.Thread(target=self._face_loop, name="face", daemon=True)
        self._face_thread.start()
        self._publish_status()

    # ------------------------------------------------------------------------------------------ set-up
    def _now_s(self) -> float:
        return self._stamps.seconds_from_ns(self.get_clock().now().nanoseconds)

    def _stream_config(self, param):
        from lightlip_ros.face import FaceConfig
        from lightlip_ros.stream import StreamConfig

        return StreamConfig(idle_fps=float(param("idle_rate")), gap_timeout_s=float(param("gap_timeout")),
                            max_buffered_s=float(param("max_buffered_audio")),
                            face=FaceConfig(blend_width_px=int(param("blend_width")),
                                            max_side=int(param("max_image_side"))))

    def _make_core(self, param):
        """Opens the engine (logging why it was chosen) and the streaming core; None if no engine loads."""
        from lightlip_ros.engines import EngineError, EngineOptions, select_engine
        from lightlip_ros.stream import TalkingFaceStream

        preference = param("engine") if param("engine") in PREFERENCES else AUTO
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
        used = Path(getattr(engine, "source_path", engine.model_path))
        if used.resolve() != Path(self._model_path).resolve():
            self._errors.note("engine",
                              f"model {self._model_path} unusable, running {used.name}: {self._engine_reason}")
        return TalkingFaceStream(engine, self._stream_config(param), clock=self._now_s)

    # ------------------------------------------------------------------------------------------ inputs
    def _subscribe_audio_common(self):
        """audio_stamped + audio_info (ros-drivers' audio_common_msgs) when that package is installed."""
        try:
            from audio_common_msgs.msg import AudioDataStamped, AudioInfo
        except ImportError:
            return
        self.create_subscription(AudioInfo, "audio_info", self._on_audio_info, LATCHED)
        self.create_subscription(AudioInfo, "audio_info", self._on_audio_info, AUDIO_QOS)
        stamped = self.create_subscription(AudioDataStamped, "audio_stamped", self._on_audio_stamped, AUDIO_QOS)
        self.get_logger().info(f"audio_common_msgs installed: also taking {stamped.topic_name} "
                               "(AudioDataStamped, described by audio_info)")

    def _on_audio(self, msg: AudioChunk):
        self._push_audio("audio", bytes(msg.data), msg.header.stamp, msg.sample_rate, msg.sample_format,
                         msg.channels)

    def _on_audio_info(self, msg):
        self._audio_info = msg

    def _on_audio_stamped(self, msg):
        from lightlip_ros.pcm import PcmError, strip_wav_header

        info = self._audio_info
        if info is None:
            self._errors.reject("audio_stamped", "audio_stamped chunk ignored: no audio_common_msgs/AudioInfo "
                                                 "on audio_info yet (its sample rate and format are needed)")
            return
        if info.coding_format.lower() not in RAW_CODINGS:
            self._errors.reject("audio_stamped", f"audio_stamped chunk ignored: coding_format "
                                                 f"{info.coding_format!r} is not raw PCM (use audio_capture's "
                                                 f"format:=wave)")
            return
        try:
            data = strip_wav_header(bytes(msg.audio.data))
        except PcmError as error:
            self._errors.reject("audio_stamped", f"audio_stamped chunk rejected: {error}")
            return
        self._push_audio("audio_stamped", data, msg.header.stamp, info.sample_rate, info.sample_format, info.channels)

    def _push_audio(self, topic, data, stamp, sample_rate, sample_format, channels):
        from lightlip_ros.pcm import PcmError

        if self.core is None:
            self._errors.reject(topic, f"{topic} chunk ignored: no inference engine is loaded")
            return
        # A zero stamp (publisher did not fill it) continues the stream, or starts one now.
        unset = stamp.sec == 0 and stamp.nanosec == 0
        try:
            self.core.push_audio(data, stamp_s=None if unset else self._stamps.seconds(stamp),
                                 sample_rate=sample_rate, sample_format=sample_format, channels=channels)
        except PcmError as error:  # counted by the core
            self._errors.log(topic, f"{topic} chunk rejected: {error}")
        self._wake.set()

    def _on_face_image(self, msg: Image):
        self._newest_face_image = msg
        self._face_wake.set()

    def _face_loop(self):
        """The face thread: set_face requests and box changes first, then the newest face image, at most
        face_rate images a second (a face stream of any rate costs bounded CPU)."""
        last_image_time = -float("inf")
        while self._running:
            self._face_wake.wait(timeout=0.1)
            self._face_wake.clear()
            while self._face_jobs:
                self._face_jobs.popleft()()
            period = 1.0 / self.get_parameter("face_rate").value
            if self._newest_face_image is None:
                continue
            wait = last_image_time + period - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, 0.1))
                self._face_wake.set()  # look again (a service request may have come meanwhile)
                continue
            msg, self._newest_face_image = self._newest_face_image, None
            last_image_time = time.monotonic()
            try:
                image = image_to_bgr(msg)
            except ImageFormatError as error:
                self._errors.reject("face_image", f"face image rejected: {error}")
                continue
            self._set_face(image, msg.header.frame_id, self._face_box())

    def _face_box(self):
        box = [int(v) for v in self.get_parameter("face_box").value]
        return box if len(box) == 4 and box[2] > 0 and box[3] > 0 else None

    def _set_face(self, image, frame_id, box):
        """-> (success, message). box (x, y, width, height) replaces detection."""
        from lightlip_ros.face import FaceImageError

        if self.core is None:
            return False, "no inference engine is loaded: " + self._engine_error
        try:
            update = self.core.set_face(image, box)
        except FaceImageError as error:
            self._errors.log("face_image", f"face image rejected: {error}")
            return False, str(error)
        self._report_face(update)
        if update.ok:
            self._frame_id = frame_id
        self._wake.set()
        return update.ok and (update.changed or update.box is not None), update.note

    def _report_face(self, update):
        # (An image without a face is an error the core notes: the render thread logs it.)
        if update.changed:
            self._errors.log("face", update.note, severity="info")

    async def _on_set_face(self, request, response):
        """Answered by the face thread; the executor goes on taking audio meanwhile."""
        answer = Future(executor=self.executor)
        answer.add_done_callback(lambda _: None)  # a done callback wakes the executor to resume this call
        self._face_jobs.append(lambda: answer.set_result(self._set_face_from_request(request)))
        self._face_wake.set()
        response.success, response.message = await answer
        return response

    def _set_face_from_request(self, request):
        """-> (success, message) for a set_face request (on the face thread)."""
        if request.path:
            image = cv2.imread(request.path, cv2.IMREAD_COLOR)
            if image is None:
                message = f"cannot read image file {request.path!r}"
                self._errors.reject("set_face", f"set_face: {message}")
                return False, message
            frame_id = ""
        else:
            try:
                image = image_to_bgr(request.image)
            except ImageFormatError as error:
                self._errors.reject("set_face", f"set_face: image rejected: {error}")
                return False, f"image rejected: {error}"
            frame_id = request.image.header.frame_id
        box = [request.box_x, request.box_y, request.box_width, request.box_height]
        given = any(box)
        success, message = self._set_face(image, frame_id, box if given else self._face_box())
        if given and success:
            # The box stays for later images, as if set as a parameter (the face is already prepared with it).
            self.set_parameters([Parameter("face_box", Parameter.Type.INTEGER_ARRAY, box)])
        return success, message

    def _check_parameters(self, parameters):
        """Validates live changes before they are set (nothing is applied here)."""
        from lightlip_ros.face import Box, FaceImageError, check_box_inside

        values = {p.name: p.value for p in parameters}
        if "face_box" in values:
            box = [int(v) for v in values["face_box"]]
            if len(box) != 4 or any(v < 0 for v in box):
                return SetParametersResult(successful=False,
                                           reason="face_box needs four non-negative integers (x, y, width, height)")
            size = self.core.faces.image_size if self.core is not None else None
            if any(box) and size is not None:
                try:
                    check_box_inside(Box(*box), (size[1], size[0]))
                except FaceImageError as error:
                    return SetParametersResult(successful=False, reason=str(error))
        if self.core is not None:

            def param(name):
                return values[name] if name in values else self.get_parameter(name).value

            try:
                self._stream_config(param)
            except ValueError as error:
                return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters):
        """Applies validated changes: face_box prepares the last face image again (on the face thread),
        blend_width re-blends the face, idle_rate, gap_timeout and max_buffered_audio reconfigure the
        stream, presentation_delay applies to the next frames."""
        names = {p.name for p in parameters}
        if "presentation_delay" in names:
            self._presentation.delay_s = float(self.get_parameter("presentation_delay").value)
        if self.core is None:
            return
        self.core.reconfigure(self._stream_config(lambda name: self.get_parameter(name).value))
        if "face_box" in names:
            self._face_jobs.append(self._apply_face_box)
            self._face_wake.set()
        self._wake.set()

    def _apply_face_box(self):
        """Prepares the last face image again with the face_box parameter (on the face thread)."""
        from lightlip_ros.face import FaceImageError

        try:
            update = self.core.set_face_box(self._face_box())
        except FaceImageError as error:  # validated against the image of then; a newer one may differ
            self._errors.log("face_image", f"face_box not applied: {error}")
            return
        if update is not None:
            self._report_face(update)
        self._wake.set()

    # ----------------------------------------------------------------------------------------- outputs
    def _render_loop(self):
        """Renders frames as soon as their audio is complete and publishes each with its audio at stamp +
        presentation_delay on the node's clock (at once if rendering took longer)."""
        while self._running and rclpy.ok(context=self.context):
            self._wake.wait(timeout=self._presentation.wait_s(self._now_s(), 0.01))
            self._wake.clear()
            if self.core is None:
                continue
            try:
                frames = self.core.poll()
            except Exception as error:  # a bug must not silence the display: report it and go on
                self._errors.note("render", f"rendering failed: {type(error).__name__}: {error}")
                time.sleep(0.1)
                continue
            now = self._now_s()
            self._presentation.add(frames, now)
            for frame in self._presentation.due(now):
                self._publish_frame(frame)
            self._log_core_error()
            if self._state() != self._published_state:
                self._publish_status()

    def _log_core_error(self):
        message, when = self.core.last_error
        if when is not None and when != self._core_error_time:
            self._core_error_time = when
            if message != self._errors.reported:
                self._errors.log("core", message)

    def _publish_frame(self, frame):
        header = Image().header
        header.stamp, header.frame_id = self._stamps.stamp(frame.stamp_s), self._frame_id
        if frame.audio is not None and frame.audio.size:
            chunk = AudioChunk(sample_rate=16000, channels=1, sample_format=AudioChunk.FORMAT_S16LE)
            chunk.header = header
            chunk.data = float_to_s16(frame.audio).tobytes()
            self._audio_out_pub.publish(chunk)
        self._frames_pub.publish(bgr_to_image(frame.image, header))
        if self._compressed_pub.get_subscription_count():
            quality = int(self.get_parameter("jpeg_quality").value)
            self._compressed_pub.publish(bgr_to_compressed(frame.image, header, quality))
        self._recent_frames.append(time.monotonic())

    def _state(self):
        if self.core is None:
            return TalkStatus.STATE_ERROR
        if self.core.state == "idle" and self._presentation.talking_frames:
            return TalkStatus.STATE_TALKING  # rendered, but the last speech frames wait for presentation_delay
        return STATES_BY_NAME[self.core.state]

    def _status(self):
        status = TalkStatus()
        now = self._now_s()
        status.header.stamp = self._stamps.stamp(now)
        status.state = self._state()
        status.state_name = STATE_NAMES[status.state]
        status.model = self._model_path
        face = None if self.core is None else self.core.faces.face
        status.face_detected = face is not None and face.detected
        status.face_note = self._engine_error if self.core is None else self.core.faces.note
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
            status.audio_samples_lost = stats.audio_lost
            status.inputs_rejected = stats.inputs_rejected + self._errors.count
            if stats.last_error_time is not None and (last_error_time is None
                                                      or stats.last_error_time > last_error_time):
                last_error, last_error_time = stats.last_error, stats.last_error_time
        else:
            status.inputs_rejected = self._errors.count
        status.last_error = last_error
        if last_error_time is not None:
            status.last_error_stamp = self._stamps.stamp(last_error_time)
        return status

    def _publish_status(self):
        status = self._status()
        self._published_state = status.state
        self._status_pub.publish(status)
        self._diagnostics_pub.publish(self._diagnostics(status))

    def _diagnostics(self, status):
        diagnostic = DiagnosticStatus(name=f"{self.get_fully_qualified_name()}: talking face",
                                      hardware_id=status.engine or "none")
        if status.state == TalkStatus.STATE_ERROR:
            diagnostic.level, diagnostic.message = DiagnosticStatus.ERROR, status.last_error
        elif status.state == TalkStatus.STATE_WAITING_FOR_FACE:
            diagnostic.level, diagnostic.message = DiagnosticStatus.WARN, status.face_note
        else:
            counts = (status.frames_dropped, status.audio_samples_dropped, status.audio_samples_lost)
            frames, dropped, lost = (now - before for now, before in zip(counts, self._reported))
            self._reported = counts
            problems = ([f"lost {lost / 16000:.2f} s of audio before the node"] if lost else []) + \
                ([f"dropped {frames} frame(s) ({dropped / 16000:.2f} s of audio) under overload"] if dropped else [])
            diagnostic.level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
            diagnostic.message = ("; ".join([status.state_name] + problems)
                                  + (" since the last report" if problems else ""))
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
            "audio_samples_lost": status.audio_samples_lost,
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
        self._face_wake.set()
        for thread in (self._render_thread, self._face_thread):
            if thread.is_alive():
                thread.join(timeout=2.0)
        super().destroy_node()


def main(args=None):
    transport_note = configure_fastdds()  # before rclpy creates the process's DDS participant
    rclpy.init(args=args)
    node = None
    try:
        node = TalkingFaceNode(transport_note=transport_note)
        spin_until_shutdown(node)
    except KeyboardInterrupt:  # Ctrl-C while the model loads
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
