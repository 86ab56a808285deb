"""lightlip-bench on two tiny generators with 2 timed calls: the report's structure and its arithmetic."""
import importlib.util
import json

import numpy as np
import pytest
import torch

from conftest import ASSETS
from lightlip_ros.models import save_generator, student
from training.deploy.bench import add_speedups, main, summarise
from training.quant.samples import SampleSet
from training.quant.sensitivity import make_plan


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    save_generator(student(0.125).eval(), folder / "big.pt")
    torch.manual_seed(1)
    small = student(0.0625).eval()
    save_generator(small, folder / "small.pt")
    samples = SampleSet.from_media(ASSETS / "face.jpg", ASSETS / "speech.wav", limit=8)
    make_plan(small, samples, samples, top_k=2, batch_size=8, progress=False).save(folder / "plan.json")
    assert main(["--teacher", str(folder / "big.pt"), "--student", str(folder / "small.pt"),
                 "--student-plan", str(folder / "plan.json"), "--batches", "1,2", "--warmup", "0",
                 "--iterations", "2", "--threads", "1", "--work-dir", str(folder / "work"),
                 "--out", str(folder / "out"), "--quiet"]) == 0
    return json.loads((folder / "out" / "bench.json").read_text()), (folder / "out" / "bench.md").read_text()


def test_every_engine_precision_and_batch_is_measured_or_explained(report):
    data, table = report
    assert {"cpu", "cores", "gpu", "versions", "platform", "load_average_1min"} <= set(data["machine"])
    assert "Load average (1 min)" in table
    assert data["machine"]["versions"]["onnxruntime"] and data["machine"]["versions"]["torch"]
    measured = {(r["model"], r["engine"], r["precision"], r["batch"]) for r in data["results"]}
    for model in ("teacher", "student"):
        for batch in (1, 2):
            assert (model, "torch", "fp32", batch) in measured
            for precision in ("fp32", "fp16", "int8"):
                assert (model, "onnxruntime", precision, batch) in measured
    assert ("student", "onnxruntime", "mixed", 1) in measured
    skipped = {(s["model"], s["engine"], s["precision"]): s["reason"] for s in data["skipped"]}
    assert "--teacher-plan" in skipped[("teacher", "onnxruntime/tensorrt", "mixed")]
    assert "FP32 only" in skipped[("student", "torch", "fp16")]
    if importlib.util.find_spec("tensorrt") is None:
        assert "TensorRT is not installed" in skipped[("teacher", "tensorrt", "all")]
    assert all(r["iterations"] == 2 for r in data["results"])
    assert table.count("\n| ") == len(data["results"]) + 1  # header + one row per measurement


def test_rates_and_speedups_from_known_latencies():
    teacher = summarise("teacher", "onnxruntime", "fp32", 2, np.array([0.040, 0.080, 0.060]))
    student = summarise("student", "onnxruntime", "int8", 2, np.array([0.010, 0.020, 0.015]))
    unmatched = summarise("student", "torch", "fp32", 1, np.array([0.005]))  # no teacher row on torch
    add_speedups([teacher, student, unmatched])
    assert (teacher.p50_ms, teacher.per_frame_ms) == pytest.approx((60.0, 30.0))
    assert teacher.p95_ms == pytest.approx(78.0)  # numpy's linear interpolation between 60 and 80
    assert (student.per_frame_ms, student.frames_per_s) == pytest.approx((7.5, 1000 / 7.5))
    assert (teacher.speedup, student.speedup, unmatched.speedup) == (pytest.approx(1.0), pytest.approx(4.0), None)


def test_every_row_of_the_run_is_timed_and_compared(report):
    data, _ = report
    for row in data["results"]:
        assert 0 < row["p50_ms"] <= row["p95_ms"] and row["speedup"] > 0
    assert all(r["speedup"] == pytest.approx(1.0) for r in data["results"]
               if r["model"] == "teacher" and r["precision"] == "fp32")


def test_user_mistakes_exit_with_one_line(tmp_path, capsys):
    assert main(["--student", str(tmp_path / "missing.pt"), "--models", "student", "--out", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert "missing.pt" in error and len(error.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        main(["--engines", "tensorflow"])
