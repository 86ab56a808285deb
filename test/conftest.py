"""Shared fixtures: ROS 2 isolation (own domain per test, discovery on localhost), PyTorch on one thread,
project paths, and the bundled face and speech."""
import itertools
import os
import random
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS = REPO_ROOT / "lightlip_ros" / "assets"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Set before anything imports rclpy: DDS discovery stays on this host and logs stay out of $HOME.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_LOG_DIR", str(Path(tempfile.gettempdir()) / "lightlip-test-ros-log"))

# Fast DDS domains 0..101 map to distinct ports. Start at a random point so that test runs on the same
# host at the same time rarely meet, then give every test its own domain.
_domains = itertools.cycle(range(1, 102))
for _ in range(random.SystemRandom().randrange(101)):
    next(_domains)

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def ros_domain():
    """A ROS_DOMAIN_ID used by this test alone (in-process contexts and subprocesses)."""
    return next(_domains)


@pytest.fixture
def ros_env(ros_domain):
    """Environment for ROS subprocesses of this test."""
    # Unbuffered logging: a node's log file is complete when a test reads it.
    return dict(os.environ, ROS_DOMAIN_ID=str(ros_domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")


@pytest.fixture
def ros_context(ros_domain):
    """An initialised rclpy context on this test's domain, shut down afterwards."""
    import rclpy

    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=ros_domain)
    yield context
    rclpy.try_shutdown(context=context)


@pytest.fixture(scope="session")
def shared_speech_dir():
    path = SHARED_DATA / "speech"
    if not path.is_dir():
        pytest.skip(f"development data not present at {path} (only developers' and CI machines have it)")
    return path


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """PyTorch on one thread in every test: results do not depend on the core count, and on CI's two cores
    the ROS processes a test starts keep a core."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def face_image():
    """The bundled face photo (BGR)."""
    import cv2

    image = cv2.imread(str(ASSETS / "face.jpg"))
    assert image is not None
    return image


@pytest.fixture(scope="session")
def speech():
    """The bundled speech, 16 kHz mono float32."""
    from lightlip_ros.audio import load_audio

    return load_audio(ASSETS / "speech.wav")


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    """A PyTorch engine on a tiny lively student (stream_helpers.lively_student): fast, audio-dependent."""
    from lightlip_ros.engines.torch_engine import TorchEngine
    from lightlip_ros.models import save_generator
    from stream_helpers import lively_student

    return TorchEngine(save_generator(lively_student(0), tmp_path_factory.mktemp("tiny") / "tiny_student.pt"))


@pytest.fixture(scope="session")
def student_checkpoint(tmp_path_factory):
    """The paper's student with seeded random weights: real size, real code paths, no training needed."""
    import torch

    from lightlip_ros.models import save_generator, student

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "student.pt"
    save_generator(student(), path, note="random weights for tests")
    return path


@pytest.fixture
def node_env(ros_env, tmp_path_factory):
    # ONNX exports of the test checkpoint are cached per test session, not in the user's home; full-size
    # frames travel whole through Fast DDS shared memory (see docs/display.md).
    return dict(ros_env, XDG_CACHE_HOME=str(tmp_path_factory.getbasetemp() / "cache"),
                FASTDDS_DEFAULT_PROFILES_FILE=str(ASSETS / "fastdds_localhost.xml"))
