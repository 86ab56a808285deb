"""Lip-sync expert recipe: Wav2Lip's SyncNet trained with BCE on the cosine similarity of in-sync and
off-sync (face window, audio window) pairs, or (data.candidates > 1) by multi-way matching: for each audio
window, cross-entropy of picking its own face window among K windows of the same clip."""
from __future__ import annotations

from lightlip_ros.models import CheckpointError, SyncNet, load_syncnet, save_syncnet, sync_loss
from lightlip_ros.models.syncnet import matching_loss, matching_similarities, sync_similarity

from ..data.dataset import SyncPairDataset
from .trainer import Recipe, TrainingError, dataset_pair


class SyncNetRecipe(Recipe):
    name = "syncnet"
    monitor = "val/loss"

    def __init__(self, config: dict, device):
        super().__init__(config, device)
        try:
            self.temperature = float(config["loss"]["temperature"])
        except (TypeError, ValueError) as error:
            raise TrainingError(f"loss.temperature: {error}") from error
        if not self.temperature > 0:
            raise TrainingError(f"loss.temperature must be > 0, got {self.temperature}")

    def datasets(self):
        data = self.config["data"]
        options = {"off_sync_min_offset": data.get("off_sync_min_offset", 1), "candidates": data.get("candidates", 1)}
        try:
            return dataset_pair(SyncPairDataset, self.config, options, options)
        except (TypeError, ValueError) as error:
            raise TrainingError(f"data: {error}") from error

    def _scores(self, model, batch):
        """(loss, number of decisions, number right) of one batch: pairs judged at similarity 0.5, or the
        in-sync candidate ranked first."""
        if batch["faces"].dim() == 4:  # pairs
            audio_embedding, face_embedding = model(batch["mel"], batch["faces"])
            similarity = sync_similarity(audio_embedding, face_embedding)
            labels = batch["in_sync"].reshape(-1).float()
            return (sync_loss(audio_embedding, face_embedding, labels), labels.numel(),
                    float(((similarity > 0.5).float() == labels).sum()))
        similarities = matching_similarities(model, batch["mel"], batch["faces"])
        loss = matching_loss(similarities, self.temperature)
        return loss, similarities.size(0), float((similarities.argmax(1) == 0).sum())

    def build_model(self):
        init = self.config["model"].get("init")
        if not init:
            try:
                return SyncNet(self.config["model"].get("width", 1.0)).train()
            except (TypeError, ValueError) as error:
                raise TrainingError(f"model.width: {error}") from error
        try:
            return load_syncnet(init).train()
        except CheckpointError as error:
            raise TrainingError(f"--init: {error}") from error

    def training_step(self, model, batch):
        loss, count, right = self._scores(model, batch)
        return loss, {"loss": float(loss.detach()), "accuracy": right / count}

    def validate(self, model, batches):
        total_loss, right, count = 0.0, 0.0, 0
        for batch in batches:
            loss, batch_count, batch_right = self._scores(model, batch)
            total_loss += float(loss) * batch_count
            right += batch_right
            count += batch_count
        return {"val/loss": total_loss / max(count, 1), "val/accuracy": right / max(count, 1)}

    def export(self, model, path, metadata: dict) -> None:
        save_syncnet(model, path, **metadata)
