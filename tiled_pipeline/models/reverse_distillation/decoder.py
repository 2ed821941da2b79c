"""Reverse Distillation's student decoder: the encoder run backwards from the bottleneck.

Three stages of transposed residual blocks, each opening with a stride-2 upsampling block,
produce maps with the channels and resolutions of encoder stages 3, 2 and 1 in that order. The
stage sizes follow the reference decoder, which reuses the encoder's depth list from the
bottleneck outwards: 3, 4, 6 blocks for wide_resnet50_2, 2, 2, 2 for resnet18.
"""

from __future__ import annotations

import torch
from torch import nn

from tiled_pipeline.models.reverse_distillation.blocks import (
    ResidualSpec,
    decoder_block,
    init_weights,
)


def _stage(spec: ResidualSpec, in_channels: int, out_channels: int, depth: int) -> nn.Sequential:
    """``depth`` blocks; the first doubles h, w and maps ``in_channels`` to ``out_channels``."""
    blocks = [decoder_block(spec, in_channels, out_channels, upsample=True)]
    blocks += [
        decoder_block(spec, out_channels, out_channels, upsample=False) for _ in range(depth - 1)
    ]
    return nn.Sequential(*blocks)


class Decoder(nn.Module):
    """Expand the one-class embedding into the encoder's three stage maps.

    Args:
        in_channels: channels of the embedding (2 * C3).
        channels: (C1, C2, C3), the encoder's stage channels, shallow to deep.
        spec: the encoder's residual design.
    """

    def __init__(
        self, in_channels: int, channels: tuple[int, int, int], spec: ResidualSpec
    ) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.stage3 = _stage(spec, in_channels, c3, spec.depths[0])
        self.stage2 = _stage(spec, c3, c2, spec.depths[1])
        self.stage1 = _stage(spec, c2, c1, spec.depths[2])
        init_weights(self)

    def forward(self, embedding: torch.Tensor) -> list[torch.Tensor]:
        """(B, 2 * C3, h, w) -> [(B, C1, 8h, 8w), (B, C2, 4h, 4w), (B, C3, 2h, 2w)].

        Returned shallow to deep, in the encoder's order, so that entry i pairs with encoder
        stage i.
        """
        f3 = self.stage3(embedding)
        f2 = self.stage2(f3)
        f1 = self.stage1(f2)
        return [f1, f2, f3]
