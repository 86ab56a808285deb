"""lightlip-build-engine and the TensorRT engine: everything around TensorRT runs here; building and running
engines needs TensorRT and an NVIDIA GPU, so those tests skip where the `tensorrt` module is absent."""
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ASSETS, REPO_ROOT
from lightlip_ros.engines import EngineError, select_engine
from lightlip_ros.engines.tensorrt_engine import (SIDECAR_FORMAT, TensorRTEngine, compatibility_problem,
                                                  read_sidecar, sidecar_path)
from lightlip_ros.models import student
from training.deploy.engine_builder import BuildError, build_engine, main
from training.quant.export import export_precisions
from training.quant.samples import SampleSet
from training.quant.sensitivity import make_plan

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None
needs_tensorrt = pytest.mark.skipif(
    not HAVE_TENSORRT, reason="TensorRT is not installed: it needs an NVIDIA GPU and NVIDIA's package index, "
                              "neither of which this machine has")


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    torch.manual_seed(0)
    model = student(0.0625).eval()
    samples = SampleSet.from_media(ASSETS / "face.jpg", ASSETS / "speech.wav", limit=16)
    plan = make_plan(model, samples, samples, top_k=3, batch_size=8, progress=False)
    return export_precisions(model, tmp_path_factory.mktemp("onnx"), plan), samples


SIDECAR = {"format": SIDECAR_FORMAT, "tensorrt_version": "10.3.0.30",
           "gpu": {"name": "Orin", "compute_capability": "8.7"}}


def test_compatibility_check_names_what_differs():
    assert compatibility_problem(SIDECAR, "10.3.0.30", {"name": "Orin", "compute_capability": "8.7"}) is None
    problem = compatibility_problem(SIDECAR, "11.0.0.1", {"name": "Orin", "compute_capability": "8.7"})
    assert "TensorRT 10.3.0.30" in problem and "TensorRT 11.0.0.1" in problem
    problem = compatibility_problem(SIDECAR, "10.3.0.30", {"name": "NVIDIA H100", "compute_capability": "9.0"})
    assert "Orin" in problem and "NVIDIA H100" in problem and "9.0" in problem


def test_sidecar_must_exist_and_be_ours(tmp_path):
    engine = tmp_path / "generator.engine"
    engine.write_bytes(b"serialized engine")
    with pytest.raises(EngineError, match="rebuild it with lightlip-build-engine"):
        read_sidecar(engine)
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(EngineError, match="not readable JSON"):
        read_sidecar(engine)
    sidecar_path(engine).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(EngineError, match="not a LightLip engine description"):
        read_sidecar(engine)
    sidecar_path(engine).write_text(json.dumps(SIDECAR))
    assert read_sidecar(engine)["tensorrt_version"] == "10.3.0.30"


def test_builder_reports_a_missing_file_and_bad_settings(tmp_path, capsys):
    assert main([str(tmp_path / "missing.onnx")]) == 1
    error = capsys.readouterr().err
    assert "no such ONNX file" in error and len(error.strip().splitlines()) == 1
    model = tmp_path / "model.onnx"
    model.write_bytes(b"")
    with pytest.raises(BuildError, match="opt batch"):
        build_engine(model, opt_batch=8, max_batch=4)


@pytest.mark.skipif(HAVE_TENSORRT, reason="checks the message given where TensorRT is missing")
def test_builder_without_tensorrt_says_so_in_one_line(onnx_files, capsys):
    files, _ = onnx_files
    assert main([str(files["mixed"])]) == 1
    error = capsys.readouterr().err
    assert "TensorRT is not installed" in error and len(error.strip().splitlines()) == 1
    assert not files["mixed"].with_suffix(".engine").exists()


@pytest.mark.skipif(HAVE_TENSORRT, reason="checks the fallback taken where TensorRT is missing")
def test_engine_selection_falls_back_to_onnxruntime(onnx_files, tmp_path):
    files, samples = onnx_files
    engine_file = tmp_path / "generator.mixed.engine"
    engine_file.write_bytes(b"an engine this machine cannot run")
    sidecar_path(engine_file).write_text(json.dumps(SIDECAR))
    with pytest.raises(EngineError, match="tensorrt: not installed"):
        TensorRTEngine(engine_file)
    engine, reason = select_engine(engine_file, fallback_model=files["fp32"])
    assert engine.name == "onnxruntime" and "tensorrt" in reason
    frames = engine.infer(samples.mel[:2].numpy(), samples.face[:2].numpy())
    assert frames.shape == (2, 3, 96, 96)


@needs_tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8", "mixed"])
def test_built_engine_runs_and_describes_itself(onnx_files, precision, tmp_path):
    import onnxruntime

    files, samples = onnx_files
    engine_path = tmp_path / f"generator.{precision}.engine"
    sidecar = build_engine(files[precision], engine_path, timing_cache=tmp_path / "timing.cache", max_batch=4)
    assert engine_path.is_file() and (tmp_path / "timing.cache").is_file()
    assert json.loads(sidecar_path(engine_path).read_text()) == sidecar
    assert sidecar["precision"] == precision and sidecar["shapes"]["mel"]["max"] == [4, 1, 80, 16]
    precisions = {layer["precision"] for layer in sidecar["layers"]}
    expected = {"fp32": {"fp32"}, "fp16": {"fp16"}, "int8": {"int8"}, "mixed": {"int8", "fp16"}}[precision]
    assert expected <= precisions

    engine = TensorRTEngine(engine_path)
    mel, face = samples.mel[:6].numpy(), samples.face[:6].numpy()  # 6 > max batch: run in two pieces
    frames = engine.infer(mel, face)
    reference = onnxruntime.InferenceSession(str(files["fp32"]), providers=["CPUExecutionProvider"]).run(
        None, {"mel": mel, "face": face})[0]
    tolerance = {"fp32": 1e-3, "fp16": 1e-2, "int8": 0.1, "mixed": 0.1}[precision]
    assert frames.shape == (6, 3, 96, 96) and np.abs(frames - reference).max() < tolerance


@needs_tensorrt
def test_weakly_typed_build_keeps_the_plans_precisions(onnx_files, tmp_path):
    """The TensorRT 10.x fallback: float32-carrier graph, FP16/INT8 flags and per-layer constraints."""
    import tensorrt

    if int(tensorrt.__version__.split(".")[0]) >= 11:
        pytest.skip(f"TensorRT {tensorrt.__version__} has no weak typing (removed in 11)")
    files, samples = onnx_files
    engine_path = tmp_path / "generator.mixed.weak.engine"
    sidecar = build_engine(files["mixed"], engine_path, typing="weak", max_batch=2)
    assert sidecar["typing"] == "weak"
    assert {"int8", "fp16"} <= {layer["precision"] for layer in sidecar["layers"]}
    frames = TensorRTEngine(engine_path).infer(samples.mel[:2].numpy(), samples.face[:2].numpy())
    assert frames.shape == (2, 3, 96, 96) and np.isfinite(frames).all()


@needs_tensorrt
def test_engine_for_another_tensorrt_is_refused(onnx_files, tmp_path):
    files, _ = onnx_files
    engine_path = tmp_path / "generator.fp16.engine"
    build_engine(files["fp16"], engine_path, max_batch=2)
    sidecar = json.loads(sidecar_path(engine_path).read_text())
    sidecar["tensorrt_version"] = "9.9.9"
    sidecar_path(engine_path).write_text(json.dumps(sidecar))
    with pytest.raises(EngineError, match="built with TensorRT 9.9.9"):
        TensorRTEngine(engine_path)
    engine, reason = select_engine(engine_path, fallback_model=files["fp16"])
    assert engine.name == "onnxruntime" and "9.9.9" in reason


def test_builder_and_engine_load_without_torch_or_training_code(tmp_path):
    """A robot may have TensorRT but no PyTorch: the builder and the engine import neither torch nor any
    training module."""
    script = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('torch is not installed')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import lightlip_ros.engines.tensorrt_engine\n"
        "from training.deploy.engine_builder import main\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('training'))\n"
        "assert loaded == ['training', 'training.deploy', 'training.deploy.engine_builder'], loaded\n"
        f"sys.exit(main([{str(tmp_path / 'missing.onnx')!r}]))\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1, result.stderr
    assert "no such ONNX file" in result.stderr and "Traceback" not in result.stderr
