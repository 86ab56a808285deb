"""Generator recipes: the Wav2Lip teacher, the student from scratch, and the student distilled from a teacher.

One recipe covers all three, because they are one loss with different terms switched on (no discriminator
in any of them):

    total = recon·L1(G, ground truth)
          + mouth_recon·L1 inside the mouth box (G, ground truth), pixels that differ from the reference
            weighted up by mouth_motion_weight
          + mouth_gradient·L1 of the pixel differences inside the mouth box (G, ground truth): edges, not blur
          + articulation·MSE(head(G's audio embedding), mouth-shape truth)
          + frame_articulation·MSE(mouth-shape net(G frames), mouth-shape truth)
          + output_distill·L1(G, teacher frames)                       (distillation only)
          + feature_distill·hint(adapters(G features), teacher features) (distillation only)
          + sync·expert BCE(G frames, audio)                            (once switched on, see below)

The articulation terms need the synthetic truth's mouth shapes (jaw, spread, round); on data without
truth.json they switch off (one log line), per sample on mixed data. The mouth box is the truth's lips box,
or a fixed box of the crop (training.data.dataset.MOUTH_PRIOR_BOX) for clips without truth. The mouth-shape net
(`lightlip-train shapenet`) was trained on ground-truth frames only and is held fixed here, so it judges the
mouth's shape and is never trained to tell generated frames apart (no adversarial game).

The expert's sync term starts at weight 0 and is switched on when the expert's loss on the generator's
validation frames drops below `loss.sync_enable_below` (Wav2Lip uses 0.75); null switches it on at once.
With `loss.sync_mouth_only` the expert sees the generated frames inside the mouth box (grown by the margin) and the
reference elsewhere, so its gradient can only change the mouth.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from lightlip_ros.engines.base import FACE_SHAPE, MEL_SHAPE
from lightlip_ros.models import (CheckpointError, GeneratorWidths, build_generator, load_generator,
                                 load_mouth_shape_net, load_syncnet, lower_halves, save_generator, unwrap_model)

from ..data.dataset import SHAPE_DIMENSIONS, AudioAugment, ColourAugment, Wav2LipDataset, has_synthetic_truth
from .losses import (ArticulationHead, FeatureAdapters, expert_sync_loss, feature_distillation_loss, masked_mse,
                     mouth_gradient_loss, mouth_mask, mouth_reconstruction_loss, output_distillation_loss,
                     reconstruction_loss)
from .trainer import Recipe, TrainingError, dataset_pair

LOG = logging.getLogger("lightlip.train")
LOSS_TERMS = ("recon", "mouth_recon", "mouth_gradient", "articulation", "frame_articulation", "sync", "output_distill",
              "feature_distill")
# Terms that need the synthetic truth's mouth shapes.
TRUTH_TERMS = ("articulation", "frame_articulation")


def time_major(per_frame: torch.Tensor) -> torch.Tensor:
    """(B, T, ...) -> (T*B, ...): the order in which the generator stacks the frames of 5-D input."""
    return per_frame.transpose(0, 1).flatten(0, 1)


def frame_truth(batch) -> tuple:
    """(B, T, 3) mouth-shape truth and (B, T) has-truth weights of a batch's frames."""
    truth = batch["articulation"]
    return truth, batch["has_truth"][:, None].expand(-1, truth.size(1))


def batch_major_truth(batch) -> tuple:
    """frame_truth batch-major, (B*T, 3) and (B*T,) (b*T + t), as lower_halves stacks the frames the mouth-shape
    net reads."""
    return tuple(per_frame.flatten(0, 1) for per_frame in frame_truth(batch))


class GeneratorWithAdapters(nn.Module):
    """The trained module: the generator plus the helpers trained with it and never exported with it: the
    1x1 feature adapters when distilling features and the articulation head on the audio embedding. Both are
    checkpointed for --resume."""

    def __init__(self, generator: nn.Module, adapters: nn.Module = None, feature_layers=(),
                 articulation_head: nn.Module = None):
        super().__init__()
        self.generator = generator
        self.adapters = adapters
        self.feature_layers = list(feature_layers)
        self.articulation_head = articulation_head
        self._audio_embedding = None
        if articulation_head is not None:
            generator.audio_encoder.register_forward_hook(self._keep_audio_embedding)

    def _keep_audio_embedding(self, module, inputs, output):
        self._audio_embedding = output

    def forward(self, mel, face):
        """-> (frames, adapted decoder features, articulation read off the audio embedding or None).

        The articulation rows follow the generator's own stacking of 5-D input: time-major (t*B + b)."""
        if self.adapters is None:
            frames, adapted = self.generator(mel, face), []
        else:
            frames, features = self.generator.forward_with_features(mel, face)
            adapted = self.adapters([features[i] for i in self.feature_layers])
        articulation = None
        if self.articulation_head is not None:
            articulation = self.articulation_head(self._audio_embedding)
            self._audio_embedding = None
        return frames, adapted, articulation


def _decoder_feature_widths(generator: nn.Module) -> list:
    """Channel count of each decoder feature map, read off one tiny forward pass."""
    was_training = generator.training
    generator.eval()
    with torch.no_grad():
        parameter = next(generator.parameters())
        mel = torch.zeros(1, *MEL_SHAPE, device=parameter.device)
        face = torch.zeros(1, *FACE_SHAPE, device=parameter.device)
        _, features = generator.forward_with_features(mel, face)
    generator.train(was_training)
    return [feature.size(1) for feature in features]


class GeneratorRecipe(Recipe):
    monitor = "val/l1"

    def __init__(self, config: dict, device: torch.device):
        super().__init__(config, device)
        self.name = config["recipe"]
        self.weights = {key: float(config["loss"][key] or 0.0) for key in LOSS_TERMS}
        self.mouth_margin = float(config["loss"]["mouth_margin"])
        self.motion_weight = float(config["loss"]["mouth_motion_weight"] or 0.0)
        self.sync_enable_below = config["loss"]["sync_enable_below"]
        self.sync_active = self.sync_enable_below is None
        self.sync_mouth_only = bool(config["loss"]["sync_mouth_only"])
        self.teacher = None
        teacher_path = (config.get("teacher") or {}).get("checkpoint")
        if teacher_path:
            self.teacher = self._frozen(load_generator, teacher_path, "teacher")
        elif self.weights["output_distill"] or self.weights["feature_distill"]:
            # Training without a teacher is the "from scratch" baseline: distillation terms drop out.
            self.weights["output_distill"] = self.weights["feature_distill"] = 0.0
        self.expert = None
        expert_path = config["expert"]["checkpoint"]
        if expert_path:
            self.expert = self._frozen(load_syncnet, expert_path, "lip-sync expert")
        elif self.weights["sync"]:
            raise TrainingError("loss.sync > 0 needs a lip-sync expert: pass --expert (train one with "
                                "`lightlip-train syncnet`) or set loss.sync=0")
        self.shape_net = None
        if self.weights["frame_articulation"]:
            shape_path = config["shape_net"]["checkpoint"]
            if not shape_path:
                raise TrainingError("loss.frame_articulation > 0 needs a mouth-shape net: pass --shape-net (train "
                                    "one with `lightlip-train shapenet`) or set loss.frame_articulation=0")
            self.shape_net = self._frozen(load_mouth_shape_net, shape_path, "mouth-shape net")

    def _frozen(self, loader, path, what):
        try:
            network = loader(path, map_location=self.device)
        except CheckpointError as error:
            raise TrainingError(f"{what}: {error}") from error
        return network.eval().requires_grad_(False)

    def datasets(self):
        data = self.config["data"]
        augments = {}
        for key, kind in (("audio_augment", AudioAugment), ("colour_augment", ColourAugment)):
            try:
                augments[key] = kind.from_config(data.get(key))
            except (AttributeError, TypeError, ValueError) as error:
                raise TrainingError(f"data.{key}: {error}") from error
        try:
            shared = {"reference_rest_fraction": float(data.get("reference_rest_fraction") or 0.0)}
            train_options = dict(shared, wide_open_weight=float(data.get("wide_open_weight") or 0.0),
                                 mirror=float(data.get("mirror") or 0.0), **augments)
            train, val = dataset_pair(Wav2LipDataset, self.config, train_options=train_options, val_options=shared)
        except (TypeError, ValueError) as error:
            raise TrainingError(f"data: {error}") from error
        self._switch_off_truth_terms(train)
        return train, val

    def _switch_off_truth_terms(self, train) -> None:
        """Data without synthetic truth (lightlip-data preprocess output) cannot supervise mouth shapes."""
        wanted = [f"loss.{term}" for term in TRUTH_TERMS if self.weights[term]]
        if train.wide_open_weight:
            wanted.append("data.wide_open_weight")
        if wanted and not has_synthetic_truth(train):
            for term in TRUTH_TERMS:
                self.weights[term] = 0.0
            train.wide_open_weight = 0.0
            LOG.warning("no truth.json in the training clips: %s switched off (they need the synthetic "
                        "mouth-shape truth)", ", ".join(wanted))

    def build_model(self) -> nn.Module:
        model_cfg = self.config["model"]
        if model_cfg.get("init"):
            try:
                generator = load_generator(model_cfg["init"])
            except CheckpointError as error:
                raise TrainingError(f"--init: {error}") from error
        else:
            widths = model_cfg.get("widths")
            try:
                if isinstance(widths, (int, float)) and not isinstance(widths, bool):
                    widths = GeneratorWidths.scaled(float(widths)).to_dict()
                generator = build_generator({"architecture": model_cfg["architecture"], "widths": widths})
            except (ValueError, TypeError) as error:
                raise TrainingError(f"model: {error}") from error
        generator.train()
        adapters, layers = None, []
        if self.teacher is not None and self.weights["feature_distill"]:
            student_widths = _decoder_feature_widths(generator)
            teacher_widths = _decoder_feature_widths(self.teacher)
            layers = self.config["loss"].get("feature_layers")
            layers = list(range(len(student_widths))) if layers is None else [int(i) for i in layers]
            if any(not 0 <= i < len(student_widths) for i in layers):
                raise TrainingError(f"loss.feature_layers must index the {len(student_widths)} decoder "
                                    f"feature maps, got {layers}")
            adapters = FeatureAdapters([student_widths[i] for i in layers], [teacher_widths[i] for i in layers])
        head = ArticulationHead(generator.widths.audio[-1], SHAPE_DIMENSIONS) if self.weights["articulation"] else None
        return GeneratorWithAdapters(generator, adapters, layers, head)

    # -- losses ----------------------------------------------------------------------------------

    def _terms(self, model, batch, with_sync: bool) -> tuple:
        frames, adapted, articulation = model(batch["mels"], batch["face_input"])
        terms = {"l1": reconstruction_loss(frames, batch["target"])}
        if self.weights["mouth_recon"]:
            terms["mouth_l1"] = mouth_reconstruction_loss(frames, batch["target"], batch["mouth_box"],
                                                          self.mouth_margin, batch["face_input"][:, 3:],
                                                          self.motion_weight)
        if self.weights["mouth_gradient"]:
            terms["mouth_gradient"] = mouth_gradient_loss(frames, batch["target"], batch["mouth_box"],
                                                          self.mouth_margin)
        if articulation is not None and self.weights["articulation"]:  # the weight is 0 once switched off
            truth, has_truth = frame_truth(batch)
            terms["articulation"] = masked_mse(articulation, time_major(truth), time_major(has_truth))
        if self.weights["frame_articulation"]:  # the weight is 0 once switched off
            terms["frame_articulation"] = masked_mse(self.shape_net(lower_halves(frames)), *batch_major_truth(batch))
        teacher_frames = None
        if self.teacher is not None:
            with torch.no_grad():
                teacher_frames, teacher_features = self.teacher.forward_with_features(
                    batch["mels"], batch["face_input"])
            terms["output_distill"] = output_distillation_loss(frames, teacher_frames)
            if adapted:
                layers = unwrap_model(model).feature_layers
                terms["feature_distill"] = feature_distillation_loss(adapted, [teacher_features[i] for i in layers])
        if self.expert is not None and with_sync:
            judged = frames
            if self.sync_mouth_only:  # the sync gradient may redraw the mouth, not paint cheeks to please the expert
                inside = mouth_mask(batch["mouth_box"].float(), frames.size(-2), frames.size(-1), self.mouth_margin)
                judged = frames * inside + batch["face_input"][:, 3:] * (1 - inside)
            terms["sync"] = expert_sync_loss(self.expert, batch["sync_mel"], judged)
        return frames, teacher_frames, terms

    def _total(self, terms: dict) -> torch.Tensor:
        total = self.weights["recon"] * terms["l1"]
        for key, weight in (("mouth_l1", "mouth_recon"), ("mouth_gradient", "mouth_gradient"),
                            ("articulation", "articulation"),
                            ("frame_articulation", "frame_articulation"), ("output_distill", "output_distill"),
                            ("feature_distill", "feature_distill")):
            if key in terms:
                total = total + self.weights[weight] * terms[key]
        if self.sync_active and "sync" in terms:
            total = total + self.weights["sync"] * terms["sync"]
        return total

    def training_step(self, model, batch):
        needs_sync = self.sync_active and self.weights["sync"] > 0
        _, _, terms = self._terms(model, batch, with_sync=needs_sync)
        total = self._total(terms)
        scalars = {key: float(value.detach()) for key, value in terms.items()}
        scalars["sync_weight"] = self.weights["sync"] if self.sync_active else 0.0
        return total, scalars

    def validate(self, model, batches):
        sums, count = {}, 0
        for batch in batches:
            frames, _, terms = self._terms(model, batch, with_sync=True)
            terms["loss"] = self._total(terms)
            mse = (frames.float() - batch["target"].float()).pow(2)
            lower = mse[..., mse.size(-2) // 2:, :]  # the mouth half of each frame
            terms["psnr_lower"] = (10 * torch.log10(1.0 / lower.flatten(1).mean(1).clamp_min(1e-10))).mean()
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value) * frames.size(0)
            count += frames.size(0)
        return {f"val/{key}": value / max(count, 1) for key, value in sums.items()}

    def on_validation(self, metrics: dict) -> None:
        if (not self.sync_active and self.expert is not None and self.weights["sync"] > 0
                and metrics.get("val/sync", float("inf")) < float(self.sync_enable_below)):
            self.sync_active = True

    def state_dict(self) -> dict:
        return {"sync_active": self.sync_active}

    def load_state_dict(self, state: dict) -> None:
        self.sync_active = bool(state["sync_active"])

    def sample_grid(self, model, batch):
        """Rows of (masked input | reference | output | [teacher] | ground truth), first frame of up to 4
        windows, converted from BGR to RGB."""
        count = min(4, batch["face_input"].size(0))
        subset = {key: value[:count] for key, value in batch.items() if torch.is_tensor(value)}
        frames, teacher_frames, _ = self._terms(model, subset, with_sync=False)
        columns = [subset["face_input"][:, :3], subset["face_input"][:, 3:], frames]
        if teacher_frames is not None:
            columns.append(teacher_frames)
        columns.append(subset["target"])
        first = [column[:, :, 0].float() for column in columns]  # (N,3,H,W) at t=0
        rows = torch.cat(first, dim=3)  # side by side
        return torch.cat(list(rows), dim=1).flip(0)  # stacked vertically, BGR -> RGB

    def export(self, model, path, metadata: dict) -> None:
        metadata = dict(metadata, teacher=(self.config.get("teacher") or {}).get("checkpoint"),
                        expert=self.config["expert"]["checkpoint"], loss=self.config["loss"])
        save_generator(model.generator, path, **metadata)
