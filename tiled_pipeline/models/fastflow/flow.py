"""2D normalizing flows for FastFlow: convolutional affine coupling blocks written in torch.

A flow maps a (B, C, h, w) feature map x to a latent z of the same shape and returns
log|det dz/dx| per sample, so that the negative log-likelihood under a standard normal is
``0.5 * sum(z^2) - log_det`` (up to a constant).

Each block does, in order (the layout of FrEIA's all-in-one block, as FastFlow's reference
implementations use it):
1. a learned per-channel affine map ``x * exp(g) + b`` (identity at initialisation);
2. a fixed random channel permutation (seeded, stored with the weights);
3. an affine coupling: the first ``C - C // 2`` channels x1 pass unchanged and parameterise the
   rest x2 as ``x2 * exp(s) + t``, where ``(s_raw, t) = 0.1 * subnet(x1)`` and
   ``s = clamp * 0.636 * atan(s_raw / clamp)`` (soft clamping keeps |s| < clamp).
"""

from __future__ import annotations

import torch
from torch import nn

# 2 / pi, rounded as in the reference implementations: the clamped scale stays within +-clamp.
_ATAN_GAIN = 0.636


def subnet(in_channels: int, out_channels: int, kernel_size: int, hidden_ratio: float) -> nn.Module:
    """Conv - ReLU - Conv with ``int(in_channels * hidden_ratio)`` hidden channels, same size."""
    hidden = max(1, int(in_channels * hidden_ratio))
    padding = kernel_size // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, kernel_size, padding=padding),
        nn.ReLU(),
        nn.Conv2d(hidden, out_channels, kernel_size, padding=padding),
    )


class AffineCouplingBlock(nn.Module):
    """One flow step: per-channel affine, fixed channel permutation, affine coupling.

    Args:
        channels: C, at least 2.
        kernel_size: 3 or 1, the subnet's convolution size.
        hidden_ratio: subnet hidden channels per conditioning channel.
        clamp: bound of the coupling's log-scale (soft clamping).
        permutation: (C,) a permutation of ``range(C)``.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        hidden_ratio: float,
        clamp: float,
        permutation: torch.Tensor,
    ) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError(f"a coupling block needs at least 2 channels, got channels={channels}")
        if sorted(permutation.tolist()) != list(range(channels)):
            raise ValueError(f"permutation must reorder range({channels}), got {permutation}")
        self.clamp = clamp
        self.kept = channels - channels // 2
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.offset = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("permutation", permutation.clone().long())
        self.subnet = subnet(self.kept, 2 * (channels - self.kept), kernel_size, hidden_ratio)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, h, w) -> the transformed (B, C, h, w) and log|det| per sample (B,)."""
        _, _, h, w = x.shape

        # 1. per-channel affine; its log-determinant is the same at each of the h * w positions
        x = x * self.log_scale.exp() + self.offset
        log_det = self.log_scale.sum() * (h * w)

        # 2. permutation: volume preserving
        x = x[:, self.permutation]

        # 3. affine coupling of x2 on x1
        x1, x2 = x[:, : self.kept], x[:, self.kept :]
        s_raw, t = (0.1 * self.subnet(x1)).chunk(2, dim=1)  # (B, 2*C2, h, w) -> 2 x (B, C2, h, w)
        s = self.clamp * _ATAN_GAIN * torch.atan(s_raw / self.clamp)
        y = torch.cat([x1, x2 * s.exp() + t], dim=1)
        return y, log_det + s.sum(dim=(1, 2, 3))


class Flow2d(nn.Module):
    """A stack of coupling blocks whose subnets alternate 3x3 and 1x1 convolutions.

    Args:
        channels: C of the feature map.
        steps: number of coupling blocks.
        hidden_ratio: subnet hidden channels per conditioning channel.
        clamp: bound of each coupling's log-scale.
        conv3x3_only: use 3x3 subnets in every block instead of alternating 3x3 and 1x1.
        generator: draws the blocks' channel permutations (seed it for reproducible flows).
    """

    def __init__(
        self,
        channels: int,
        steps: int,
        hidden_ratio: float,
        clamp: float,
        conv3x3_only: bool,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            AffineCouplingBlock(
                channels,
                kernel_size=3 if conv3x3_only or step % 2 == 0 else 1,
                hidden_ratio=hidden_ratio,
                clamp=clamp,
                permutation=torch.randperm(channels, generator=generator),
            )
            for step in range(steps)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, h, w) -> latent z (B, C, h, w) and the summed log|det dz/dx| per sample (B,)."""
        log_det = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        for block in self.blocks:
            x, block_log_det = block(x)
            log_det = log_det + block_log_det
        return x, log_det


def negative_log_likelihood(z: torch.Tensor, log_det: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``0.5 * sum(z^2) - log_det``: z (B, C, h, w), log_det (B,)."""
    return (0.5 * z.pow(2).sum(dim=(1, 2, 3)) - log_det).mean()
