"""The streaming core driven by a fake clock, for tests: a tiny student whose frames depend on the audio,
a core with the bundled face, and real-time feeding of audio in chunks."""
import torch

from lightlip_ros.engines import InferenceEngine
from lightlip_ros.models import student
from lightlip_ros.stream import StreamConfig, TalkingFaceStream

SR = 16000
T0 = 1000.0  # stamp of the first sample of every test stream
TINY_WIDTHS = 0.125  # an eighth of the teacher's widths: the real student code path, a fraction of its cost


def lively_student(seed: int, widths=TINY_WIDTHS):
    """A randomly initialised student whose frames clearly depend on the audio.

    PyTorch's default initialisation shrinks activations layer by layer, so a fresh generator draws nearly
    the same frame for any audio and comparisons between frames would prove nothing; He-normal weights
    keep the signal alive through the network.
    """
    torch.manual_seed(seed)
    model = student(widths)
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            torch.nn.init.uniform_(module.bias, -0.1, 0.1)
    return model.eval()


class FakeClock:
    """The core's clock, moved by the test: arrival, rendering and timeouts become deterministic."""

    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now


class RecordingEngine(InferenceEngine):
    """The engine under test, keeping every frame it produced, in order, for comparison with offline runs."""

    def __init__(self, inner: InferenceEngine):
        self.inner, self.outputs = inner, []
        self.name, self.precision, self.model_path = inner.name, inner.precision, inner.model_path

    def _infer(self, mel_windows, face_inputs):
        frames = self.inner.infer(mel_windows, face_inputs)
        self.outputs.extend(frames)
        return frames


def make_core(engine, face_image, clock=None, **settings):
    clock = clock or FakeClock()
    core = TalkingFaceStream(engine, StreamConfig(**settings), clock=clock)
    assert core.set_face(face_image).ok
    return core, clock


def stream(core, clock, audio, chunk_sizes, start=T0, poll_delay=0.0, rate=SR):
    """Feeds audio in chunks of the given sizes at real time (each chunk arrives when its last sample
    has been captured), polling after every chunk; returns the frames."""
    frames, offset = [], 0
    for size in chunk_sizes:
        chunk = audio[offset:offset + size]
        if chunk.size == 0:
            break
        clock.now = start + (offset + chunk.size) / rate
        core.push_audio(chunk, stamp_s=start + offset / rate, sample_rate=rate)
        clock.now += poll_delay
        frames += core.poll()
        offset += chunk.size
    return frames


def end_stream(core, clock, seconds=1.0, step=0.01):
    """Lets time pass without audio (the gap timeout ends the utterance), polling every `step`."""
    frames = []
    for _ in range(int(round(seconds / step))):
        clock.now += step
        frames += core.poll()
    return frames
