"""One error shape: LightLipError for what a user gave wrong, one readable line, one exit-code convention."""
import pytest

from lightlip_ros.audio import AudioError
from lightlip_ros.display.server import ServerStartError
from lightlip_ros.engines import EngineError
from lightlip_ros.errors import (EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, LightLipError, first_line, run_command,
                                 tool_failure)
from lightlip_ros.face import FaceImageError
from lightlip_ros.image_msgs import ImageFormatError
from lightlip_ros.models import CheckpointError
from lightlip_ros.pcm import PcmError
from training.deploy.engine_builder import BuildError
from training.data.layout import DataError
from training.quant.export import ExportError
from training.quant.plan import PlanError
from training.quant.samples import SampleError
from training.train.config import ConfigError
from training.train.trainer import TrainingError


@pytest.mark.parametrize("error_class", [AudioError, BuildError, CheckpointError, ConfigError, DataError, EngineError,
                                         ExportError, FaceImageError, ImageFormatError, PcmError, PlanError,
                                         SampleError, ServerStartError, TrainingError])
def test_user_errors_share_one_base_and_keep_their_builtin_one(error_class):
    assert issubclass(error_class, LightLipError)
    with pytest.raises(LightLipError, match="bad input"):
        raise error_class("bad input")


def test_first_line_is_the_message_a_user_reads():
    assert first_line(ValueError("\n  shape mismatch  \n  at layer 3\n")) == "shape mismatch"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(FileNotFoundError(2, "No such file or directory", "model.pt")) == \
        "model.pt: No such file or directory"
    assert first_line(FileNotFoundError("no model given")) == "no model given"
    # What a DataLoader worker's error looks like when the main process re-raises it.
    wrapped = DataError("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                        "last):\n  File \"dataset.py\", line 9\ntraining.layout.DataError: clip 7: no audio.wav")
    assert first_line(wrapped) == "clip 7: no audio.wav"


def test_tool_failure_is_the_last_line_of_its_stderr():
    assert tool_failure(b"ffmpeg version 7\n  built with gcc\nin.mp4: Invalid data found\n\n", "exit 1") == \
        "in.mp4: Invalid data found"
    assert tool_failure(b"  \n", "exit code 1") == "exit code 1"


def test_run_command_turns_user_errors_into_one_line_and_the_documented_codes(capsys):
    assert run_command("lightlip-x", lambda: None) == EXIT_OK
    assert run_command("lightlip-x", lambda: 0) == EXIT_OK

    def bad_file():
        raise CheckpointError("model.pt: not a readable PyTorch checkpoint\n(details)")

    assert run_command("lightlip-x", bad_file) == EXIT_ERROR
    assert capsys.readouterr().err == "lightlip-x: error: model.pt: not a readable PyTorch checkpoint\n"

    def missing():
        open("/nonexistent/lightlip/plan.json")

    assert run_command("lightlip-x", missing) == EXIT_ERROR
    assert capsys.readouterr().err == "lightlip-x: error: /nonexistent/lightlip/plan.json: No such file or directory\n"

    def interrupted():
        raise KeyboardInterrupt

    assert run_command("lightlip-x", interrupted, interrupted="interrupted; rerun to resume") == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "lightlip-x: interrupted; rerun to resume\n"

    def bug():
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        run_command("lightlip-x", bug)
