"""Tile maps of all positions -> one map per image: overlap mean, then seam smoothing."""

from __future__ import annotations

import numpy as np
import torch

from tiled_pipeline.seams import smooth_seams
from tiled_pipeline.tiling import TilePlan, untile


def merge_maps(
    tile_maps: np.ndarray, plan: TilePlan, seam_band: float | None, seam_sigma: float
) -> np.ndarray:
    """Merge the maps of every tile position into full maps.

    Args:
        tile_maps: (N, T, th, tw) maps of all T positions, in the plan's row-major order.
        plan: the tile plan the crops were cut with.
        seam_band: band width as a fraction of the tile size; None or 0 disables smoothing.
        seam_sigma: Gaussian sigma of the seam blur in pixels.

    Returns:
        (N, H, W) float32 maps at the plan's image size; overlapping pixels hold the mean of
        the tiles covering them.
    """
    _, T, th, tw = tile_maps.shape
    if T != plan.n_tiles or (th, tw) != plan.tile_size:
        raise ValueError(
            f"tile maps of shape {tile_maps.shape} do not fit the plan "
            f"({plan.n_tiles} tiles of {plan.tile_size})"
        )
    tiles = torch.from_numpy(tile_maps.astype(np.float32))[:, :, None]  # -> (N, T, 1, th, tw)
    merged = untile(tiles, plan)[:, 0]  # (N, 1, H, W) -> (N, H, W)
    if seam_band:
        merged = smooth_seams(merged, plan, band=seam_band, sigma=seam_sigma)
    return merged.numpy()


def merge_votes(tile_decisions: np.ndarray, plan: TilePlan) -> np.ndarray:
    """(N, T, th, tw) bool tile decisions -> (N, H, W) bool: mean of the votes >= 0.5."""
    votes = merge_maps(tile_decisions.astype(np.float32), plan, seam_band=None, seam_sigma=0.0)
    return votes >= 0.5
