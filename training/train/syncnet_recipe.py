"""Lip-sync expert recipe: Wav2Lip's SyncNet trained with BCE on the cosine similarity of in-sync and
off-sync (face window, audio window) pairs."""
from __future__ import annotations

from lightlip_ros.models import CheckpointError, SyncNet, load_syncnet, save_syncnet, sync_loss
from lightlip_ros.models.syncnet import sync_similarity

from ..data.dataset import SyncPairDataset
from .trainer import Recipe, TrainingError, dataset_pair


def _scores(model, batch):
    audio_embedding, face_embedding = model(batch["mel"], batch["faces"])
    return (sync_loss(audio_embedding, face_embedding, batch["in_sync"]),
            sync_similarity(audio_embedding, face_embedding))


class SyncNetRecipe(Recipe):
    name = "syncnet"
    monitor = "val/loss"

    def datasets(self):
        options = {"off_sync_min_offset": self.config["data"].get("off_sync_min_offset", 1)}
        try:
            return dataset_pair(SyncPairDataset, self.config, options, options)
        except (TypeError, ValueError) as error:
            raise TrainingError(f"data: {error}") from error

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
        loss, similarity = _scores(model, batch)
        accuracy = ((similarity > 0.5).float() == batch["in_sync"].reshape(-1).float()).float().mean()
        return loss, {"bce": float(loss.detach()), "accuracy": float(accuracy)}

    def validate(self, model, batches):
        total_loss, correct, count = 0.0, 0.0, 0
        for batch in batches:
            loss, similarity = _scores(model, batch)
            labels = batch["in_sync"].reshape(-1).float()
            total_loss += float(loss) * labels.numel()
            correct += float(((similarity > 0.5).float() == labels).sum())
            count += labels.numel()
        return {"val/loss": total_loss / max(count, 1), "val/accuracy": correct / max(count, 1)}

    def export(self, model, path, metadata: dict) -> None:
        save_syncnet(model, path, **metadata)
