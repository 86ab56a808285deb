"""lightlip-train end to end on a tiny synthetic benchmark: every subcommand, overfitting, exact resume,
and a 2-process torchrun (gloo) run. Tiny student widths keep it fast; the code paths are the real ones."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lightlip_ros.models import (MouthShapeNet, SyncNet, load_generator, load_mouth_shape_net, load_syncnet,
                                 save_generator, save_mouth_shape_net, save_syncnet, student)
from training.train.generator_recipe import GeneratorRecipe
from training.train.shape_recipe import MouthShapeRecipe
from training.train.cli import main
from training.train.config import build_config
from training.train.trainer import Trainer, TrainingError, _move, load_training_state

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = ["--steps", "2", "--batch-size", "2", "--val-every", "2", "--num-workers", "0", "--threads", "1",
        "--no-progress", "--set", "train.val_batches=1", "--set", "data.samples_per_clip=4"]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    """The smallest benchmark `lightlip-data synth` makes: the bundled face, 2 training sentences and one
    held-out sentence per val/test split (4 clips)."""
    from training.data.synth import SynthConfig, generate_benchmark

    root = tmp_path_factory.mktemp("synth")
    generate_benchmark(root, SynthConfig(sentences=2, heldout_sentences=1), log=lambda *_: None,
                       progress=False)
    return root


def _events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir / "tensorboard"))
    accumulator.Reload()
    return accumulator.Tags()


def test_every_subcommand_trains_and_writes_loadable_models(synth_root, tmp_path):
    data = ["--data", str(synth_root)] + TINY
    # A quarter-width expert (the one a CPU can train); the teacher below loads it at that width.
    assert main(["syncnet", "--out", str(tmp_path / "sync"), "--set", "model.width=0.25"] + data) == 0
    expert = load_syncnet(tmp_path / "sync" / "model.pt")
    assert expert.checkpoint_info["metadata"]["recipe"] == "syncnet" and expert.config["width"] == 0.25

    # A small generator of the student family stands in for the Wav2Lip teacher to keep this fast.
    assert main(["teacher", "--out", str(tmp_path / "teacher"), "--expert", str(tmp_path / "sync/model.pt"),
                 "--set", "model.architecture=student", "--set", "model.widths=0.125",
                 "--set", "loss.sync_enable_below=null"] + data) == 0
    teacher_log = json.loads((tmp_path / "teacher" / "summary.json").read_text())
    assert teacher_log["steps"] == 2 and teacher_log["final"]["val/sync"] > 0

    assert main(["shapenet", "--out", str(tmp_path / "shape")] + data) == 0
    shape_net = load_mouth_shape_net(tmp_path / "shape" / "model.pt")
    assert shape_net.checkpoint_info["metadata"]["shapes"] == ["jaw", "spread", "round"]
    assert {"val/loss", "val/r_jaw"} <= set(json.loads((tmp_path / "shape" / "summary.json").read_text())["final"])

    assert main(["distill", "--out", str(tmp_path / "distill"), "--teacher", str(tmp_path / "teacher/model.pt"),
                 "--expert", str(tmp_path / "sync/model.pt"), "--widths", "0.0625",
                 "--shape-net", str(tmp_path / "shape/model.pt"), "--set", "loss.frame_articulation=1.0"] + data) == 0
    assert main(["student", "--out", str(tmp_path / "student"), "--widths", "0.0625",
                 "--set", "loss.sync=0"] + data) == 0

    distilled = load_generator(tmp_path / "distill" / "model.pt")  # strict fit: no adapter weights inside
    assert distilled.architecture == "student" and distilled.widths.face[0] == 1
    assert distilled.checkpoint_info["metadata"]["teacher"] == str(tmp_path / "teacher/model.pt")
    assert load_generator(tmp_path / "distill" / "model_last.pt").checkpoint_info["metadata"]["step"] == 2
    # The training checkpoint holds the adapters (for --resume); the exported model does not.
    state = load_training_state(tmp_path / "distill")
    assert any(key.startswith("adapters.") for key in state["model"])

    config = yaml.safe_load((tmp_path / "distill" / "config.yaml").read_text())
    assert config["train"]["steps"] == 2 and config["model"]["widths"] == 0.0625
    assert config["teacher"]["checkpoint"] == str(tmp_path / "teacher/model.pt")
    scratch = yaml.safe_load((tmp_path / "student" / "config.yaml").read_text())
    assert scratch["recipe"] == "student" and scratch["teacher"]["checkpoint"] is None

    tags = _events(tmp_path / "distill")
    assert {"train/loss", "train/output_distill", "train/feature_distill", "val/l1", "train/mouth_l1",
            "train/articulation", "train/frame_articulation", "val/frame_articulation",
            "val/articulation"} <= set(tags["scalars"])
    assert "samples" in tags["images"]
    # The articulation head is trained and resumable, never exported; the mouth-shape net is held fixed and
    # stays in its own file.
    assert any(key.startswith("articulation_head.") for key in state["model"])
    assert not any("shape_net" in key for key in state["model"])
    assert config["shape_net"]["checkpoint"] == str(tmp_path / "shape/model.pt")


def test_cli_reports_user_mistakes_in_one_line(tmp_path, capsys):
    assert main(["student", "--out", str(tmp_path / "run"), "--data", str(tmp_path / "missing")] + TINY) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("lightlip-train student: error:") and "\n" not in error
    assert main(["distill", "--out", str(tmp_path / "run"), "--data", str(tmp_path)] + TINY) == 1
    assert "needs a teacher" in capsys.readouterr().err
    assert main(["student", "--out", str(tmp_path / "run"), "--data", str(tmp_path),
                 "--set", "loss.sync=0", "--set", "loss.frame_articulation=1"] + TINY) == 1
    assert "needs a mouth-shape net: pass --shape-net" in capsys.readouterr().err
    assert main(["syncnet", "--out", str(tmp_path / "run"), "--data", str(tmp_path),
                 "--set", "model.width=2"] + TINY) == 1
    error = capsys.readouterr().err.strip()
    assert "error: model.width: SyncNet width must be in (0, 1], got 2" in error and "\n" not in error
    with pytest.raises(SystemExit) as exit_info:
        main(["distill", "--help"])
    assert exit_info.value.code == 0
    assert "--teacher" in capsys.readouterr().out


def test_bad_data_settings_are_one_line_errors(synth_root, tmp_path, capsys):
    for setting, message in (("data.wide_open_weight=-1", "wide_open_weight must be >= 0"),
                             ("data.mirror=2", "mirror must be in [0, 1], got 2.0"),
                             ("data.reference_rest_fraction=half", "could not convert string to float")):
        assert main(["student", "--out", str(tmp_path / "run"), "--data", str(synth_root),
                     "--set", "loss.sync=0", "--set", setting] + TINY) == 1
        error = capsys.readouterr().err.strip()
        assert error.startswith("lightlip-train student: error: data:") and message in error and "\n" not in error
    for setting, message in (("data.off_sync_min_offset=0", "data: off_sync_min_offset must be >= 1, got 0"),
                             ("data.candidates=0", "data: candidates must be >= 1, got 0"),
                             ("loss.temperature=0", "loss.temperature must be > 0, got 0.0")):
        assert main(["syncnet", "--out", str(tmp_path / "sync"), "--data", str(synth_root),
                     "--set", setting] + TINY) == 1
        assert capsys.readouterr().err.strip() == f"lightlip-train syncnet: error: {message}"


def test_matching_expert_learns_to_pick_the_in_sync_window(synth_root, tmp_path):
    """Multi-way matching on the tiny benchmark: after a short training on the same clips' windows the
    validation loss is well under chance's (ln 4: no preference among 4 candidates) and the in-sync window is
    ranked first more often than 1 in 4 (seeds 0-2 gave losses 0.62-0.78, accuracies 0.59-0.72)."""
    assert main(["syncnet", "--out", str(tmp_path / "sync"), "--data", str(synth_root), "--steps", "60",
                 "--batch-size", "8", "--lr", "1e-3", "--val-every", "60", "--num-workers", "0", "--threads", "2",
                 "--no-progress", "--set", "model.width=0.25", "--set", "data.candidates=4",
                 "--set", "data.off_sync_min_offset=5", "--set", "data.samples_per_clip=16",
                 "--set", "data.val_split=train", "--set", "data.val_samples_per_clip=16",
                 "--set", "train.val_batches=4"]) == 0
    summary = json.loads((tmp_path / "sync" / "summary.json").read_text())
    assert summary["final"]["val/loss"] < 0.75 * math.log(4) and summary["final"]["val/accuracy"] > 0.4, summary


def test_distillation_loss_falls_on_a_batch_it_overfits(synth_root, tmp_path):
    teacher = student(0.125)
    save_generator(teacher, tmp_path / "teacher.pt")
    config = build_config("distill", overrides=[f"data.root={synth_root}"])
    config["model"]["widths"] = 0.0625
    config["teacher"]["checkpoint"] = str(tmp_path / "teacher.pt")
    config["loss"]["sync"] = 0
    recipe = GeneratorRecipe(config, torch.device("cpu"))
    model = recipe.build_model()
    train_set, _ = recipe.datasets()
    batch = _move(torch.utils.data.default_collate([train_set[0], train_set[1]]), torch.device("cpu"))
    losses, scalars = _overfit(recipe, model, batch, steps=40)
    assert {"l1", "output_distill", "feature_distill"} <= set(scalars)
    assert losses[-1] < 0.5 * losses[0], losses


def test_sync_mouth_only_lets_the_expert_judge_the_mouth_box_alone(synth_root, tmp_path):
    """With loss.sync_mouth_only the sync gradient reaches the generated frames inside the mouth box (grown by
    the margin) and nowhere else; without it, the whole lower half."""
    from training.train.losses import mouth_mask

    save_syncnet(SyncNet(0.25), tmp_path / "expert.pt")
    gradients = {}
    for mouth_only in (True, False):
        config = build_config("distill", overrides=[f"data.root={synth_root}", "loss.sync=1",
                                                    "loss.sync_enable_below=null",
                                                    f"loss.sync_mouth_only={str(mouth_only).lower()}"])
        config["model"]["widths"] = 0.0625
        config["expert"]["checkpoint"] = str(tmp_path / "expert.pt")
        recipe = GeneratorRecipe(config, torch.device("cpu"))
        model = recipe.build_model()
        train_set, _ = recipe.datasets()
        batch = _move(torch.utils.data.default_collate([train_set[0], train_set[1]]), torch.device("cpu"))
        outputs = []
        model.register_forward_hook(lambda _module, _inputs, output: outputs.append(output[0]))
        _, _, terms = recipe._terms(model, batch, with_sync=True)
        (frames,) = outputs
        gradients[mouth_only] = torch.autograd.grad(terms["sync"], frames)[0].abs().sum(1, keepdim=True)
    inside = mouth_mask(batch["mouth_box"].float(), 96, 96, config["loss"]["mouth_margin"]).bool()
    lower = torch.zeros_like(inside)
    lower[..., 48:, :] = True
    assert gradients[True][~inside].max() == 0 and gradients[True][inside].sum() > 0
    assert gradients[False][lower & ~inside].sum() > 0


def _overfit(recipe, model, batch, steps):
    """(losses, last step's scalars) of `steps` Adam steps of the recipe on one batch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss, scalars = recipe.training_step(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses, scalars


def _student_run(synth_root, out, steps, resume=None):
    args = ["student", "--out", str(out), "--data", str(synth_root), "--widths", "0.0625", "--set",
            "loss.sync=0"] + TINY + ["--steps", str(steps)]
    if resume:
        args += ["--resume", str(resume)]
    assert main(args) == 0


def test_resume_continues_with_identical_state(synth_root, tmp_path):
    _student_run(synth_root, tmp_path / "straight", steps=4)
    _student_run(synth_root, tmp_path / "split", steps=2)
    saved = load_training_state(tmp_path / "split")
    assert saved["step"] == 2

    # The restored trainer holds exactly the saved optimizer, scheduler and model state.
    config = saved["config"]
    resumed = Trainer(GeneratorRecipe, config, tmp_path / "split", resume=tmp_path / "split")
    assert resumed.step == 2
    restored, original = resumed.optimizer.state_dict(), saved["optimizer"]
    assert restored["param_groups"] == original["param_groups"]
    assert restored["state"].keys() == original["state"].keys()
    for index, slots in original["state"].items():
        for name, value in slots.items():
            assert torch.equal(restored["state"][index][name], value), (index, name)
    assert resumed.scheduler.state_dict() == saved["scheduler"]

    # Continuing to step 4 lands on the same weights as the run that was never interrupted.
    _student_run(synth_root, tmp_path / "split", steps=4, resume=tmp_path / "split")
    straight = load_training_state(tmp_path / "straight")["model"]
    continued = load_training_state(tmp_path / "split")
    assert continued["step"] == 4
    for key, value in straight.items():
        assert torch.equal(continued["model"][key], value), key


def test_torchrun_two_cpu_processes_keep_identical_weights(synth_root, tmp_path):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "training.train.cli", "student", "--out", str(out), "--data", str(synth_root),
               "--widths", "0.0625", "--set", "loss.sync=0", "--device", "cpu"] + TINY
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2
    fingerprints = summary["rank_weight_fingerprints"]
    assert len(fingerprints) == 2 and fingerprints[0] == fingerprints[1]
    assert load_training_state(out)["step"] == 2
    assert load_generator(out / "model.pt").architecture == "student"


def test_truth_terms_switch_off_on_data_without_truth(synth_root, tmp_path, caplog):
    import shutil

    recorded = tmp_path / "recorded"  # what lightlip-data preprocess writes: no truth.json
    shutil.copytree(synth_root, recorded)
    for truth in recorded.rglob("truth.json"):
        truth.unlink()
    save_mouth_shape_net(MouthShapeNet(), tmp_path / "shape.pt")
    config = build_config("distill", overrides=[f"data.root={recorded}", "loss.sync=0", "loss.frame_articulation=1",
                                                f"shape_net.checkpoint={tmp_path / 'shape.pt'}",
                                                "data.wide_open_weight=3", "loss.mouth_gradient=1"])
    config["model"]["widths"] = 0.0625
    recipe = GeneratorRecipe(config, torch.device("cpu"))
    model = recipe.build_model()  # the trainer builds the model before it reads the data
    with caplog.at_level("WARNING", logger="lightlip.train"):
        train_set, _ = recipe.datasets()
    assert recipe.weights["articulation"] == 0 and recipe.weights["frame_articulation"] == 0
    assert train_set.wide_open_weight == 0
    assert recipe.weights["mouth_recon"] > 0 and recipe.weights["mouth_gradient"] > 0  # the crop's mouth region
    assert len(caplog.records) == 1
    assert "loss.articulation, loss.frame_articulation, data.wide_open_weight" in caplog.text
    batch = torch.utils.data.default_collate([train_set[0], train_set[1]])
    loss, scalars = recipe.training_step(model, batch)
    assert torch.isfinite(loss) and {"mouth_l1", "mouth_gradient"} <= set(scalars)
    assert not {"articulation", "frame_articulation"} & set(scalars)
    # The mouth-shape net cannot learn without truth: its recipe refuses such data in one line.
    shape_config = build_config("shapenet", overrides=[f"data.root={recorded}"])
    with pytest.raises(TrainingError, match="no truth.json"):
        MouthShapeRecipe(shape_config, torch.device("cpu")).datasets()


def test_articulation_rows_follow_the_generators_frame_stacking():
    from training.train.generator_recipe import GeneratorWithAdapters, time_major
    from training.train.losses import ArticulationHead

    generator = student(0.0625).eval()
    model = GeneratorWithAdapters(generator, articulation_head=ArticulationHead(generator.widths.audio[-1]))
    mels = torch.randn(2, 5, 1, 80, 16)
    faces = torch.rand(2, 6, 5, 96, 96)
    with torch.no_grad():
        _, _, articulation = model(mels, faces)
        per_frame = torch.stack([torch.stack([model.articulation_head(generator.audio_encoder(mels[b, t:t + 1]))[0]
                                              for t in range(5)]) for b in range(2)])  # (B, T, 3)
    assert torch.allclose(articulation, time_major(per_frame), atol=1e-5)


def test_shape_net_judges_generated_frames_without_learning_from_them(synth_root, tmp_path):
    from training.train.losses import masked_mse

    save_mouth_shape_net(MouthShapeNet(), tmp_path / "shape.pt")
    config = build_config("distill", overrides=[f"data.root={synth_root}", "loss.sync=0", "loss.frame_articulation=1",
                                                f"shape_net.checkpoint={tmp_path / 'shape.pt'}"])
    config["model"]["widths"] = 0.0625
    recipe = GeneratorRecipe(config, torch.device("cpu"))
    model = recipe.build_model()
    train_set, _ = recipe.datasets()
    batch = torch.utils.data.default_collate([train_set[0], train_set[1]])
    loss, scalars = recipe.training_step(model, batch)
    loss.backward()
    assert scalars["frame_articulation"] > 0
    # The generator learns from the net's reading; the net itself is fixed and not part of the trained model.
    assert float(model.generator.output_block[0].conv_block[0].weight.grad.abs().sum()) > 0
    assert all(not parameter.requires_grad and parameter.grad is None for parameter in recipe.shape_net.parameters())
    assert not any(parameter is net_parameter for parameter in model.parameters()
                   for net_parameter in recipe.shape_net.parameters())
    # Samples without truth (weight 0) do not count.
    assert float(masked_mse(torch.zeros(2, 3), torch.tensor([[1.0] * 3, [0.0] * 3]), torch.tensor([0.0, 1.0]))) == 0


def test_shape_net_recipe_learns_to_read_the_mouth(synth_root):
    """A few dozen steps on the tiny benchmark's frames cut the reader's error well below its start."""
    config = build_config("shapenet", overrides=[f"data.root={synth_root}", "data.samples_per_clip=8"])
    recipe = MouthShapeRecipe(config, torch.device("cpu"))
    torch.manual_seed(0)
    model = recipe.build_model()
    train_set, _ = recipe.datasets()
    batch = torch.utils.data.default_collate([train_set[i] for i in range(4)])
    losses, _ = _overfit(recipe, model, batch, steps=60)
    assert losses[-1] < 0.3 * losses[0], losses


def test_mouth_reconstruction_counts_only_the_mouth_box():
    from training.train.losses import mouth_mask, mouth_reconstruction_loss

    boxes = torch.tensor([[[30.0, 60.0, 66.0, 80.0]] * 5])  # (1, 5, 4)
    mask = mouth_mask(boxes, 96, 96, margin=2)
    assert mask.shape == (1, 1, 5, 96, 96)
    assert mask[0, 0, 0, 58:82, 28:68].all() and mask.sum() == 5 * 24 * 40
    target = torch.zeros(1, 3, 5, 96, 96)
    outside = target.clone()
    outside[..., :40, :] = 1.0  # wrong only above the mouth
    assert float(mouth_reconstruction_loss(outside, target, boxes, 2)) == 0
    inside = target.clone()
    inside[..., 60:80, 30:66] = 1.0
    assert float(mouth_reconstruction_loss(inside, target, boxes, 0)) == pytest.approx(1.0)


def test_motion_weight_makes_a_still_mouth_cost_more_where_the_truth_moves():
    from training.train.losses import mouth_reconstruction_loss

    boxes = torch.tensor([[[30.0, 60.0, 66.0, 80.0]] * 5])
    reference = torch.full((1, 3, 5, 96, 96), 0.5)  # the still face: closed lips everywhere
    target = reference.clone()
    target[..., 66:74, 36:60] = 0.1  # the truth opens the mouth: a dark gap the reference lacks
    still = reference.clone()  # the mouth left closed: wrong only inside the gap
    plain = float(mouth_reconstruction_loss(still, target, boxes, 0))
    weighted = float(mouth_reconstruction_loss(still, target, boxes, 0, reference, motion_weight=4.0))
    assert weighted > 1.5 * plain > 0  # 192 gap pixels of 720 weigh 2.6 each
    # Where truth and reference agree the weight stays 1, so in the weighted mean an error there counts less.
    smudged = target.clone()
    smudged[..., 60:64, 30:66] += 0.2
    assert float(mouth_reconstruction_loss(smudged, target, boxes, 0, reference, motion_weight=4.0)) < \
        float(mouth_reconstruction_loss(smudged, target, boxes, 0))


def test_mouth_gradient_loss_ranks_a_blurred_gap_below_a_sharp_one():
    from training.train.losses import mouth_gradient_loss, mouth_reconstruction_loss

    boxes = torch.tensor([[[30.0, 60.0, 66.0, 80.0]] * 5])
    target = torch.full((1, 3, 5, 96, 96), 0.5)
    target[..., 68:72, 36:60] = 0.1  # an open mouth: a dark gap with sharp edges
    closed = torch.full_like(target, 0.5)
    smear = torch.full_like(target, 0.5)  # a half-dark smear twice the gap's height
    smear[..., 66:74, 36:60] = 0.4
    shifted = torch.full_like(target, 0.5)  # the gap drawn sharp, one pixel low
    shifted[..., 69:73, 36:60] = 0.1

    def pixel(frames):
        return float(mouth_reconstruction_loss(frames, target, boxes, 0))

    def edges(frames):
        return float(mouth_gradient_loss(frames, target, boxes, 0))

    # Pixel L1 cannot tell the smear from a closed mouth; the gradient term ranks the smear worst.
    assert pixel(smear) == pytest.approx(pixel(closed))
    assert edges(smear) > edges(closed) > 0
    # Together (4 + 4, round 8's weights) the sharp gap one pixel off beats both.
    assert 4 * pixel(shifted) + 4 * edges(shifted) < 4 * pixel(closed) + 4 * edges(closed)
    assert edges(target) == 0 and edges(target + 0.3) == pytest.approx(0, abs=1e-6)  # a level shift has no edges
    elsewhere = target.clone()
    elsewhere[..., 10:20, 10:20] = 1.0
    assert edges(elsewhere) == 0  # outside the mouth box edges do not count
