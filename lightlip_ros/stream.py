"""The streaming core: audio chunks and a face image in, lip-synced face frames out. No ROS.

    core = TalkingFaceStream(engine, StreamConfig())
    core.set_face(image_bgr)                       # -> FaceUpdate
    core.push_audio(chunk, stamp_s=t, sample_rate=48000, sample_format="S16LE", channels=2)
    for frame in core.poll():                      # frames whose audio window is complete, idle frames
        show(frame.stamp_s, frame.image)
    core.stats()                                   # counters, latency, per-stage timing

Frame convention. An utterance is a continuous run of audio (each chunk's stamp continues the previous
one). The core prepends 40 ms (640 samples at 16 kHz) of silence to it; frame k (k = 0, 1, ...) is the
generator's output for the 16 mel columns starting at int(80 k / 25) of that padded audio and is
stamped start + k * 40 ms, the start being the stamp of the utterance's first sample (Wav2Lip was
trained with each frame's window starting one frame before the frame). An utterance of n samples has
ceil(n / 640) frames; the last windows read silence after the end. Offline, the same frames come from
melspectrogram(concat(zeros(640), audio, silence)) and windows 0 .. ceil(n / 640) - 1
(`offline_mel_windows`). Frame k is rendered as soon as its columns are final: 162.5-172.5 ms of audio
after its stamp (200 ms window - 40 ms shift + 12.5 ms STFT half window, `frame_lookahead_s`).

All times (stamps, arrival and now) are seconds on one clock, the `clock` given to the core
(time.monotonic by default; a ROS node passes its clock's seconds).
"""
import collections
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .audio import (FPS, HOP_LENGTH, MEL_STEP_SIZE, SAMPLE_RATE, STFT_HALF_WINDOW, StreamingMel, mel_window_start,
                    mel_windows, melspectrogram)
from .engines.base import InferenceEngine
from .errors import first_line
from .face import FaceCache, FaceConfig, FaceImageError, FaceUpdate, PreparedFace
from .pcm import PcmError, StreamingResampler, bytes_per_frame, check_sample_rate, decode_pcm, zero_nonfinite

SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640
FRAME_PERIOD_S = 1.0 / FPS
MIN_BUFFER_S = 0.25  # a frame waits for ~172 ms of audio after it; a smaller limit would drop every frame
MAX_PENDING_UTTERANCES = 32  # utterances ended but not yet rendered (only without a face do they pile up)
PENDING_LIMIT = SAMPLE_RATE  # raw samples held back from the mel stream at most
LOSS_MATCH_S = 0.001  # a stamp gap within this of a whole number of chunks is counted as lost chunks
FUTURE_STAMP_S = 1.0  # an utterance stamped further ahead of the core's clock is reported


@dataclass(frozen=True)
class StreamConfig:
    """How the core paces, batches and protects itself.

    idle_fps: idle frames per second while no speech plays (0: none).
    gap_timeout_s: no audio for this long (on the core's clock) ends the utterance; keep it above the
        publisher's chunk period.
    stamp_tolerance_s: a chunk whose stamp differs from the end of the stream so far by more than this
        starts a new utterance.
    max_buffered_s: most audio received but not yet rendered; beyond it the oldest is dropped.
    crossfade_frames: frames that blend the last talking frame into the idle face after an utterance.
    max_batch: most frames per engine call when several are due.
    stats_window: frames over which latency and stage-time percentiles are computed.
    resample_quality: libsoxr quality of the streaming resampler ("HQ": the offline resampler's).
    """
    idle_fps: float = 5.0
    gap_timeout_s: float = 0.3
    stamp_tolerance_s: float = 0.05
    max_buffered_s: float = 2.0
    crossfade_frames: int = 4
    max_batch: int = 8
    stats_window: int = 250
    resample_quality: str = "HQ"
    face: FaceConfig = field(default_factory=FaceConfig)

    def __post_init__(self):
        checks = (
            (self.idle_fps >= 0, f"idle_fps must be >= 0, got {self.idle_fps}"),
            (self.gap_timeout_s > 0, f"gap_timeout_s must be > 0, got {self.gap_timeout_s}"),
            (self.stamp_tolerance_s >= 0, f"stamp_tolerance_s must be >= 0, got {self.stamp_tolerance_s}"),
            (self.max_buffered_s >= MIN_BUFFER_S,
             f"max_buffered_s must be >= {MIN_BUFFER_S} (a frame needs ~0.2 s of audio), got {self.max_buffered_s}"),
            (self.crossfade_frames >= 0, f"crossfade_frames must be >= 0, got {self.crossfade_frames}"),
            (self.max_batch >= 1, f"max_batch must be >= 1, got {self.max_batch}"),
            (self.stats_window >= 1, f"stats_window must be >= 1, got {self.stats_window}"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass
class Frame:
    """One output image.

    kind: "talking" (rendered from speech), "crossfade" (back to the idle face) or "idle".
    utterance, index: which utterance and which of its frames (talking frames only).
    audio: the 16 kHz mono speech this frame shows, starting at stamp_s (talking frames only; 640 samples,
        fewer for an utterance's last frame): republished with the frame, a speaker stays in sync.
    """
    stamp_s: float
    image: np.ndarray
    kind: str
    utterance: Optional[int] = None
    index: Optional[int] = None
    audio: Optional[np.ndarray] = None

    @property
    def talking(self) -> bool:
        return self.kind == "talking"


@dataclass
class StreamStats:
    """A snapshot of the core's counters. Audio in 16 kHz mono samples:
    audio_received == audio_consumed + audio_dropped + audio_buffered always; audio_lost: samples that
    never arrived (gaps of whole chunks in a running utterance's stamps), so sent == received + lost."""
    state: str
    frames_published: int
    talking_frames: int
    frames_dropped: int
    audio_received: int
    audio_consumed: int
    audio_dropped: int
    audio_buffered: int
    audio_lost: int
    nonfinite_samples: int
    inputs_rejected: int
    utterances: int
    last_error: str
    last_error_time: Optional[float]
    latency_ms_p50: float
    latency_ms_p95: float
    # stage -> {"mean", "p50", "p95"} in ms per frame over the stats window; stages: mel, inference,
    # paste and total (mel + inference + paste + the core's own bookkeeping).
    stage_ms: Dict[str, Dict[str, float]]


def offline_mel_windows(audio_16k: np.ndarray) -> np.ndarray:
    """(ceil(n / 640), 1, 80, 16) windows of one utterance under the frame convention (see the module doc).

    The silence after the end is long enough that no window reaches the spectrogram's reflected edge.
    """
    audio_16k = np.asarray(audio_16k, np.float32)
    count = math.ceil(audio_16k.size / SAMPLES_PER_FRAME)
    if count == 0:
        return np.zeros((0, 1, 80, MEL_STEP_SIZE), np.float32)
    last_column = mel_window_start(count - 1) + MEL_STEP_SIZE
    padded_length = HOP_LENGTH * last_column + 2 * STFT_HALF_WINDOW
    tail = max(0, padded_length - SAMPLES_PER_FRAME - audio_16k.size)
    padded = np.concatenate([np.zeros(SAMPLES_PER_FRAME, np.float32), audio_16k, np.zeros(tail, np.float32)])
    return mel_windows(melspectrogram(padded), count)[:, None]


def _percentiles(values, quantiles=(50, 95)) -> List[float]:
    if not values:
        return [0.0 for _ in quantiles]
    return [float(v) for v in np.percentile(np.asarray(values, np.float64), quantiles)]


def window_end_sample(index: int) -> int:
    """Samples of the padded utterance (silence prefix included) after which frame index's window is final:
    its last column c needs samples up to 200 c + 400."""
    return HOP_LENGTH * (mel_window_start(index) + MEL_STEP_SIZE - 1) + STFT_HALF_WINDOW


def frame_lookahead_s(index: int) -> float:
    """How long after its own stamp frame `index` can be rendered: the speech its window still needs
    (162.5-172.5 ms, as window starts are rounded down to whole mel columns)."""
    return (window_end_sample(index) - SAMPLES_PER_FRAME) / SAMPLE_RATE - index * FRAME_PERIOD_S


class _Utterance:
    """One continuous run of audio: its resampler, mel stream, mel columns and frame schedule.

    Samples reach the mel stream only when a frame needs them, so the mel costs one call per rendered
    frame (or batch) whatever the chunk size.
    """

    def __init__(self, number: int, start_stamp: float, source_start: float, sample_rate: int, quality: str,
                 arrival_s: float):
        self.number = number
        self.start_stamp = start_stamp  # of frame 0
        # The publisher's stamp of the first sample (earlier than start_stamp when the frames had to be
        # moved after the speech before): the chunks that continue the utterance follow it.
        self.source_start = source_start
        self.sample_rate = sample_rate
        self.resampler = StreamingResampler(sample_rate, SAMPLE_RATE, quality)
        self.mel = StreamingMel()
        self.columns = np.zeros((80, 0), np.float32)  # final mel columns from absolute index column_base on
        self.column_base = 0
        self.input_samples = 0  # at the input rate, including any dropped before resampling
        self.last_chunk_samples = 0  # the size of the publisher's chunks (input rate), for loss detection
        self.samples = 0  # 16 kHz samples of speech (the silence prefix and tail excluded)
        self.next_frame = 0  # the first frame neither rendered nor dropped
        self.frame_count: Optional[int] = None  # known once the utterance has ended
        self.last_arrival = arrival_s
        self.padded_samples = SAMPLES_PER_FRAME  # received so far, silence prefix and tail included
        self.pending: List[np.ndarray] = [np.zeros(SAMPLES_PER_FRAME, np.float32)]  # not yet in the mel
        # Speech not yet shown by a frame, kept to hand each frame its own audio; starts at speech_start.
        self.speech: Deque[np.ndarray] = collections.deque()
        self.speech_start = 0
        # (padded samples after a chunk, that chunk's arrival): tells which chunk completed a frame.
        self.completions: Deque[Tuple[int, float]] = collections.deque()
        self.mel_seconds = 0.0  # mel computation time not yet attributed to a rendered frame

    @property
    def ended(self) -> bool:
        return self.frame_count is not None

    def expected_stamp(self) -> float:
        """The publisher's stamp of the next chunk if it continues the utterance."""
        return self.source_start + self.input_samples / self.sample_rate

    def frame_stamp(self, index: int) -> float:
        return self.start_stamp + index * FRAME_PERIOD_S

    def frame_samples(self, index: int) -> int:
        """Speech samples frame `index` shows (640, fewer for the last frame of an utterance)."""
        return max(0, min(SAMPLES_PER_FRAME, self.samples - index * SAMPLES_PER_FRAME))

    def buffered(self) -> int:
        return max(0, self.samples - self.next_frame * SAMPLES_PER_FRAME)

    def add(self, samples: np.ndarray, input_count: int, arrival_s: float) -> int:
        resampled = self.resampler.process(samples)
        self.input_samples += input_count
        self.last_chunk_samples = input_count
        self.last_arrival = arrival_s
        self._speech(resampled, arrival_s)
        return resampled.size

    def finish(self, arrival_s: float) -> int:
        """Ends the utterance: flushes the resampler, pads silence until every frame's window is final.
        Returns the 16 kHz samples the flush added."""
        tail = self.resampler.flush()
        self._speech(tail, arrival_s)
        self.frame_count = math.ceil(self.samples / SAMPLES_PER_FRAME)
        if self.frame_count > self.next_frame:
            silence = window_end_sample(self.frame_count - 1) - self.padded_samples
            if silence > 0:
                self.pending.append(np.zeros(silence, np.float32))
                self.padded_samples += silence
            self.completions.append((self.padded_samples, arrival_s))
        return tail.size

    def _speech(self, samples: np.ndarray, arrival_s: float):
        if samples.size:
            self.samples += samples.size
            self.padded_samples += samples.size
            self.pending.append(samples)
            self.speech.append(samples)
            self.completions.append((self.padded_samples, arrival_s))
            if self.padded_samples - self.mel.samples_pushed >= PENDING_LIMIT:
                self._flush_pending()  # nothing renders (no face yet): keep memory to mel columns

    def ready(self, index: int) -> bool:
        return self.padded_samples >= window_end_sample(index)

    def _flush_pending(self):
        started = time.perf_counter()
        samples = self.pending[0] if len(self.pending) == 1 else np.concatenate(self.pending)
        self.pending = []
        columns = self.mel.push(samples)
        if columns.shape[1]:
            self.columns = np.concatenate([self.columns, columns], axis=1)
        self.advance(0)  # drops columns of frames skipped meanwhile
        self.mel_seconds += time.perf_counter() - started

    def window(self, index: int) -> np.ndarray:
        """The (80, 16) mel window of a ready frame."""
        if self.pending:
            self._flush_pending()
        start = mel_window_start(index) - self.column_base
        return self.columns[:, start:start + MEL_STEP_SIZE]

    def completion_arrival(self, index: int) -> float:
        """Arrival time of the chunk after which frame `index`'s window was final."""
        self._forget_completions(window_end_sample(index))
        return self.completions[0][1]

    def _forget_completions(self, needed: int):
        """Drops the chunks that completed no window at or after `needed` samples."""
        while len(self.completions) > 1 and self.completions[0][0] < needed:
            self.completions.popleft()

    def frame_audio(self, index: int) -> np.ndarray:
        """The speech samples frame `index` shows (call before advancing past it)."""
        self._forget_speech(index * SAMPLES_PER_FRAME)
        parts, needed = [], self.frame_samples(index)
        for chunk in self.speech:
            if needed <= 0:
                break
            parts.append(chunk[:needed])
            needed -= parts[-1].size
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def _forget_speech(self, first_kept: int):
        while self.speech and self.speech_start + self.speech[0].size <= first_kept:
            self.speech_start += self.speech.popleft().size
        if self.speech and self.speech_start < first_kept:
            self.speech[0] = self.speech[0][first_kept - self.speech_start:]
            self.speech_start = first_kept

    def advance(self, count: int):
        """Moves the schedule past `count` frames (rendered or dropped) and forgets columns and speech no
        longer needed."""
        self.next_frame += count
        self._forget_speech(self.next_frame * SAMPLES_PER_FRAME)
        self._forget_completions(window_end_sample(self.next_frame))
        first_needed = mel_window_start(self.next_frame)
        if first_needed > self.column_base:
            drop = min(first_needed - self.column_base, self.columns.shape[1])
            self.columns = self.columns[:, drop:]
            self.column_base += drop

    def remaining(self) -> int:
        """Frames neither rendered nor dropped (ended utterances only)."""
        return max(0, (self.frame_count or 0) - self.next_frame)


@dataclass
class _Batch:
    """Frames taken for one engine call: (utterance, index) pairs, their windows and timing so far."""
    due: List[Tuple[_Utterance, int]]
    windows: np.ndarray
    mel_seconds: float
    take_seconds: float


class TalkingFaceStream:
    """Lip-syncs the current face to streamed speech; thread-safe (one lock around every call).

    Overload policy: when audio received but not yet rendered exceeds config.max_buffered_s, the oldest
    whole frames of it are dropped (counted in frames_dropped and audio_dropped) and the schedule jumps
    ahead, so the face catches up with live speech instead of lagging further. A single chunk longer
    than the limit keeps only its newest max_buffered_s (the rest is dropped before decoding, so memory
    stays bounded whatever arrives) and starts a new utterance there.
    """

    def __init__(self, engine: InferenceEngine, config: StreamConfig = StreamConfig(),
                 clock: Callable[[], float] = time.monotonic, face_cache: Optional[FaceCache] = None):
        self.engine = engine
        self.config = config
        self.clock = clock
        self.faces = face_cache or FaceCache(config.face)
        # The first spectrogram imports librosa's STFT lazily (about 2 s): pay it here, not on frame 0.
        melspectrogram(np.zeros(2 * STFT_HALF_WINDOW, np.float32))
        self._lock = threading.RLock()  # every counter and utterance; never held while the engine runs
        self._poll_lock = threading.Lock()  # one poll at a time
        self._utterances: List[_Utterance] = []
        self._utterance_count = 0
        self._last_stamp: Optional[float] = None  # stamp of the last published frame
        self._next_idle_time: Optional[float] = None  # None: an idle frame is due now
        self._last_talking: Optional[Tuple[int, PreparedFace, np.ndarray, float]] = None
        self._counts = collections.Counter()
        self._last_error = ""
        self._last_error_time: Optional[float] = None
        self._latencies: Deque[float] = collections.deque(maxlen=config.stats_window)
        self._stages: Dict[str, Deque[float]] = {
            name: collections.deque(maxlen=config.stats_window) for name in ("mel", "inference", "paste", "total")}
        self._limit = int(round(config.max_buffered_s * SAMPLE_RATE))
        # librosa's first STFT costs over a second (lazy imports, JIT): pay it now, not on the first
        # frame of the first utterance, which would otherwise reach the display late.
        StreamingMel().push(np.zeros(4 * STFT_HALF_WINDOW, np.float32))

    def reconfigure(self, config: StreamConfig) -> None:
        """Applies new settings live: the face is prepared again for new face settings (no new
        detection), a smaller buffer limit drops the excess at once, speech in progress goes on."""
        with self._lock:
            if config.face != self.faces.config:
                self.faces.reconfigure(config.face)
            if config.stats_window != self.config.stats_window:
                self._latencies = collections.deque(self._latencies, maxlen=config.stats_window)
                self._stages = {name: collections.deque(values, maxlen=config.stats_window)
                                for name, values in self._stages.items()}
            if config.idle_fps != self.config.idle_fps:
                self._next_idle_time = None
            self.config = config
            self._limit = int(round(config.max_buffered_s * SAMPLE_RATE))
            self._enforce_limit()

    # ----------------------------------------------------------------------------------------- inputs
    def set_face(self, image_bgr, box: Optional[Sequence[int]] = None) -> FaceUpdate:
        """Sets the face to animate (see FaceCache.set_face). Raises FaceImageError for a malformed image
        (counted in inputs_rejected); an image without a face keeps the previous one. Safe to call from
        any thread while audio is pushed and frames are polled."""
        try:
            # Detection runs under the face cache's own lock: audio and rendering go on meanwhile.
            update = self.faces.set_face(image_bgr, box)
        except FaceImageError as error:
            with self._lock:
                self._reject(str(error))
            raise
        if update.box is None:
            with self._lock:
                self._note_error(update.note)
        return update

    def set_face_box(self, box: Optional[Sequence[int]]) -> Optional[FaceUpdate]:
        """Prepares the last face image again with a new box (None: detect); None before any image.
        Raises FaceImageError for a box not inside that image."""
        update = self.faces.set_box(box)
        if update is not None and update.box is None:
            with self._lock:
                self._note_error(update.note)
        return update

    def report_input_error(self, message: str, rejected: bool = True) -> None:
        """Notes a problem the caller found before handing anything to the core (a malformed image message,
        a failed request), counted in inputs_rejected when rejected, so every count lives in stats()."""
        with self._lock:
            if rejected:
                self._counts["rejected"] += 1
            self._note_error(message)

    def push_audio(self, audio, stamp_s: Optional[float] = None, arrival_s: Optional[float] = None,
                   sample_rate: int = SAMPLE_RATE, sample_format: Optional[str] = None, channels: int = 1) -> None:
        """Adds a chunk of speech.

        audio: raw interleaved PCM bytes (give sample_format "S16LE" or "F32LE" and channels), or a 1-D
        float array of mono samples in [-1, 1]. stamp_s: time of its first sample (None: it continues
        the stream, or starts one now). arrival_s: when it arrived (None: now).
        Raises PcmError (one readable line, counted in inputs_rejected) for a chunk that cannot be used;
        the stream goes on unaffected.
        """
        with self._lock:
            arrival = self.clock() if arrival_s is None else float(arrival_s)
            try:
                rate = check_sample_rate(sample_rate)
                samples, head_dropped, nonfinite = self._decode(audio, rate, sample_format, channels)
            except PcmError as error:
                self._reject(str(error))
                raise
            if nonfinite:
                self._counts["nonfinite"] += nonfinite
                self._note_error(f"{nonfinite} NaN/Inf sample(s) in an audio chunk replaced by silence",
                                 arrival)
            stamp = None if stamp_s is None else float(stamp_s)
            utterance = self._active()
            same_rate = utterance is not None and utterance.sample_rate == rate
            gap = stamp - utterance.expected_stamp() if same_rate and stamp is not None else 0.0
            continues = same_rate and abs(gap) <= self.config.stamp_tolerance_s
            if same_rate and gap > self.config.stamp_tolerance_s:
                self._count_loss(utterance, gap, arrival)
            if not continues and stamp is not None and stamp - arrival > FUTURE_STAMP_S:
                self._note_error(f"audio stamped {stamp - arrival:.1f} s ahead of this node's clock: frames "
                                 f"carry the audio's stamps; check the publisher's clock", arrival)
            if head_dropped:
                # A chunk longer than the whole buffer: everything older than its newest part goes.
                dropped_16k = int(round(head_dropped * SAMPLE_RATE / rate))
                self._counts["received"] += dropped_16k
                self._counts["dropped"] += dropped_16k
                if stamp is None:
                    stamp = utterance.expected_stamp() if continues else arrival
                stamp += head_dropped / rate
                self._drop_all_pending()
                utterance, continues = None, False
                self._note_error(f"audio chunk of {(head_dropped + samples.size) / rate:.1f} s exceeds the "
                                 f"{self.config.max_buffered_s:g} s buffer: dropped its oldest "
                                 f"{head_dropped / rate:.1f} s", arrival)
            if not continues:
                if utterance is not None:
                    self._finish(utterance, arrival)
                source = arrival if stamp is None else stamp
                utterance = self._start(self._start_stamp(source, arrival), source, rate, arrival)
            self._counts["received"] += utterance.add(samples, samples.size, arrival)
            self._enforce_limit()

    def finish_utterance(self, now_s: Optional[float] = None) -> None:
        """Ends the current utterance now (e.g. the speech source says it is done) instead of waiting
        for gap_timeout_s."""
        with self._lock:
            utterance = self._active()
            if utterance is not None:
                self._finish(utterance, self.clock() if now_s is None else float(now_s))

    # ---------------------------------------------------------------------------------------- outputs
    def poll(self, now_s: Optional[float] = None) -> List[Frame]:
        """Renders every frame that is due (in batches of up to max_batch), then the crossfade back to
        the idle face after an utterance, or an idle frame when one is due. Frames come in stamp order.

        The engine runs outside the lock that push_audio takes, so audio keeps arriving during
        inference; frames dropped meanwhile (overload) are discarded when their inference returns.
        """
        with self._poll_lock:
            with self._lock:
                now = self.clock() if now_s is None else float(now_s)
                utterance = self._active()
                if utterance is not None and now - utterance.last_arrival >= self.config.gap_timeout_s:
                    self._finish(utterance, now)
                face = self.faces.face
                if face is None:
                    return []
            frames: List[Frame] = []
            while True:
                with self._lock:
                    batch = self._take_batch()
                if batch is None:
                    break
                frames.extend(self._render(face, batch))
            with self._lock:
                finished = [u for u in self._utterances if u.ended and u.remaining() == 0]
                if finished:
                    self._utterances = [u for u in self._utterances if u not in finished]
                    if not self._utterances:
                        frames.extend(self._crossfade(face, {u.number for u in finished}))
                        self._next_idle_time = now + self._idle_period()
                if not self._utterances and not frames:
                    idle = self._idle(face, now)
                    if idle is not None:
                        frames.append(idle)
                self._counts["published"] += len(frames)
                return frames

    def stats(self) -> StreamStats:
        with self._lock:
            buffered = sum(u.buffered() for u in self._utterances)
            p50, p95 = _percentiles(self._latencies)
            stage_ms = {}
            for name, values in self._stages.items():
                median, high = _percentiles(values)
                mean = float(np.mean(values)) if values else 0.0
                stage_ms[name] = {"mean": 1e3 * mean, "p50": 1e3 * median, "p95": 1e3 * high}
            return StreamStats(
                state=self.state, frames_published=self._counts["published"],
                talking_frames=self._counts["talking"], frames_dropped=self._counts["frames_dropped"],
                audio_received=self._counts["received"], audio_consumed=self._counts["consumed"],
                audio_dropped=self._counts["dropped"], audio_buffered=buffered, audio_lost=self._counts["lost"],
                nonfinite_samples=self._counts["nonfinite"], inputs_rejected=self._counts["rejected"],
                utterances=self._utterance_count, last_error=self._last_error,
                last_error_time=self._last_error_time, latency_ms_p50=1e3 * p50, latency_ms_p95=1e3 * p95,
                stage_ms=stage_ms)

    @property
    def last_error(self) -> Tuple[str, Optional[float]]:
        """(the most recent error or rejection, its time on the core's clock; None if none yet)."""
        with self._lock:
            return self._last_error, self._last_error_time

    @property
    def state(self) -> str:
        if self.faces.face is None:
            return "waiting_for_face"
        return "talking" if self._utterances else "idle"

    # -------------------------------------------------------------------------------------- internals
    def _decode(self, audio, rate: int, sample_format, channels) -> Tuple[np.ndarray, int, int]:
        """-> (float32 mono samples to keep, input samples dropped from the chunk's head, NaN/Inf count)."""
        limit = int(math.ceil(self.config.max_buffered_s * rate))
        if isinstance(audio, (bytes, bytearray, memoryview)):
            if sample_format is None:
                raise PcmError("raw audio bytes need a sample_format (S16LE or F32LE)")
            frame_bytes = bytes_per_frame(sample_format, channels)
            data = memoryview(audio).cast("B")
            count = len(data) // frame_bytes
            head = max(0, count - limit) if len(data) % frame_bytes == 0 else 0
            samples, nonfinite = decode_pcm(data[head * frame_bytes:], sample_format, channels)
            return samples, head, nonfinite
        samples = np.asarray(audio)
        if samples.ndim != 1 or not np.issubdtype(samples.dtype, np.floating):
            raise PcmError(f"audio samples must be a 1-D float array, got {samples.dtype} of shape {samples.shape}")
        if samples.size == 0:
            raise PcmError("empty audio chunk")
        head = max(0, samples.size - limit)
        samples = np.array(samples[head:], dtype=np.float32)
        return samples, head, zero_nonfinite(samples)

    def _active(self) -> Optional[_Utterance]:
        if self._utterances and not self._utterances[-1].ended:
            return self._utterances[-1]
        return None

    def _start_stamp(self, stamp: float, arrival: float) -> float:
        """A new utterance's first stamp: its own, unless that lies before the frames of the speech before
        it (a publisher's stamps stepping back): then right after them, so stamps never go backwards and
        the frames are presented at the pace of speech, not in a burst."""
        ends = [u.frame_stamp(math.ceil(u.samples / SAMPLES_PER_FRAME)) for u in self._utterances]
        if self._last_stamp is not None:
            ends.append(self._last_stamp + FRAME_PERIOD_S)
        floor = max(ends, default=-math.inf)
        if stamp < floor - self.config.stamp_tolerance_s:
            self._note_error(f"audio stamped {floor - stamp:.2f} s before the end of the speech before it: "
                             f"its frames follow that speech", arrival)
            return floor
        return stamp

    def _start(self, stamp: float, source_stamp: float, rate: int, arrival: float) -> _Utterance:
        self._utterance_count += 1
        utterance = _Utterance(self._utterance_count, stamp, source_stamp, rate, self.config.resample_quality,
                               arrival)
        self._utterances.append(utterance)
        while len(self._utterances) > MAX_PENDING_UTTERANCES:
            self._drop_frames(self._utterances[0], self._utterances[0].remaining())
            self._utterances.pop(0)
        return utterance

    def _finish(self, utterance: _Utterance, now: float):
        self._counts["received"] += utterance.finish(now)
        self._enforce_limit()

    def _count_loss(self, utterance: _Utterance, gap: float, arrival: float):
        """Counts a stamp gap inside a running utterance as audio lost before the core when it is a whole
        number of the publisher's chunks (a pause is neither that exact nor, at real time, that short:
        after gap_timeout_s without audio the utterance has ended)."""
        if arrival - utterance.last_arrival >= self.config.gap_timeout_s or not utterance.last_chunk_samples:
            return
        chunks = round(gap * utterance.sample_rate / utterance.last_chunk_samples)
        if chunks < 1 or abs(gap - chunks * utterance.last_chunk_samples / utterance.sample_rate) > LOSS_MATCH_S:
            return
        self._counts["lost"] += int(round(gap * SAMPLE_RATE))
        self._note_error(f"{1e3 * gap:.0f} ms of audio ({chunks} chunk(s)) missing before a chunk: lost before "
                         f"this node (the publisher's QoS depth or the network)", arrival)

    def _drop_frames(self, utterance: _Utterance, count: int):
        """Drops the next `count` frames of an utterance with the speech they show."""
        samples = sum(utterance.frame_samples(utterance.next_frame + i) for i in range(count))
        self._counts["dropped"] += samples
        self._counts["frames_dropped"] += count
        utterance.advance(count)

    def _drop_all_pending(self):
        for utterance in self._utterances:
            if not utterance.ended:
                # The resampler's flushed tail is speech received like any other, dropped with the rest.
                self._counts["received"] += utterance.finish(utterance.last_arrival)
            self._drop_frames(utterance, utterance.remaining())
        self._utterances = []

    def _enforce_limit(self):
        excess = sum(u.buffered() for u in self._utterances) - self._limit
        if excess <= 0:
            return
        frames_before = self._counts["frames_dropped"]
        for utterance in list(self._utterances):
            if excess <= 0:
                break
            if utterance.ended:
                count = min(utterance.remaining(), math.ceil(excess / SAMPLES_PER_FRAME))
            else:
                count = min(math.ceil(excess / SAMPLES_PER_FRAME), utterance.buffered() // SAMPLES_PER_FRAME)
            before = self._counts["dropped"]
            self._drop_frames(utterance, count)
            excess -= self._counts["dropped"] - before
            if utterance.ended and utterance.remaining() == 0 and utterance is not self._utterances[-1]:
                self._utterances.remove(utterance)
        dropped = self._counts["frames_dropped"] - frames_before
        self._note_error(f"overload: more than {self.config.max_buffered_s:g} s of audio waiting, dropped the "
                         f"oldest {dropped} frame(s) to catch up with live speech")

    def _due(self) -> List[Tuple[_Utterance, int]]:
        due = []
        for utterance in self._utterances:
            index = utterance.next_frame
            end = utterance.frame_count if utterance.ended else None
            while len(due) < self.config.max_batch and (end is None or index < end) and utterance.ready(index):
                due.append((utterance, index))
                index += 1
            if len(due) >= self.config.max_batch or (end is None or index < end):
                break  # later utterances wait until this one is rendered to its end
        return due

    def _take_batch(self) -> Optional["_Batch"]:
        """The frames due now with their mel windows (under the lock), or None when none is due."""
        started = time.perf_counter()
        due = self._due()
        if not due:
            return None
        windows = np.stack([u.window(i) for u, i in due])[:, None]
        mel_seconds = 0.0
        for utterance in {id(u): u for u, _ in due}.values():
            mel_seconds += utterance.mel_seconds
            utterance.mel_seconds = 0.0
        return _Batch(due, windows, mel_seconds, time.perf_counter() - started)

    def _render(self, face: PreparedFace, batch: "_Batch") -> List[Frame]:
        """Runs the engine and pastes outside the lock, then books the frames that are still due."""
        count = len(batch.due)
        faces = np.broadcast_to(face.model_input, (count,) + face.model_input.shape)
        try:
            inferred = time.perf_counter()
            predictions = self.engine.infer(batch.windows, faces)
            inference = (time.perf_counter() - inferred) / count
        except Exception as error:  # an engine failure costs these frames, not the stream
            with self._lock:
                for utterance, index in batch.due:
                    if utterance.next_frame == index:
                        self._drop_frames(utterance, 1)
                self._note_error(f"inference failed, {count} frame(s) dropped: {first_line(error)}")
            return []
        pastes = []
        for prediction in predictions:
            pasted = time.perf_counter()
            pastes.append((face.paste(prediction), time.perf_counter() - pasted))
        with self._lock:
            return self._book(face, batch, pastes, inference)

    def _book(self, face: PreparedFace, batch: "_Batch", pastes, inference: float) -> List[Frame]:
        frames = []
        mel = batch.mel_seconds / len(batch.due)
        overhead = batch.take_seconds / len(batch.due)
        for (utterance, index), (image, paste) in zip(batch.due, pastes):
            if utterance.next_frame != index:
                continue  # dropped by the overload policy while the engine ran: counted there
            arrival = utterance.completion_arrival(index)
            latency = self.clock() - arrival
            self._counts["consumed"] += utterance.frame_samples(index)
            self._counts["talking"] += 1
            audio = utterance.frame_audio(index)
            utterance.advance(1)
            stamp = utterance.frame_stamp(index)
            frames.append(Frame(stamp, image, "talking", utterance.number, index, audio))
            self._last_stamp = stamp
            self._latencies.append(latency)
            self._stages["mel"].append(mel)
            self._stages["inference"].append(inference)
            self._stages["paste"].append(paste)
            self._stages["total"].append(mel + overhead + inference + paste)
        if frames:
            self._last_talking = (frames[-1].utterance, face, frames[-1].image, frames[-1].stamp_s)
        return frames

    def _crossfade(self, face: PreparedFace, utterances) -> List[Frame]:
        """Frames from the last talking frame of one of `utterances` back to the idle face."""
        if self._last_talking is None or self.config.crossfade_frames == 0:
            return []
        number, talking_face, last_image, last_stamp = self._last_talking
        self._last_talking = None
        if number not in utterances or talking_face is not face:
            return []  # nothing of that speech was shown, or the face changed: the idle face follows directly
        count = self.config.crossfade_frames
        frames = []
        for step in range(1, count + 1):
            weight = step / (count + 1)
            image = cv2.addWeighted(last_image, 1.0 - weight, face.image, weight, 0.0)
            stamp = last_stamp + step * FRAME_PERIOD_S
            frames.append(Frame(stamp, image, "crossfade"))
            self._last_stamp = stamp
        return frames

    def _idle_period(self) -> float:
        return 1.0 / self.config.idle_fps if self.config.idle_fps > 0 else math.inf

    def _idle(self, face: PreparedFace, now: float) -> Optional[Frame]:
        if self.config.idle_fps <= 0:
            return None
        period = self._idle_period()
        if self._next_idle_time is not None and now < self._next_idle_time - 1e-9:
            return None
        # Keep the rate exact on average whatever the poll period; after a long pause restart from now.
        due = now if self._next_idle_time is None else self._next_idle_time
        self._next_idle_time = due + period if now - due < period else now + period
        # After speech stamped far ahead of this clock (reported when it came), idle frames return to it.
        ahead = self._last_stamp is not None and self._last_stamp - now > FUTURE_STAMP_S
        stamp = now if self._last_stamp is None or ahead else max(now, self._last_stamp + FRAME_PERIOD_S)
        self._last_stamp = stamp
        return Frame(stamp, face.image, "idle")

    def _reject(self, message: str):
        self._counts["rejected"] += 1
        self._note_error(message)

    def _note_error(self, message: str, when: Optional[float] = None):
        self._last_error = message
        self._last_error_time = self.clock() if when is None else when


class PresentationQueue:
    """Holds rendered frames until their presentation time: stamp + delay_s on the core's clock, so a
    display showing frames as they arrive and a speaker playing their audio stay in sync at a steady
    latency. A frame whose time has passed (rendering took longer, or a stamp from the past) goes out at
    once; stamps ahead of the clock (a publisher's clock running ahead) wait no longer than the delay.
    Used from one thread (the one that publishes); `talking_frames` may be read from any.
    """

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = float(delay_s)
        self._frames: Deque[Tuple[float, Frame]] = collections.deque()
        self.talking_frames = 0  # speech frames held: the speech is still being shown

    def add(self, frames: Sequence[Frame], now_s: float) -> None:
        self._frames.extend((min(frame.stamp_s, now_s) + self.delay_s, frame) for frame in frames)
        self.talking_frames += sum(frame.talking for frame in frames)

    def due(self, now_s: float) -> List[Frame]:
        """The frames whose presentation time has come, oldest first."""
        ready = []
        while self._frames and self._frames[0][0] <= now_s:
            ready.append(self._frames.popleft()[1])
        self.talking_frames -= sum(frame.talking for frame in ready)
        return ready

    def wait_s(self, now_s: float, longest_s: float) -> float:
        """How long the publisher may sleep before the next frame is due (at most longest_s)."""
        if not self._frames:
            return longest_s
        return min(longest_s, max(0.0, self._frames[0][0] - now_s))

    def __len__(self) -> int:
        return len(self._frames)
