"""The layers quantization acts on: a generator's convolutions, with BatchNorm folded into them.

TensorRT folds BatchNorm into the preceding convolution before it chooses precisions, so the weights it
quantizes are the folded ones. Calibration, sensitivity and export therefore all work on the folded model,
and a layer is named after its convolution module (`face_encoder_blocks.1.0.conv_block.0`, `output_block.1`).
"""
from __future__ import annotations

import copy
from collections import OrderedDict

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

QUANTIZABLE_TYPES = (nn.Conv2d, nn.ConvTranspose2d)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of `model` in eval mode in which every BatchNorm2d that directly follows a convolution in an
    nn.Sequential is folded into that convolution and replaced by nn.Identity (module names unchanged)."""
    folded = copy.deepcopy(model).eval()
    for sequential in folded.modules():
        if not isinstance(sequential, nn.Sequential):
            continue
        for index in range(len(sequential) - 1):
            conv, norm = sequential[index], sequential[index + 1]
            if isinstance(conv, QUANTIZABLE_TYPES) and isinstance(norm, nn.BatchNorm2d):
                sequential[index] = fuse_conv_bn_eval(conv, norm, transpose=isinstance(conv, nn.ConvTranspose2d))
                sequential[index + 1] = nn.Identity()
    left = [name for name, module in folded.named_modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    if left:
        raise ValueError(f"BatchNorm layers that follow no convolution cannot be folded: {', '.join(left)}")
    return folded


def quantizable_layers(model: nn.Module) -> "OrderedDict[str, nn.Module]":
    """Convolution modules by name, in definition order."""
    layers = OrderedDict((name, module) for name, module in model.named_modules()
                         if isinstance(module, QUANTIZABLE_TYPES))
    for name, module in layers.items():
        if module.groups != 1:
            raise ValueError(f"layer {name} is a grouped convolution; only groups=1 is supported")
    return layers


def weight_axis(module: nn.Module) -> int:
    """The weight axis of output channels, along which TensorRT quantizes weights per channel:
    Conv2d weights are (out, in, kH, kW), ConvTranspose2d weights (in, out, kH, kW)."""
    return 1 if isinstance(module, nn.ConvTranspose2d) else 0
