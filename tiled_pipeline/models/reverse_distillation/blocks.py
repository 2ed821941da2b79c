"""Residual blocks for Reverse Distillation's bottleneck and decoder, shaped after the encoder.

The trainable parts mirror the frozen encoder's block type: ResNets with basic blocks (resnet18,
resnet34) get basic blocks, ResNets with bottleneck blocks (resnet50, wide_resnet50_2) get
bottleneck blocks of the same inner width ratio (0.25 for resnet50, 0.5 for wide_resnet50_2).
Any other backbone gets basic blocks, two per stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from tiled_pipeline.models.backbone import FeatureExtractor


@dataclass(frozen=True)
class ResidualSpec:
    """The encoder's residual design, read off the timm backbone.

    Attributes:
        kind: ``"basic"`` (two 3x3 convolutions) or ``"bottleneck"`` (1x1, 3x3, 1x1).
        width_ratio: a bottleneck block's inner channels per output channel.
        depths: blocks in the encoder's three stages, shallow to deep (e.g. 3, 4, 6).
    """

    kind: Literal["basic", "bottleneck"]
    width_ratio: float
    depths: tuple[int, int, int]


def residual_spec(extractor: FeatureExtractor) -> ResidualSpec:
    """Read the block type, width and stage depths of ``extractor``'s three stages."""
    children = dict(extractor.model.named_children())
    names = extractor.model.feature_info.module_name()
    stages = [children.get(name.replace(".", "_")) for name in names]
    is_resnet = all(
        isinstance(stage, nn.Sequential) and hasattr(stage[0], "conv2") for stage in stages
    )
    if len(stages) != 3 or not is_resnet:
        return ResidualSpec("basic", 1.0, (2, 2, 2))
    depths = (len(stages[0]), len(stages[1]), len(stages[2]))
    first = stages[0][0]
    if not hasattr(first, "conv3"):
        return ResidualSpec("basic", 1.0, depths)
    return ResidualSpec("bottleneck", first.conv2.out_channels / first.conv3.out_channels, depths)


class ResidualBlock(nn.Module):
    """``relu(branch(x) + shortcut(x))``."""

    def __init__(self, branch: nn.Module, shortcut: nn.Module) -> None:
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, h, w) -> (B, C_out, h', w') with the branch's stride or upsampling."""
        return torch.relu(self.branch(x) + self.shortcut(x))


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> list:
    """A bias-free 'same'-padded convolution followed by batch norm (stride halves h, w)."""
    conv = nn.Conv2d(
        in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False
    )
    return [conv, nn.BatchNorm2d(out_channels)]


def deconv_bn(in_channels: int, out_channels: int) -> list:
    """A 2x2 transposed convolution of stride 2 (doubles h, w) followed by batch norm."""
    deconv = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2, bias=False)
    return [deconv, nn.BatchNorm2d(out_channels)]


def encoder_block(
    spec: ResidualSpec, in_channels: int, out_channels: int, stride: int
) -> ResidualBlock:
    """A ResNet block (``spec.kind``) from ``in_channels`` to ``out_channels`` at ``stride``."""
    if spec.kind == "basic":
        branch = [*conv_bn(in_channels, out_channels, 3, stride), nn.ReLU()]
        branch += conv_bn(out_channels, out_channels, 3)
    else:
        width = int(out_channels * spec.width_ratio)
        branch = [*conv_bn(in_channels, width, 1), nn.ReLU()]
        branch += [*conv_bn(width, width, 3, stride), nn.ReLU(), *conv_bn(width, out_channels, 1)]
    same = stride == 1 and in_channels == out_channels
    shortcut = (
        nn.Identity() if same else nn.Sequential(*conv_bn(in_channels, out_channels, 1, stride))
    )
    return ResidualBlock(nn.Sequential(*branch), shortcut)


def decoder_block(
    spec: ResidualSpec, in_channels: int, out_channels: int, upsample: bool
) -> ResidualBlock:
    """A transposed ResNet block: like :func:`encoder_block`, but its strided 3x3 convolution
    (and its shortcut's) is a 2x2 transposed convolution doubling h and w when ``upsample``."""

    def middle(cin: int, cout: int) -> list:
        return deconv_bn(cin, cout) if upsample else conv_bn(cin, cout, 3)

    if spec.kind == "basic":
        branch = [*middle(in_channels, out_channels), nn.ReLU()]
        branch += conv_bn(out_channels, out_channels, 3)
    else:
        width = int(out_channels * spec.width_ratio)
        branch = [*conv_bn(in_channels, width, 1), nn.ReLU(), *middle(width, width), nn.ReLU()]
        branch += conv_bn(width, out_channels, 1)
    if upsample:
        shortcut = nn.Sequential(*deconv_bn(in_channels, out_channels))
    elif in_channels != out_channels:
        shortcut = nn.Sequential(*conv_bn(in_channels, out_channels, 1))
    else:
        shortcut = nn.Identity()
    return ResidualBlock(nn.Sequential(*branch), shortcut)


def init_weights(module: nn.Module) -> None:
    """He-normal (fan-out) convolutions and unit batch norms, as torchvision's ResNets do."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
