"""lightlip-train's engine without data: configs, checkpoints, the LR schedule."""
import os

import pytest
import torch

from training.train.generator_recipe import GeneratorRecipe
from training.train.config import ConfigError, build_config
from training.train.trainer import Trainer, TrainingError, load_training_state, save_training_state, lr_multiplier


def tiny_student_config(**overrides):
    config = build_config("distill", overrides=[f"{k}={v}" for k, v in overrides.items()])
    config["recipe"] = "student"
    config["model"]["widths"] = 0.0625
    config["loss"]["sync"] = 0
    config["train"].update(device="cpu", threads=1, num_workers=0, progress=False)
    return config


def test_config_layers_and_typos(tmp_path):
    user_file = tmp_path / "mine.yaml"
    user_file.write_text("train:\n  lr: 0.002\n  steps: 7\n")
    config = build_config("distill", user_file, ["train.steps=9", "loss.feature_layers=[5, 6]"],
                          {"train.batch_size": 3, "train.seed": None})
    assert config["train"]["lr"] == 0.002  # file over defaults
    assert config["train"]["steps"] == 9  # --set over file
    assert config["train"]["batch_size"] == 3  # named flag over everything
    assert config["train"]["seed"] == 0  # a flag left at None keeps the config's value
    assert config["loss"]["feature_layers"] == [5, 6]
    with pytest.raises(ConfigError, match="unknown config key 'train.learning_rate'"):
        build_config("distill", overrides=["train.learning_rate=1"])
    with pytest.raises(ConfigError, match="section.key=value"):
        build_config("distill", overrides=["train.lr"])


def test_lr_schedule_warmup_and_cosine():
    assert lr_multiplier(0, 100, 10, "cosine") == pytest.approx(0.1)
    assert lr_multiplier(10, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_multiplier(100, 100, 10, "cosine") == pytest.approx(0.1)
    assert lr_multiplier(50, 100, 0, "constant") == 1.0
    with pytest.raises(TrainingError):
        lr_multiplier(0, 100, 0, "linear")


def test_training_state_round_trips_through_its_checkpoint(tmp_path):
    trainer = Trainer(GeneratorRecipe, tiny_student_config(), tmp_path / "run")
    trainer.step = 3
    state = trainer.training_state()
    save_training_state(state, tmp_path / "run" / "checkpoints" / "last.pt")
    saved = load_training_state(tmp_path / "run")
    assert saved["step"] == 3
    for key, tensor in state["model"].items():
        assert torch.equal(saved["model"][key], tensor)


def test_resume_rejects_a_foreign_file(tmp_path):
    bogus = tmp_path / "model.pt"
    torch.save({"state_dict": {}}, bogus)
    with pytest.raises(TrainingError, match="not a lightlip-train checkpoint"):
        load_training_state(bogus)
    truncated = tmp_path / "last.pt"
    truncated.write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(TrainingError, match="not a readable training checkpoint"):
        load_training_state(truncated)
    assert os.path.exists(truncated)
