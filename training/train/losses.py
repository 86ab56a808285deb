"""Losses of the offline training recipes: reconstruction, the expert's sync loss on generated frames,
and the two distillation terms (teacher frames, teacher decoder features through learned adapters).

The expert's own loss (BCE on cosine similarity) and its face input live with the model in
`lightlip_ros.models.syncnet`; this module only applies them to generated frames.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightlip_ros.models.syncnet import sync_loss, syncnet_face_input


def expert_sync_loss(expert: nn.Module, mel_window: Tensor, frames: Tensor) -> Tensor:
    """Wav2Lip's generator sync loss: the frozen expert's BCE for generated frames (B,3,5,96,96) against
    the window's mel (B,1,80,16), with every pair labelled in sync."""
    audio_embedding, face_embedding = expert(mel_window, syncnet_face_input(frames))
    return sync_loss(audio_embedding, face_embedding, torch.ones(frames.size(0), device=frames.device))


class FeatureAdapters(nn.Module):
    """1x1 convolutions that map each student decoder feature map to the width of the teacher's.

    Trained jointly with the student and discarded afterwards: they exist only so that feature maps of
    different widths can be compared (FitNets-style hints). A pair of equal widths still gets an adapter,
    so every layer is compared through a learned projection in the same way.
    """

    def __init__(self, student_widths, teacher_widths):
        super().__init__()
        if len(student_widths) != len(teacher_widths):
            raise ValueError(f"student has {len(student_widths)} decoder feature maps, "
                             f"teacher {len(teacher_widths)}")
        self.projections = nn.ModuleList(nn.Conv2d(s, t, 1) for s, t in zip(student_widths, teacher_widths))

    def forward(self, student_features):
        return [project(feature) for project, feature in zip(self.projections, student_features)]


def feature_distillation_loss(adapted_student_features, teacher_features) -> Tensor:
    """Mean over layers of MSE(adapted student map, teacher map), each divided by the teacher map's mean
    square so that deep wide layers and shallow ones weigh alike whatever their activation scale."""
    losses = []
    for student_map, teacher_map in zip(adapted_student_features, teacher_features):
        if student_map.shape != teacher_map.shape:
            raise ValueError(f"feature shapes differ: {tuple(student_map.shape)} vs {tuple(teacher_map.shape)}")
        teacher_map = teacher_map.detach().float()
        scale = teacher_map.pow(2).mean().clamp_min(1e-6)
        losses.append(F.mse_loss(student_map.float(), teacher_map) / scale)
    return torch.stack(losses).mean()


def output_distillation_loss(student_frames: Tensor, teacher_frames: Tensor) -> Tensor:
    """L1 between the student's and the teacher's generated frames (the teacher is not trained)."""
    return F.l1_loss(student_frames, teacher_frames.detach())


def reconstruction_loss(frames: Tensor, target: Tensor) -> Tensor:
    """Wav2Lip's reconstruction term: L1 to the ground-truth frames."""
    return F.l1_loss(frames, target)


def mouth_mask(boxes: Tensor, height: int, width: int, margin: float) -> Tensor:
    """(B,1,T,H,W) mask, 1 inside each frame's mouth box (B,T,4: x1, y1, x2, y2 in pixels) grown by
    `margin` pixels on every side."""
    rows = torch.arange(height, device=boxes.device, dtype=boxes.dtype).view(1, 1, height, 1) + 0.5
    cols = torch.arange(width, device=boxes.device, dtype=boxes.dtype).view(1, 1, 1, width) + 0.5
    x1, y1, x2, y2 = (boxes[..., k, None, None] for k in range(4))
    inside = ((cols >= x1 - margin) & (cols <= x2 + margin) & (rows >= y1 - margin) & (rows <= y2 + margin))
    return inside.unsqueeze(1).to(boxes.dtype)


def mouth_reconstruction_loss(frames: Tensor, target: Tensor, boxes: Tensor, margin: float, reference: Tensor = None,
                              motion_weight: float = 0.0) -> Tensor:
    """L1 to the ground truth inside the mouth boxes only (weighted mean over the masked pixels): the region
    that whole-frame L1 lets a blurred, average mouth get away with.

    With a reference window and motion_weight k, each pixel weighs 1 + k * |target - reference| (mean over
    channels): where the mouth must differ from the still face it was given (an open mouth over a closed
    reference), a half-drawn mouth costs more than a half-drawn rest does, so when the speech leaves the
    shape uncertain the optimum leans towards moving the lips instead of keeping them still."""
    weight = mouth_mask(boxes.float(), frames.size(-2), frames.size(-1), margin)
    if reference is not None and motion_weight:
        weight = weight * (1.0 + motion_weight * (target.float() - reference.float()).abs().mean(1, keepdim=True))
    error = (frames.float() - target.float()).abs() * weight
    return error.sum() / (weight.sum() * frames.size(1)).clamp_min(1.0)


def mouth_gradient_loss(frames: Tensor, target: Tensor, boxes: Tensor, margin: float) -> Tensor:
    """L1 between the horizontal and vertical pixel differences of the generated and ground-truth frames
    inside the mouth boxes (the gradient difference loss of Mathieu et al., 2016). A blurred mouth has weak
    edges wherever the lips may be, which pixel L1 tolerates as the cheapest compromise; matching the edges
    asks for the lip contours and the dark gap between them to be drawn where they are."""
    weight = mouth_mask(boxes.float(), frames.size(-2), frames.size(-1), margin)
    error = frames.float() - target.float()
    rows = (error[..., 1:, :] - error[..., :-1, :]).abs() * weight[..., 1:, :] * weight[..., :-1, :]
    cols = (error[..., :, 1:] - error[..., :, :-1]).abs() * weight[..., :, 1:] * weight[..., :, :-1]
    return (rows.sum() + cols.sum()) / (2 * weight.sum() * frames.size(1)).clamp_min(1.0)


def masked_mse(predicted: Tensor, truth: Tensor, weight: Tensor) -> Tensor:
    """MSE over the samples whose weight is 1 (those with synthetic truth); 0 when there are none.
    predicted/truth: (N, D), weight: (N,)."""
    weight = weight.float()
    squared = (predicted.float() - truth.float()).pow(2).mean(dim=1)
    return (squared * weight).sum() / weight.sum().clamp_min(1.0)


class ArticulationHead(nn.Module):
    """A linear read-out of the generator's audio embedding to the frame's mouth shape (jaw, spread,
    round). Trained with the generator and discarded afterwards: its loss makes the audio encoder carry the
    articulation that whole-frame L1 alone never forces it to learn."""

    def __init__(self, embedding_width: int, dimensions: int = 3):
        super().__init__()
        self.linear = nn.Linear(embedding_width, dimensions)

    def forward(self, embedding: Tensor) -> Tensor:
        return self.linear(embedding.flatten(1))
