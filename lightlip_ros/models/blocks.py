"""The two building blocks every LightLip network is made of.

Attribute names (`conv_block.0` conv, `conv_block.1` batch norm) are part of the checkpoint interface:
public Wav2Lip, SyncNet and Nota checkpoints name them, so they must never change.
"""
from __future__ import annotations

from torch import Tensor, nn


class ConvBlock(nn.Module):
    """Conv2d + BatchNorm2d (+ input, for a residual block) + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 residual: bool = False):
        super().__init__()
        if residual and (in_channels != out_channels or stride not in (1, (1, 1))):
            raise ValueError("a residual block keeps its channel count and resolution")
        self.conv_block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding),
            nn.BatchNorm2d(out_channels),
        )
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)

    def extra_repr(self) -> str:
        return "residual=True" if self.residual else ""


class ConvTransposeBlock(nn.Module):
    """ConvTranspose2d + BatchNorm2d + ReLU (the decoder's upsampling step)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding, output_padding),
            nn.BatchNorm2d(out_channels),
        )
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv_block(x))
