"""Wav2Lip generator family: the teacher (official Wav2Lip) and the paper's compressed student.

Both are one `Wav2LipGenerator` whose forward pass is shared; they differ only in the block lists built by
`_generator_blocks` (widths, and whether residual blocks are present). Module names follow the official
Wav2Lip structure exactly, so the official checkpoints and Nota's teacher/student load unchanged.
"""
from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from .blocks import ConvBlock, ConvTransposeBlock

TEACHER = "wav2lip"
STUDENT = "student"

FACE_CHANNELS = 6  # masked target frame + reference frame, BGR each

# Residual blocks per stage in Wav2Lip; the paper's student removes all of them.
_FACE_RESIDUALS = (0, 2, 3, 2, 2, 1)  # after the first conv of face encoder blocks 0..5
_AUDIO_RESIDUALS = (2, 2, 2, 1)  # after each of the 4 strided audio stages
_DECODER_RESIDUALS = (0, 1, 2, 2, 2, 2, 2)  # after the first layer of decoder blocks 0..6
_AUDIO_STRIDES = ((1, 1), (3, 1), (3, 3), (3, 2))  # (80,16) -> (80,16) -> (27,16) -> (9,6) -> (3,3)


@dataclasses.dataclass(frozen=True)
class GeneratorWidths:
    """Output channels of every stage: 7 face encoder blocks, 6 audio encoder layers (4 strided stages, a
    3x3 valid conv, a 1x1 conv), 7 decoder blocks, and the output block's 3x3 conv."""

    face: tuple
    audio: tuple
    decoder: tuple
    output: int

    def __post_init__(self):
        for name, length in (("face", 7), ("audio", 6), ("decoder", 7)):
            values = tuple(getattr(self, name))
            if len(values) != length or not all(_is_positive_int(v) for v in values):
                raise ValueError(f"widths.{name} needs {length} positive integers, got {list(values)}")
            object.__setattr__(self, name, tuple(int(v) for v in values))
        if not _is_positive_int(self.output):
            raise ValueError(f"widths.output needs a positive integer, got {self.output!r}")
        object.__setattr__(self, "output", int(self.output))

    @classmethod
    def scaled(cls, fraction: float) -> "GeneratorWidths":
        """The teacher's widths times `fraction` (0.25 gives the paper's student)."""
        if not 0 < fraction <= 1:
            raise ValueError(f"width fraction must be in (0, 1], got {fraction}")

        def scale(values):
            return tuple(max(1, round(v * fraction)) for v in values)

        return cls(scale(TEACHER_WIDTHS.face), scale(TEACHER_WIDTHS.audio), scale(TEACHER_WIDTHS.decoder),
                   max(1, round(TEACHER_WIDTHS.output * fraction)))

    @classmethod
    def from_dict(cls, widths: Mapping) -> "GeneratorWidths":
        fields = {f.name for f in dataclasses.fields(cls)}
        if set(widths) != fields:
            raise ValueError(f"widths need exactly the keys {sorted(fields)}, got {sorted(widths)}")
        return cls(**widths)

    def to_dict(self) -> dict:
        return {"face": list(self.face), "audio": list(self.audio), "decoder": list(self.decoder),
                "output": self.output}


def _is_positive_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


TEACHER_WIDTHS = GeneratorWidths(
    face=(16, 32, 64, 128, 256, 512, 512),
    audio=(32, 64, 128, 256, 512, 512),
    decoder=(512, 512, 512, 384, 256, 128, 64),
    output=32,
)
STUDENT_WIDTHS = GeneratorWidths.scaled(0.25)  # Nota's NotaWav2Lip(nef=4, naf=8, ndf=8)


def _residuals(width: int, count: int) -> list:
    return [ConvBlock(width, width, 3, 1, 1, residual=True) for _ in range(count)]


def _generator_blocks(widths: GeneratorWidths, residual: bool):
    """Build (face_encoder_blocks, audio_encoder, face_decoder_blocks, output_block)."""
    face, audio, dec = widths.face, widths.audio, widths.decoder

    def count(table, i):
        return table[i] if residual else 0

    face_blocks = [nn.Sequential(ConvBlock(FACE_CHANNELS, face[0], 7, 1, 3))]  # 96x96
    for i in range(1, 6):  # 48, 24, 12, 6, 3
        face_blocks.append(nn.Sequential(ConvBlock(face[i - 1], face[i], 3, 2, 1),
                                         *_residuals(face[i], count(_FACE_RESIDUALS, i))))
    face_blocks.append(nn.Sequential(ConvBlock(face[5], face[6], 3, 1, 0),  # 1x1
                                     ConvBlock(face[6], face[6], 1, 1, 0)))

    audio_layers = []
    in_channels = 1
    for stage, stride in enumerate(_AUDIO_STRIDES):
        audio_layers.append(ConvBlock(in_channels, audio[stage], 3, stride, 1))
        audio_layers.extend(_residuals(audio[stage], count(_AUDIO_RESIDUALS, stage)))
        in_channels = audio[stage]
    audio_layers.append(ConvBlock(audio[3], audio[4], 3, 1, 0))  # 3x3 -> 1x1
    audio_layers.append(ConvBlock(audio[4], audio[5], 1, 1, 0))

    # Decoder block i sees the previous block's output concatenated with face encoder block 6-i+1's output.
    decoder_blocks = [nn.Sequential(ConvBlock(audio[5], dec[0], 1, 1, 0))]
    decoder_blocks.append(nn.Sequential(ConvTransposeBlock(dec[0] + face[6], dec[1], 3, 1, 0),  # 3x3
                                        *_residuals(dec[1], count(_DECODER_RESIDUALS, 1))))
    for i in range(2, 7):  # 6, 12, 24, 48, 96
        decoder_blocks.append(nn.Sequential(
            ConvTransposeBlock(dec[i - 1] + face[7 - i], dec[i], 3, 2, 1, output_padding=1),
            *_residuals(dec[i], count(_DECODER_RESIDUALS, i))))

    output_block = nn.Sequential(ConvBlock(dec[6] + face[0], widths.output, 3, 1, 1),
                                 nn.Conv2d(widths.output, 3, 1, 1, 0),
                                 nn.Sigmoid())
    return nn.ModuleList(face_blocks), nn.Sequential(*audio_layers), nn.ModuleList(decoder_blocks), output_block


class Wav2LipGenerator(nn.Module):
    """U-Net lip generator: a mel window and a 6-channel face (masked target + reference) to a BGR face.

    Inputs: mel (B,1,80,16) and face (B,6,96,96) BGR in [0,1] -> (B,3,96,96) BGR in [0,1]; or, as in
    Wav2Lip training, mel (B,T,1,80,16) and face (B,6,T,96,96) -> (B,3,T,96,96).
    Build with `wav2lip_teacher()`, `student(widths)` or `build_generator(config)`.
    """

    def __init__(self, config: Mapping):
        super().__init__()
        architecture, widths = _parse_config(config)
        (self.face_encoder_blocks, self.audio_encoder, self.face_decoder_blocks,
         self.output_block) = _generator_blocks(widths, residual=architecture == TEACHER)
        self.architecture = architecture
        self.widths = widths

    @property
    def config(self) -> dict:
        """A plain dict that `build_generator` turns back into this architecture."""
        return {"architecture": self.architecture, "widths": self.widths.to_dict()}

    def forward(self, mel: Tensor, face: Tensor) -> Tensor:
        return self.forward_with_features(mel, face)[0]

    def forward_with_features(self, mel: Tensor, face: Tensor):
        """Output and the decoder feature maps (after each decoder block's skip concatenation).

        For 5-D input the features stay 4-D with the T frames stacked time-major on the batch axis
        (index t*B + b), the layout the network computes in.
        """
        sequence = face.dim() == 5
        if sequence:
            batch = face.size(0)
            mel = torch.cat(mel.unbind(1), 0)
            face = torch.cat(face.unbind(2), 0)

        skips = []
        x = face
        for block in self.face_encoder_blocks:
            x = block(x)
            skips.append(x)

        x = self.audio_encoder(mel)
        features = []
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), skips.pop()), 1)
            features.append(x)
        out = self.output_block(x)

        if sequence:
            out = torch.stack(out.split(batch, 0), 2)
        return out, features


def _parse_config(config: Mapping):
    architecture = config.get("architecture")
    if architecture == TEACHER:
        widths = config.get("widths")
        if widths is not None and GeneratorWidths.from_dict(widths) != TEACHER_WIDTHS:
            raise ValueError("the wav2lip architecture has fixed widths; use the student family for others")
        return TEACHER, TEACHER_WIDTHS
    if architecture == STUDENT:
        widths = config.get("widths")
        return STUDENT, STUDENT_WIDTHS if widths is None else GeneratorWidths.from_dict(widths)
    raise ValueError(f"unknown generator architecture {architecture!r} (expected {TEACHER!r} or {STUDENT!r})")


def build_generator(config: Mapping) -> Wav2LipGenerator:
    """Rebuild a generator from `generator.config`."""
    return Wav2LipGenerator(config)


def wav2lip_teacher() -> Wav2LipGenerator:
    """The official Wav2Lip generator (36.30 M parameters)."""
    return Wav2LipGenerator({"architecture": TEACHER})


def student(widths=None) -> Wav2LipGenerator:
    """The paper's student: no residual blocks, 1/4 widths by default (1.258 M parameters).

    `widths` is a `GeneratorWidths`, a dict with its fields, or a fraction of the teacher's widths.
    """
    if widths is None:
        widths = STUDENT_WIDTHS
    elif isinstance(widths, numbers.Real) and not isinstance(widths, bool):
        widths = GeneratorWidths.scaled(float(widths))
    elif isinstance(widths, Mapping):
        widths = GeneratorWidths.from_dict(widths)
    elif not isinstance(widths, GeneratorWidths):
        raise TypeError(f"widths must be GeneratorWidths, a dict or a fraction, got {type(widths).__name__}")
    return Wav2LipGenerator({"architecture": STUDENT, "widths": widths.to_dict()})
