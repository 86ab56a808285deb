"""The lip-sync expert of Wav2Lip (`SyncNet_color`), with the module names of the official checkpoint."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import ConvBlock

SYNCNET = "syncnet_color"
SYNC_FRAMES = 5  # consecutive frames the expert judges at once
EMBEDDING_SIZE = 512


def _encoder(in_channels: int, layers) -> nn.Sequential:
    """layers: (out_channels, kernel, stride, padding, residual blocks after it)."""
    modules = []
    for out_channels, kernel, stride, padding, residuals in layers:
        modules.append(ConvBlock(in_channels, out_channels, kernel, stride, padding))
        modules.extend(ConvBlock(out_channels, out_channels, 3, 1, 1, residual=True) for _ in range(residuals))
        in_channels = out_channels
    return nn.Sequential(*modules)


class SyncNet(nn.Module):
    """Embeds a mel window (B,1,80,16) and 5 lower-half face frames stacked on channels (B,15,48,96) into
    L2-normalised vectors (512-d at width 1) whose cosine similarity scores lip sync.

    width scales every layer's channels: 1 is Wav2Lip's expert (about 1 GMAC per window, days of GPU training);
    a quarter costs about 1/16 of that, so an expert can be trained on a CPU.
    """

    architecture = SYNCNET

    def __init__(self, width: float = 1.0):
        super().__init__()
        if not 0 < width <= 1:
            raise ValueError(f"SyncNet width must be in (0, 1], got {width}")
        self.width = float(width)

        def scaled(layers):
            return [(max(1, round(channels * self.width)), *rest) for channels, *rest in layers]

        self.face_encoder = _encoder(3 * SYNC_FRAMES, scaled([  # 48x96
            (32, 7, 1, 3, 0),
            (64, 5, (1, 2), 1, 2),  # 46x47
            (128, 3, 2, 1, 3),  # 23x24
            (256, 3, 2, 1, 2),  # 12x12
            (512, 3, 2, 1, 2),  # 6x6
            (512, 3, 2, 1, 0),  # 3x3
            (512, 3, 1, 0, 0),  # 1x1
            (EMBEDDING_SIZE, 1, 1, 0, 0),
        ]))
        self.audio_encoder = _encoder(1, scaled([  # 80x16
            (32, 3, 1, 1, 2),
            (64, 3, (3, 1), 1, 2),  # 27x16
            (128, 3, 3, 1, 2),  # 9x6
            (256, 3, (3, 2), 1, 2),  # 3x3
            (512, 3, 1, 0, 0),  # 1x1
            (EMBEDDING_SIZE, 1, 1, 0, 0),
        ]))

    @property
    def config(self) -> dict:
        return {"architecture": SYNCNET, "width": self.width}

    def forward(self, mel: Tensor, face: Tensor):
        """Returns (audio_embedding, face_embedding), each (B,512) with unit L2 norm."""
        audio_embedding = self.audio_encoder(mel).flatten(1)
        face_embedding = self.face_encoder(face).flatten(1)
        return F.normalize(audio_embedding, p=2, dim=1), F.normalize(face_embedding, p=2, dim=1)


def sync_similarity(audio_embedding: Tensor, face_embedding: Tensor) -> Tensor:
    """Cosine similarity (B,) of the two embeddings, in float32 whatever autocast is in effect."""
    with torch.autocast(device_type=audio_embedding.device.type, enabled=False):
        return F.cosine_similarity(audio_embedding.float(), face_embedding.float())


def sync_loss(audio_embedding: Tensor, face_embedding: Tensor, in_sync: Tensor) -> Tensor:
    """Wav2Lip's expert loss: binary cross-entropy on the cosine similarity (targets 1 = in sync).

    In float32 outside autocast: binary cross-entropy is unsafe in half precision.
    """
    similarity = sync_similarity(audio_embedding, face_embedding).unsqueeze(1)
    with torch.autocast(device_type=similarity.device.type, enabled=False):
        return F.binary_cross_entropy(similarity, in_sync.reshape(-1, 1).float())


def matching_similarities(model: "SyncNet", mel: Tensor, candidates: Tensor) -> Tensor:
    """Cosine similarities (B,K) of each mel window (B,1,80,16) to its K candidate face windows (B,K,15,48,96)."""
    batch, count = candidates.shape[:2]
    # One forward call (what a DDP-wrapped model needs); repeating the mel costs little beside the K face windows.
    audio_embedding, face_embedding = model(mel.repeat_interleave(count, 0), candidates.flatten(0, 1))
    return sync_similarity(audio_embedding, face_embedding).reshape(batch, count)


def matching_loss(similarities: Tensor, temperature: float) -> Tensor:
    """Multi-way matching loss: cross-entropy of picking the in-sync candidate (the first) among K, from the
    similarities (B,K) scaled by 1/temperature (the similarities of Wav2Lip's ReLU embeddings lie in [0, 1])."""
    target = torch.zeros(similarities.size(0), dtype=torch.long, device=similarities.device)
    return F.cross_entropy(similarities.float() / temperature, target)


def syncnet_face_input(frames: Tensor) -> Tensor:
    """Generator frames (B,3,T=5,96,96) to the expert's input: lower halves stacked on channels (B,15,48,96)."""
    if frames.dim() != 5 or frames.size(2) != SYNC_FRAMES:
        raise ValueError(f"expected (B,3,{SYNC_FRAMES},H,W) frames, got {tuple(frames.shape)}")
    lower = frames[:, :, :, frames.size(3) // 2:]
    return torch.cat(lower.unbind(2), 1)
