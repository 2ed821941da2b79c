"""Post-processing of patch-level anomaly maps: upsampling to the tile and Gaussian smoothing.

PaDiM and PatchCore both score a coarse grid of patches (one per backbone feature position),
bring it to tile resolution by bilinear interpolation and smooth it with a Gaussian of sigma 4
pixels, as in their published implementations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.transforms.v2.functional import gaussian_blur


def kernel_size_for(sigma: float, height: int, width: int) -> int:
    """Odd Gaussian kernel size covering +-4 sigma (scipy's default truncation).

    The size is capped at ``2 * min(height, width) - 1``, the largest kernel whose reflect padding
    fits inside the map, so small maps get a truncated kernel instead of an error.
    """
    size = 2 * int(4.0 * sigma + 0.5) + 1
    return max(1, min(size, 2 * min(height, width) - 1))


def gaussian_blur_maps(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Smooth each map of a (B, H, W) batch with a Gaussian of ``sigma`` pixels.

    Args:
        maps: (B, H, W) float maps.
        sigma: standard deviation in pixels; 0 returns ``maps`` unchanged.

    Returns:
        (B, H, W) smoothed maps; borders are reflect-padded.
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0 pixels, got {sigma}; use 0 to disable blurring")
    if sigma == 0:
        return maps
    _, H, W = maps.shape
    size = kernel_size_for(sigma, H, W)
    return gaussian_blur(maps, kernel_size=[size, size], sigma=[sigma, sigma])


def patch_scores_to_maps(
    patch_scores: torch.Tensor, tile_size: tuple[int, int], sigma: float
) -> torch.Tensor:
    """Bilinearly upsample (B, h, w) patch scores to (B, th, tw) and blur them with ``sigma``."""
    maps = F.interpolate(
        patch_scores.unsqueeze(1), size=tile_size, mode="bilinear", align_corners=False
    )  # (B, h, w) -> (B, 1, th, tw)
    return gaussian_blur_maps(maps.squeeze(1), sigma)  # (B, 1, th, tw) -> (B, th, tw)
