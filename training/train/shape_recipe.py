"""Mouth-shape reader recipe: MouthShapeNet regresses the synthetic truth's per-frame articulation (jaw,
spread, round) from the lower half of ground-truth frames, with MSE.

The generator recipes then hold it fixed and compare its reading of the frames they draw with the truth
(`loss.frame_articulation`). Trained alone, before the generator and on real frames only, it learns the
mouth's shape in a minute or two of CPU; fitted jointly with a generator on 20 frames a step it had not
learned to read the mouth after 600 steps (docs/training.md, round 5's ablation).
"""
from __future__ import annotations

import numpy as np
import torch

from lightlip_ros.models import (CheckpointError, MouthShapeNet, load_mouth_shape_net, lower_halves,
                                 save_mouth_shape_net)

from ..data.dataset import SHAPE_DIMENSIONS, Wav2LipDataset, has_synthetic_truth
from ..data.evaluate import pearson
from ..data.synth.visemes import SHAPE_NAMES
from .generator_recipe import batch_major_truth
from .losses import masked_mse
from .trainer import Recipe, TrainingError, dataset_pair


def _frames_and_truth(batch):
    """(N,3,48,96) lower halves of the target frames, (N,3) truth, (N,) has-truth weights, batch-major."""
    return (lower_halves(batch["target"]), *batch_major_truth(batch))


def _photometric_jitter(faces, generator: torch.Generator):
    """Each face at a random contrast (x0.8-1.2) and colour offset (+-0.05 per channel): the reader must not
    depend on one portrait's exposure, nor on the generator's small colour drifts."""
    count = faces.size(0)
    gain = torch.empty(count, 1, 1, 1, device=faces.device).uniform_(0.8, 1.2, generator=generator)
    offset = torch.empty(count, 3, 1, 1, device=faces.device).uniform_(-0.05, 0.05, generator=generator)
    return (faces * gain + offset).clamp(0.0, 1.0)


class MouthShapeRecipe(Recipe):
    name = "shapenet"
    monitor = "val/loss"

    def datasets(self):
        train, val = dataset_pair(Wav2LipDataset, self.config)
        if not has_synthetic_truth(train):
            raise TrainingError(f"{train.root}: no truth.json in the training clips; the mouth-shape net learns "
                                "from the synthetic benchmark's truth (lightlip-data synth)")
        self._jitter = torch.Generator(device=self.device).manual_seed(int(self.config["train"]["seed"]))
        return train, val

    def build_model(self):
        init = self.config["model"].get("init")
        if not init:
            return MouthShapeNet(SHAPE_DIMENSIONS, int(self.config["model"]["width"])).train()
        try:
            return load_mouth_shape_net(init).train()
        except CheckpointError as error:
            raise TrainingError(f"--init: {error}") from error

    def training_step(self, model, batch):
        faces, truth, has_truth = _frames_and_truth(batch)
        loss = masked_mse(model(_photometric_jitter(faces, self._jitter)), truth, has_truth)
        return loss, {"mse": float(loss.detach())}

    def validate(self, model, batches):
        readings, truths = [], []
        for batch in batches:
            faces, truth, has_truth = _frames_and_truth(batch)
            keep = has_truth > 0
            readings.append(model(faces)[keep].float().cpu())
            truths.append(truth[keep].float().cpu())
        reading, truth = torch.cat(readings).numpy(), torch.cat(truths).numpy()
        metrics = {"val/loss": float(np.mean((reading - truth) ** 2)) if len(truth) else float("nan")}
        for k, name in enumerate(SHAPE_NAMES):  # how well each dimension is read, scale-free
            r = pearson(reading[:, k], truth[:, k])
            if r is not None:
                metrics[f"val/r_{name}"] = r
        return metrics

    def export(self, model, path, metadata: dict) -> None:
        save_mouth_shape_net(model, path, shapes=list(SHAPE_NAMES), **metadata)
