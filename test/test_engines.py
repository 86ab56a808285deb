"""Inference engines: PyTorch and ONNX Runtime agree, ONNX export and its cache, engine selection (no ROS)."""
import importlib.util
import logging
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from lightlip_ros.audio import load_audio, mel_windows, melspectrogram
from lightlip_ros.engines import EngineError, EngineOptions, select_engine
from lightlip_ros.engines.base import ONNX_OPSET
from lightlip_ros.engines.onnxruntime_engine import OnnxRuntimeEngine, exported_onnx_path
from lightlip_ros.engines.torch_engine import TorchEngine
from lightlip_ros.face import FaceCache
from lightlip_ros.models import save_generator
from stream_helpers import lively_student

ASSETS = Path(__file__).resolve().parents[1] / "lightlip_ros" / "assets"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("engines")


@pytest.fixture(scope="module")
def checkpoint(workdir):
    return save_generator(lively_student(0), workdir / "tiny_student.pt")


@pytest.fixture(scope="module")
def options(workdir):
    return EngineOptions(threads=1, cache_dir=workdir / "cache")


@pytest.fixture(scope="module")
def onnx_engine(checkpoint, options):
    return OnnxRuntimeEngine(checkpoint, options)


@pytest.fixture(scope="module")
def real_inputs():
    """Eight frames of the bundled speech and face, as the stream feeds them."""
    audio = load_audio(ASSETS / "speech.wav")
    windows = mel_windows(melspectrogram(np.concatenate([np.zeros(640, np.float32), audio])), 40)[::5]
    cache = FaceCache()
    assert cache.set_face(cv2.imread(str(ASSETS / "face.jpg"))).ok
    faces = np.repeat(cache.face.model_input[None], len(windows), axis=0)
    return windows[:, None].astype(np.float32), faces


def test_torch_and_onnxruntime_agree_on_real_inputs(checkpoint, options, onnx_engine, real_inputs):
    torch_engine = TorchEngine(checkpoint, options)
    mels, faces = real_inputs
    expected = torch_engine.infer(mels, faces)
    got = onnx_engine.infer(mels, faces)
    assert got.shape == (8, 3, 96, 96) and got.dtype == np.float32
    assert np.abs(got - expected).max() <= 1e-4
    # Different audio gives different frames: the comparison above is not between constant outputs.
    assert np.abs(expected[0] - expected[4]).max() > 1e-3
    # Batch size does not change a frame.
    single = onnx_engine.infer(mels[2:3], faces[2:3])
    assert np.abs(single[0] - got[2]).max() <= 1e-5


def test_engines_report_name_precision_architecture(checkpoint, options, onnx_engine):
    torch_engine = TorchEngine(checkpoint, options)
    assert (torch_engine.name, torch_engine.precision, torch_engine.architecture) == ("torch", "fp32", "student")
    assert (onnx_engine.name, onnx_engine.precision, onnx_engine.architecture) == ("onnxruntime", "fp32", "student")
    assert onnx_engine.model_path.endswith(".onnx") and onnx_engine.source_path == str(checkpoint)
    assert onnx_engine.providers[-1] == "CPUExecutionProvider"
    assert "onnxruntime fp32 student" in onnx_engine.describe()


def test_export_is_opset_17_with_dynamic_batch_and_metadata(checkpoint, onnx_engine):
    model = onnx.load(onnx_engine.model_path)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [ONNX_OPSET]
    assert [i.name for i in model.graph.input] == ["mel", "face"]
    for value in list(model.graph.input) + list(model.graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param, f"{value.name} has a fixed batch size"
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["lightlip.architecture"] == "student" and meta["source_checkpoint"] == checkpoint.name
    # BatchNorm is folded away for inference.
    assert "BatchNormalization" not in {node.op_type for node in model.graph.node}
    # Written atomically: no temporary file is left next to the export.
    assert not list(Path(onnx_engine.model_path).parent.glob("*.tmp"))


def test_export_cache_is_keyed_by_content(checkpoint, options, onnx_engine, workdir):
    again = OnnxRuntimeEngine(checkpoint, options)
    assert again.cached and not again.exported and again.model_path == onnx_engine.model_path
    # Another checkpoint under the same name is another cache entry.
    other = save_generator(lively_student(1), workdir / "other" / checkpoint.name)
    assert exported_onnx_path(other, options.cache_dir) != exported_onnx_path(checkpoint, options.cache_dir)


def test_damaged_cache_entry_is_exported_again(checkpoint, workdir, real_inputs):
    options = EngineOptions(cache_dir=workdir / "damaged-cache")
    first = OnnxRuntimeEngine(checkpoint, options)
    Path(first.model_path).write_bytes(b"\x00not onnx")
    second = OnnxRuntimeEngine(checkpoint, options)
    assert second.exported
    mels, faces = real_inputs
    np.testing.assert_allclose(second.infer(mels[:2], faces[:2]), first.infer(mels[:2], faces[:2]), atol=1e-6)


def test_auto_selects_onnxruntime_and_says_why(checkpoint, options, onnx_engine):
    engine, reason = select_engine(checkpoint, "auto", options=options)
    assert engine.name == "onnxruntime"
    assert reason.startswith("onnxruntime: ") and "\n" not in reason
    assert "cached ONNX export of tiny_student.pt" in reason
    if importlib.util.find_spec("tensorrt") is None:
        assert "tensorrt not installed" in reason


def test_preference_is_tried_first(checkpoint, options):
    engine, reason = select_engine(checkpoint, "torch", options=options)
    assert engine.name == "torch" and reason == "torch: loaded tiny_student.pt"


def test_corrupt_model_falls_back_with_a_reason(checkpoint, options, workdir, caplog):
    corrupt = workdir / "corrupt.onnx"
    corrupt.write_bytes(b"this is not a protobuf" * 50)
    with caplog.at_level(logging.WARNING):
        engine, reason = select_engine(corrupt, "onnxruntime", logging.getLogger("test"), options,
                                       fallback_model=checkpoint)
    assert engine.name == "onnxruntime" and Path(engine.source_path) == checkpoint
    assert "corrupt.onnx is not a readable ONNX model" in reason
    assert "used fallback tiny_student.pt" in reason
    assert any("corrupt.onnx" in record.getMessage() for record in caplog.records)


def test_corrupt_checkpoint_without_fallback_lists_every_reason(options, workdir):
    corrupt = workdir / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x02 truncated pickle")
    with pytest.raises(EngineError) as error:
        select_engine(corrupt, "auto", options=options)
    message = str(error.value)
    assert "\n" not in message and "onnxruntime:" in message and "torch:" in message
    assert "not a readable PyTorch checkpoint" in message


def test_wrong_format_for_the_preferred_engine_falls_back(checkpoint, options, onnx_engine):
    engine, reason = select_engine(onnx_engine.model_path, "torch", options=options)
    assert engine.name == "onnxruntime"
    assert reason.startswith("onnxruntime: torch cannot read an ONNX model")


def test_missing_model_file_falls_back_to_the_fallback_model(checkpoint, options, workdir):
    engine, reason = select_engine(workdir / "absent.pt", "auto", options=options, fallback_model=checkpoint)
    assert engine.name == "onnxruntime" and "absent.pt: no such model file" in reason


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
def test_tensorrt_engine_file_without_tensorrt_falls_back(checkpoint, options, workdir):
    plan = workdir / "student.engine"
    plan.write_bytes(b"serialized engine")
    engine, reason = select_engine(plan, "auto", options=options, fallback_model=checkpoint)
    assert engine.name == "onnxruntime"
    assert reason.startswith("onnxruntime: tensorrt not installed")


def test_bad_arguments_are_readable(onnx_engine):
    with pytest.raises(ValueError, match="unknown engine preference"):
        select_engine("model.pt", "cuda")
    with pytest.raises(ValueError, match=r"\(B, 1, 80, 16\)"):
        onnx_engine.infer(np.zeros((1, 80, 16), np.float32), np.zeros((1, 6, 96, 96), np.float32))
    with pytest.raises(ValueError, match="batch sizes differ"):
        onnx_engine.infer(np.zeros((2, 1, 80, 16), np.float32), np.zeros((1, 6, 96, 96), np.float32))
