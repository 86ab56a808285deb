"""`lightlip-profile`: parameters and MACs of the teacher, the paper's student and any other student widths.

MACs are counted with forward hooks on one 96x96 frame (batch 1). Only Conv2d and ConvTranspose2d weight
multiply-accumulates count: biases, BatchNorm (folded into the convolution when deployed), ReLU and Sigmoid
do not, which is how the paper arrives at 6.20 G (teacher) and 0.215 G (student). A ConvTranspose2d is
counted two ways:
- over output positions (the paper's and thop's convention): out_h*out_w*in_ch*out_ch*k*k;
- over input positions (the products a transposed conv really computes, no zeros inserted):
  in_h*in_w*in_ch*out_ch*k*k.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import torch
from torch import nn

from ..engines.base import FACE_SHAPE, MEL_SHAPE
from .generator import STUDENT_WIDTHS, GeneratorWidths, Wav2LipGenerator, student, wav2lip_teacher

COUNTED_LAYERS = "Conv2d and ConvTranspose2d weights (no bias, BatchNorm, ReLU or Sigmoid)"


@dataclasses.dataclass(frozen=True)
class ModelCost:
    parameters: int
    macs_output_positions: int  # ConvTranspose2d over output positions (paper / thop)
    macs_input_positions: int  # ConvTranspose2d over input positions


def measure(model: Wav2LipGenerator) -> ModelCost:
    """Parameters and per-frame MACs of a generator (both ConvTranspose2d conventions)."""
    totals = {"output": 0, "input": 0}

    def count(module, inputs, output):
        taps = module.kernel_size[0] * module.kernel_size[1]
        if isinstance(module, nn.ConvTranspose2d):
            # Every input value (C_in x H_in x W_in) meets out_channels/groups kernels of `taps` weights.
            totals["input"] += inputs[0][0].numel() * module.out_channels // module.groups * taps
            totals["output"] += output[0].numel() * module.in_channels // module.groups * taps
        else:
            macs = output[0].numel() * module.in_channels // module.groups * taps
            totals["input"] += macs
            totals["output"] += macs

    hooks = [module.register_forward_hook(count) for module in model.modules()
             if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *MEL_SHAPE), torch.zeros(1, *FACE_SHAPE))
    finally:
        for hook in hooks:
            hook.remove()
    return ModelCost(sum(p.numel() for p in model.parameters()), totals["output"], totals["input"])


def _widths_argument(text: str):
    """A fraction of the teacher's widths ("0.5") or a JSON dict of GeneratorWidths fields."""
    try:
        if text.lstrip().startswith("{"):
            return GeneratorWidths.from_dict(json.loads(text))
        return GeneratorWidths.scaled(float(text))
    except (ValueError, TypeError) as error:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a width fraction in (0, 1] nor a JSON widths dict ({error})") from error


def _student_label(widths: GeneratorWidths) -> str:
    if widths == STUDENT_WIDTHS:
        return "student (paper, 1/4 widths)"
    for fraction in (1.0, 0.75, 0.5, 0.375, 0.25, 0.125, 0.0625):
        if widths == GeneratorWidths.scaled(fraction):
            return f"student ({fraction:g} widths)"
    return "student (custom widths)"


def _rows(extra_widths):
    rows = [("wav2lip teacher", None, measure(wav2lip_teacher())),
            (_student_label(STUDENT_WIDTHS), STUDENT_WIDTHS, measure(student()))]
    for widths in extra_widths:
        rows.append((_student_label(widths), widths, measure(student(widths))))
    return rows


def _ratio(reference: int, value: int) -> str:
    return f"{reference / value:.1f}x"


def _table(rows) -> str:
    teacher = rows[0][2]
    lines = [
        "LightLip generator profile: one 96x96 frame, batch 1",
        f"MACs count {COUNTED_LAYERS}.",
        "  MACs out-pos: ConvTranspose2d over output positions (the paper's / thop's convention)",
        "  MACs in-pos:  ConvTranspose2d over input positions (no multiplications by inserted zeros)",
        "",
        f"{'model':<30}{'params':>11}{'MACs out-pos':>14}{'MACs in-pos':>13}"
        f"{'params /':>10}{'out-pos /':>11}{'in-pos /':>10}",
    ]
    for label, _, cost in rows:
        lines.append(f"{label:<30}{cost.parameters / 1e6:>9.3f} M{cost.macs_output_positions / 1e9:>12.3f} G"
                     f"{cost.macs_input_positions / 1e9:>11.3f} G"
                     f"{_ratio(teacher.parameters, cost.parameters):>10}"
                     f"{_ratio(teacher.macs_output_positions, cost.macs_output_positions):>11}"
                     f"{_ratio(teacher.macs_input_positions, cost.macs_input_positions):>10}")
    lines.append("(ratios: teacher's count divided by the model's)")
    for label, widths, _ in rows[1:]:
        lines.append(f"{label}: {json.dumps(widths.to_dict())}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="lightlip-profile",
        description="Parameters and MACs of the Wav2Lip teacher and LightLip students. " + __doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student-widths", nargs="+", type=_widths_argument, default=[], metavar="WIDTHS",
                        help="extra students to profile: a fraction of the teacher's widths (e.g. 0.5) or a JSON "
                             'dict {"face": [7 ints], "audio": [6], "decoder": [7], "output": int}')
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    rows = _rows(args.student_widths)
    if args.json:
        print(json.dumps({
            "counted_layers": COUNTED_LAYERS,
            "models": [{"name": label, "widths": None if widths is None else widths.to_dict(),
                        **dataclasses.asdict(cost)} for label, widths, cost in rows],
        }, indent=2))
    else:
        print(_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
