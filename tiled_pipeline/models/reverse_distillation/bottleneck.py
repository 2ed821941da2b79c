"""Reverse Distillation's one-class bottleneck embedding (OCBE).

The OCBE fuses the encoder's three stages into one compact embedding that the decoder has to
expand back into all three:
1. multi-scale fusion: strided 3x3 convolutions bring stage 1 (two of them) and stage 2 (one) to
   stage 3's resolution and channels C3; the three maps are concatenated (3 * C3 channels);
2. one-class embedding: a residual stage like ResNet's layer4 (first block of stride 2) maps them
   to 2 * C3 channels at half stage 3's resolution.
"""

from __future__ import annotations

import torch
from torch import nn

from tiled_pipeline.models.reverse_distillation.blocks import (
    ResidualSpec,
    conv_bn,
    encoder_block,
    init_weights,
)


class OneClassBottleneck(nn.Module):
    """Fuse encoder features (C1, C2, C3 channels at strides r, 2r, 4r) into one embedding.

    Args:
        channels: (C1, C2, C3), the encoder's stage channels.
        spec: the encoder's residual design; the embedding stage has ``spec.depths[0]`` blocks,
            which equals ResNets' layer4 depth (2 for resnet18, 3 for wide_resnet50_2).
    """

    def __init__(self, channels: tuple[int, int, int], spec: ResidualSpec) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.out_channels = 2 * c3
        self.fuse1 = nn.Sequential(
            *conv_bn(c1, c2, 3, stride=2), nn.ReLU(), *conv_bn(c2, c3, 3, stride=2), nn.ReLU()
        )
        self.fuse2 = nn.Sequential(*conv_bn(c2, c3, 3, stride=2), nn.ReLU())
        self.embed = nn.Sequential(
            encoder_block(spec, 3 * c3, self.out_channels, stride=2),
            *(
                encoder_block(spec, self.out_channels, self.out_channels, stride=1)
                for _ in range(spec.depths[0] - 1)
            ),
        )
        init_weights(self)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Stage maps (B, C_i, h_i, w_i), i = 1..3 -> embedding (B, 2 * C3, h3 / 2, w3 / 2)."""
        f1, f2, f3 = features
        fused = torch.cat([self.fuse1(f1), self.fuse2(f2), f3], dim=1)  # (B, 3 * C3, h3, w3)
        return self.embed(fused)
