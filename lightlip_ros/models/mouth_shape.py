"""The mouth-shape reader of LightLip's training: a small CNN that reads the mouth's articulation (the
synthetic benchmark's jaw opening, lip spread and rounding) off the lower half of a 96x96 face crop.

It is trained on ground-truth frames only (`lightlip-train shapenet`) and then held fixed while a generator
trains: its reading of the generated frames is compared with the truth, so the mouth the generator draws
must have the shape the speech needs (`loss.frame_articulation`). It never sees a generated frame while it
learns, so it is a fixed measuring instrument, not a discriminator.
"""
from __future__ import annotations

from torch import Tensor, nn

MOUTH_SHAPE_NET = "mouth_shape_net"


class MouthShapeNet(nn.Module):
    """(N,3,48,96) lower halves of face crops, BGR in [0,1] -> (N, dimensions) articulation."""

    architecture = MOUTH_SHAPE_NET

    def __init__(self, dimensions: int = 3, width: int = 16):
        super().__init__()
        self.dimensions, self.width = int(dimensions), int(width)
        layers, channels = [], 3
        for out in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(channels, out, 3, 2, 1), nn.GroupNorm(4, out), nn.ReLU(inplace=True)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.read_out = nn.Linear(channels, dimensions)

    @property
    def config(self) -> dict:
        return {"architecture": MOUTH_SHAPE_NET, "dimensions": self.dimensions, "width": self.width}

    def forward(self, lower_faces: Tensor) -> Tensor:
        return self.read_out(self.features(lower_faces).mean(dim=(2, 3)))


def lower_halves(frames: Tensor) -> Tensor:
    """(B,3,T,H,W) frame windows -> (B*T,3,H/2,W) lower halves, batch-major (index b*T + t): the reader's
    input."""
    lower = frames[..., frames.size(-2) // 2:, :]
    return lower.permute(0, 2, 1, 3, 4).flatten(0, 1)
