"""Evaluation: metrics on known cases, the independent landmarker, the eval report and the CLI."""
import json
import math
import shutil

import cv2
import numpy as np
import pytest
import torch

from lightlip_ros.engines.onnx_export import export_generator_onnx
from lightlip_ros.models import SyncNet, save_generator, save_syncnet, student
from training.data.cli import main
from training.data.evaluate import (GROUND_TRUTH, REFERENCE_COPY, evaluate, evaluate_speech, markdown_table,
                                    open_model, pause_frames, psnr, speech_metrics, ssim, sync_signal,
                                    write_report)
from training.data.landmarks import load_landmarker, mouth_opening, mouth_points
from training.data.layout import read_filelist, read_truth
from training.data.synth import SynthConfig, generate_benchmark


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_eval")
    generate_benchmark(root, SynthConfig(sentences=1, heldout_sentences=1, seed=11), workers=1,
                       log=lambda *_: None, progress=False)
    return root


@pytest.fixture(scope="module")
def landmarker():
    return load_landmarker()


def _frame(root, split="test", index=None):
    clip = read_filelist(root, split)[0]
    truth = read_truth(root / clip)
    index = int(np.argmax(truth["jaw"])) if index is None else index
    return cv2.imread(str(root / clip / f"{index}.jpg")), truth, index


def test_psnr_and_ssim_on_known_cases(tiny):
    frame, _, _ = _frame(tiny)
    assert psnr(frame, frame) == math.inf
    assert ssim(frame, frame) == pytest.approx(1.0)
    noisy = np.clip(frame.astype(int) + np.random.default_rng(0).normal(0, 8, frame.shape), 0, 255).astype(np.uint8)
    assert 25 < psnr(noisy, frame) < 35  # sigma 8 noise: about 30 dB
    assert ssim(noisy, frame) < 0.95
    assert psnr(np.zeros_like(frame), np.full_like(frame, 255)) == pytest.approx(0.0)


def test_landmarker_sees_mouth_opening_and_shift(tiny, landmarker):
    root = tiny
    clip = read_filelist(root, "train")[0]
    truth = read_truth(root / clip)
    closed, opened = int(np.argmin(truth["jaw"])), int(np.argmax(truth["jaw"]))
    points_closed = landmarker.landmarks(cv2.imread(str(root / clip / f"{closed}.jpg")))
    points_open = landmarker.landmarks(cv2.imread(str(root / clip / f"{opened}.jpg")))
    assert points_closed.shape == (68, 2)
    assert mouth_opening(points_open) > mouth_opening(points_closed) + 2.0
    # The landmarker's mouth centre lies inside the truth's lips box.
    x1, y1, x2, y2 = truth["lips_box"][opened]
    centre_x, centre_y = mouth_points(points_open).mean(axis=0)
    assert x1 < centre_x < x2 and y1 < centre_y < y2


def test_shifted_mouth_scores_worse(tiny, landmarker):
    frame, truth, index = _frame(tiny)
    face = landmarker.detect(frame)
    reference_points = landmarker.landmarks(frame, face)
    shifted = frame.copy()
    shifted[48:, :] = np.roll(frame[48:, :], 4, axis=0)  # lower half moved 4 px down
    assert psnr(shifted, frame) < 30 and ssim(shifted, frame) < 0.9
    lmd_same = np.linalg.norm(mouth_points(landmarker.landmarks(frame, face)) - mouth_points(reference_points),
                              axis=1).mean()
    lmd_shifted = np.linalg.norm(mouth_points(landmarker.landmarks(shifted, face)) - mouth_points(reference_points),
                                 axis=1).mean()
    assert lmd_same == 0.0
    assert lmd_shifted > 2.0


def test_evaluate_report_with_baselines_and_a_generator(tiny, tmp_path):
    torch.manual_seed(0)
    checkpoint = save_generator(student(), tmp_path / "student.pth")
    syncnet = save_syncnet(SyncNet(), tmp_path / "syncnet.pth")
    report = evaluate(tiny, "test", [checkpoint], syncnet_path=syncnet, progress=False, log=lambda *_: None)
    rows = report["models"]
    assert list(rows) == [GROUND_TRUTH, REFERENCE_COPY, str(checkpoint)]
    truth_row, copy_row, model_row = rows.values()
    assert truth_row["psnr"] == math.inf and truth_row["ssim"] == pytest.approx(1.0) and truth_row["lmd"] == 0.0
    assert truth_row["open_corr_frames"] == pytest.approx(1.0)
    assert truth_row["open_corr_truth"] > 0.3  # the landmarker follows the rendered jaw
    # No lip motion at all is clearly worse than the truth on every mouth metric.
    assert copy_row["psnr"] < 40 and copy_row["lmd"] > 0.3
    assert copy_row["open_corr_truth"] < truth_row["open_corr_truth"] - 0.2
    # The truth's mouth moves and closes in pauses; a copied still mouth does not move.
    assert truth_row["open_std_ratio"] == pytest.approx(1.0)
    assert truth_row["open_silence"] < truth_row["open_speech"]
    assert copy_row["open_std_ratio"] < 0.5
    # An untrained student draws no face: far worse than copying the reference.
    assert model_row["psnr"] < copy_row["psnr"] and model_row["frames"] == truth_row["frames"] > 20
    for row in rows.values():
        assert row["lse_d"] is not None and row["lse_c"] >= 0 and -7 <= row["sync_offset"] <= 7
    table = markdown_table(report)
    assert "| ground truth |" in table and "inf" in table and "LSE-C" in table
    write_report(report, tmp_path / "out", table)
    saved = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert saved["models"][GROUND_TRUTH]["psnr"] == "inf"
    assert (tmp_path / "out" / "eval.md").read_text() == table


def test_a_checkpoint_and_its_onnx_export_are_evaluated_alike(tiny, tmp_path):
    """One driver for every kind of model file: the same metrics from a .pt in PyTorch and from its ONNX
    export in ONNX Runtime (a TensorRT .engine goes the same way where TensorRT exists)."""
    torch.manual_seed(0)
    model = student(0.125).eval()
    checkpoint = save_generator(model, tmp_path / "student.pt")
    exported = export_generator_onnx(model, tmp_path / "student.onnx")
    report = evaluate(tiny, "test", [checkpoint, exported], baselines=False, progress=False, log=lambda *_: None)
    from_torch, from_onnx = (report["models"][str(path)] for path in (checkpoint, exported))
    assert from_torch["frames"] == from_onnx["frames"] > 20
    for metric in ("psnr", "ssim", "lmd", "open_std_ratio"):
        assert from_onnx[metric] == pytest.approx(from_torch[metric], rel=1e-3, abs=1e-3), metric
    assert open_model(exported).name == "onnxruntime" and open_model(checkpoint).name == "torch"


def test_sync_signal_finds_lip_sync_in_synthetic_data(tiny):
    summaries = [sync_signal(tiny, split, progress=False)["summary"] for split in ("train", "val", "test")]
    assert all(summary["landmarks_missed"] == 0 for summary in summaries)
    # One clip per split, each spoken by another engine and voice: every one carries the sync signal.
    assert all(summary["open_vs_jaw_mean"] > 0.4 for summary in summaries)
    assert np.mean([summary["open_vs_jaw_mean"] for summary in summaries]) > 0.6
    assert all(summary["open_vs_rms_mean"] > 0.1 for summary in summaries)
    # The rendered mouth opens beyond its rest: the bundled face smiles with the teeth apart (0.10 at rest), so
    # its spread is smaller than a real speaker's (std 0.02-0.06; the benchmark's test portraits: 0.052).
    assert all(summary["open_std_mean"] > 0.005 and summary["open_p95_mean"] > 0.11 for summary in summaries)


def test_cli_reports_user_errors_in_one_line(tiny, tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such file list" in err
    assert main(["eval", str(tiny), "--model", str(tmp_path / "nope.pth")]) == 1
    assert "no such model file" in capsys.readouterr().err
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    assert main(["eval", str(tiny), "--checkpoint", str(broken)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "broken.pth" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["synth", "--out", str(tmp_path / "x"), "--sentences", "0"])
    assert exit_info.value.code == 2


def test_widest_reference_is_the_truths_widest_mouth(tiny, tmp_path):
    from training.data.evaluate import load_eval_clip
    from training.data.layout import DataError

    clip_name = read_filelist(tiny, "test")[0]
    jaw = read_truth(tiny / clip_name)["jaw"]
    widest = load_eval_clip(tiny, clip_name, reference="widest")
    assert widest.reference == int(np.argmax(jaw)) and jaw[widest.reference] > jaw[0]
    assert widest.reference not in widest.indices and load_eval_clip(tiny, clip_name).reference == 0
    recorded = tmp_path / "recorded"  # no truth.json: no widest mouth to choose, said in one line
    shutil.copytree(tiny / clip_name, recorded / clip_name)
    (recorded / clip_name / "truth.json").unlink()
    with pytest.raises(DataError, match="needs the synthetic truth"):
        load_eval_clip(recorded, clip_name, reference="widest")


def test_cli_eval_writes_table(tiny, tmp_path, capsys):
    assert main(["eval", str(tiny), "--split", "val", "--out", str(tmp_path / "report"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| reference copy |" in out
    assert (tmp_path / "report" / "eval.md").is_file()


def test_pauses_come_from_the_truth_or_the_audio_level():
    truth = {"phonemes": [["_:", 0.0, 0.3], ["b", 0.3, 0.4], ["A:", 0.4, 0.6], ["_", 0.6, 0.7],
                          ["t", 0.7, 0.8], ["_:", 0.8, 1.2]]}
    pauses = pause_frames(30, truth=truth)
    # 0-0.3 s and 0.8 s on are pauses; the 0.1 s gap at 0.6 s is shorter than 150 ms and is not.
    assert pauses[:8].all() and not pauses[8:20].any() and pauses[20:].all()
    rate = 16000
    wav = np.concatenate([np.zeros(rate // 2), 0.3 * np.sin(np.arange(rate) * 0.2), np.zeros(rate // 2)])
    from_audio = pause_frames(50, wav=wav.astype(np.float32) + 1e-5)
    assert from_audio[:12].all() and not from_audio[13:37].any() and from_audio[38:].all()


def test_speech_metrics_reward_a_mouth_that_follows_the_speech():
    rate = 16000
    level = np.repeat([0.0, 0.3, 0.05, 0.3, 0.0, 0.2, 0.0], 10)  # per frame, 70 frames
    wav = (np.repeat(level, rate // 25) * np.sin(np.arange(70 * rate // 25) * 0.3)).astype(np.float32) + 1e-5
    following = speech_metrics(0.02 + 0.5 * np.convolve(level, np.ones(3) / 3, "same"), wav)
    still = speech_metrics(np.full(70, 0.05) + 1e-4 * np.random.default_rng(0).normal(size=70), wav)
    assert following["r_envelope"] > 0.9 and following["open_std"] > 0.05
    assert following["open_silence"] < following["open_speech"]
    assert abs(still["r_envelope"] or 0) < 0.5 and still["open_std"] < 0.001


def test_still_face_psnr_sees_a_painted_nose_and_not_the_mouth():
    from training.data.evaluate import still_face_psnr

    still = np.full((96, 96, 3), 120, np.uint8)
    landmarks = np.zeros((68, 2))
    landmarks[48:68] = [[40, 70], [56, 76]] * 10  # the still mouth spans rows 70-76
    moving = np.repeat(still[None], 4, axis=0)
    moving[:, 68:90] = 30  # the mouth opens: not above it
    assert still_face_psnr(moving, still, landmarks) == float("inf")
    painted = moving.copy()
    painted[:, 55:60, 44:52, 2] = 220  # a reddish spot on the nose
    assert still_face_psnr(painted, still, landmarks) < 30
    assert still_face_psnr(moving, still, None) is None


def test_evaluate_speech_on_real_speech_and_the_bundled_face(tmp_path, landmarker):
    from conftest import ASSETS

    checkpoint = save_generator(student(0.125), tmp_path / "student.pth")
    report = evaluate_speech([checkpoint], [ASSETS / "speech.wav"], [ASSETS / "face.jpg"], landmarker,
                             progress=False)
    (row,) = report["rows"]
    assert row["frames"] > 50 and row["landmarks_found"] > 0.8 * row["frames"]
    for key in ("open_std", "open_p95", "open_speech", "psnr_above_mouth"):
        assert row[key] is not None and np.isfinite(row[key])
    # An untrained generator's mouth does not move like a speaker's.
    assert row["meets_targets"] is False and row["open_std"] < 0.025
    assert main(["eval-speech", "--checkpoint", str(checkpoint), "--audio", str(tmp_path / "none.wav")]) == 1


def test_speech_table_counts_the_clips_that_meet_every_target():
    from training.data.evaluate import speech_markdown

    def row(audio, r, std, p95):
        return {"model": "runs/a/model.pt", "face": "faces/face.jpg", "audio": f"{audio}.wav", "r_envelope": r,
                "open_std": std, "open_p95": p95, "open_silence": 0.01, "open_speech": 0.05, "psnr_above_mouth": 24.0,
                "meets_targets": r >= 0.5 and std >= 0.025 and p95 >= 0.10}

    rows = [row("talks", 0.6, 0.03, 0.12), row("still", 0.6, 0.003, 0.12), row("off", 0.2, 0.03, 0.12)]
    table = speech_markdown({"rows": rows})
    assert table.count("| yes |") == 1 and table.count("| no |") == 2
    assert "| a/model.pt | face | 1 of 3 |" in table
