"""lightlip-quant end to end on a checkpoint file: sensitivity -> export -> evaluate, and user mistakes."""
import json

import cv2
import onnx
import pytest
import torch

from conftest import ASSETS
from lightlip_ros.models import save_generator, student
from training.quant.cli import main
from lightlip_ros.engines.onnx_graph import layer_precisions
from training.quant.samples import dataset_samples
from training.data.synth import SynthConfig, generate_benchmark

MEDIA = ["--face", str(ASSETS / "face.jpg"), "--audio", str(ASSETS / "speech.wav")]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_generator(student(0.0625).eval(), path)
    return path


def test_sensitivity_export_evaluate(checkpoint, tmp_path, capsys):
    out = tmp_path / "quant"
    assert main(["sensitivity", "--model", str(checkpoint), *MEDIA, "--calib-samples", "16", "--top-k", "2",
                 "--batch-size", "8", "--out", str(out), "--threads", "1", "--quiet"]) == 0
    plan = json.loads((out / "plan.json").read_text())
    assert len(plan["fp16_layers"]) == 2 and plan["budget"] == {"top_k": 2}
    assert (out / "cache" / "calibration.npz").is_file() and (out / "cache" / "sensitivity.json").is_file()
    assert "| rank | layer |" in (out / "sensitivity.md").read_text()

    onnx_dir = out / "onnx"
    assert main(["export", "--model", str(checkpoint), "--plan", str(out / "plan.json"), "--out", str(onnx_dir),
                 "--precisions", "fp32,mixed", "--stem", "tiny"]) == 0
    assert sorted(p.name for p in onnx_dir.glob("*.onnx")) == ["tiny.fp32.onnx", "tiny.mixed.onnx"]
    mixed = layer_precisions(onnx.load(str(onnx_dir / "tiny.mixed.onnx")))
    assert sorted(name for name, layer in mixed.items() if layer["precision"] == "fp16") == sorted(plan["fp16_layers"])
    report = json.loads((onnx_dir / "tiny.precision.json").read_text())
    assert report["mixed"]["counts"] == {"fp16": 2, "int8": len(mixed) - 2}

    assert main(["evaluate", "--onnx-dir", str(onnx_dir), "--stem", "tiny", *MEDIA, "--eval-samples", "16",
                 "--quiet"]) == 0
    quality = json.loads((onnx_dir / "quality.json").read_text())
    assert [row["label"] for row in quality["files"]] == ["fp32", "mixed"]
    assert "| mixed |" in capsys.readouterr().out
    picture = cv2.imread(str(onnx_dir / "comparison.png"))
    assert picture.shape == (4 * 96, 190 + 6 * 192, 3)  # truth, fp32, mixed, |mixed - fp32|


@pytest.mark.parametrize("argv, message", [
    (["sensitivity", "--model", "missing.pt", *MEDIA], "missing.pt"),
    (["sensitivity", "--model", "{checkpoint}", "--face", str(ASSETS / "face.jpg")], "--audio"),
    (["sensitivity", "--model", "{checkpoint}", *MEDIA, "--top-k", "999"], "exceeds"),
    (["export", "--model", "{checkpoint}", "--precisions", "int8", "--out", "{tmp}"], "need a plan"),
    (["export", "--model", "{checkpoint}", "--plan", "{tmp}/nope.json", "--out", "{tmp}"], "no such plan"),
    (["export", "--model", "{checkpoint}", "--precisions", "int4", "--out", "{tmp}"], "unknown precision"),
    (["evaluate", "--onnx-dir", "{tmp}", *MEDIA], "no generator.fp32.onnx"),
])
def test_user_mistakes_exit_with_one_line(argv, message, checkpoint, tmp_path, capsys):
    argv = [a.format(checkpoint=checkpoint, tmp=tmp_path) for a in argv]
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1 and "Traceback" not in error


def test_on_a_synthetic_benchmark(checkpoint, tmp_path):
    """The data set path: calibration on train, ranking on val with the truth's mouth regions, the table on
    test under lightlip-data eval's protocol."""
    root = tmp_path / "synth"
    generate_benchmark(root, SynthConfig(sentences=1, heldout_sentences=1, seed=11), workers=1,
                       log=lambda *_: None, progress=False)
    val = dataset_samples(root, "val", 10)
    assert len(val) == 10 and (val.regions != torch.tensor([0, 48, 96, 96])).any(dim=1).all()
    assert (val.regions[:, 1] >= 48).all()  # the lips box lies in the lower half

    out = tmp_path / "quant"
    assert main(["sensitivity", "--model", str(checkpoint), "--data", str(root), "--calib-samples", "10",
                 "--eval-samples", "10", "--top-k", "1", "--batch-size", "5", "--out", str(out), "--quiet"]) == 0
    plan = json.loads((out / "plan.json").read_text())
    assert "/train (10 frames)" in plan["calibration"]["samples"]
    assert "/val (10 frames)" in plan["evaluation"]["samples"]
    assert main(["export", "--model", str(checkpoint), "--plan", str(out / "plan.json"), "--out", str(out / "onnx"),
                 "--precisions", "fp32,mixed"]) == 0
    assert main(["evaluate", "--onnx-dir", str(out / "onnx"), "--data", str(root), "--quiet"]) == 0
    quality = json.loads((out / "onnx" / "quality.json").read_text())
    assert "split `test`" in quality["source"] and [row["label"] for row in quality["files"]] == ["fp32", "mixed"]
    assert 0 < quality["files"][1]["psnr_vs_fp32_db"] < 200
