"""Seam smoothing of merged anomaly maps: blur a band around every tile seam.

A seam is a tile edge line that lies strictly inside the working image: with zero
overlap the tile boundaries, with overlap every tile's inner edges (the top and bottom
edge of each tile row, the left and right edge of each tile column). Edges that fall on
the image border, or in the padding of a "pad" plan, are not seams. In "resize" mode the
edges are scaled from the covered size (H', W') back to (H, W), and so is the tile size
used for the band width.

The band of a horizontal seam holds every pixel row that overlaps the lines within
``band * th / 2`` of it (vertical seams use tw), so the band is ``band * th`` wide (10%
of the tile by default) and holds at least the two pixel rows touching the seam whenever
``band > 0``. Horizontal seams run the full image width, vertical ones the full height.
"""

from __future__ import annotations

import math

import torch
from torchvision.transforms.functional import gaussian_blur

from tiled_pipeline.tiling import TilePlan


def _check_number(name: str, value: float, upper: float, meaning: str) -> None:
    """Raise unless ``value`` is a finite number in [0, upper]; ``meaning`` says what it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a float ({meaning}), got {type(value).__name__}")
    if not (0 <= value <= upper and math.isfinite(value)):
        raise ValueError(f"{name} must be {meaning}, in [0, {upper}], got {value}")


def _scale(plan: TilePlan, axis: int) -> float:
    """Working-image pixels per covered-area pixel along one axis (1 unless resized)."""
    if plan.mode == "resize":
        return plan.image_size[axis] / plan.covered_size[axis]
    return 1.0


def _seam_lines(plan: TilePlan, axis: int) -> list[float]:
    """Seam positions along one axis (0: rows, 1: columns), in working-image pixels."""
    size, scale = plan.image_size[axis], _scale(plan, axis)
    tile, stride, n = plan.tile_size[axis], plan.stride[axis], plan.grid[axis]
    edges = {r * stride + d for r in range(n) for d in (0, tile)}
    return sorted(edge * scale for edge in edges if 0 < edge * scale < size)


def _band_1d(plan: TilePlan, axis: int, band: float) -> torch.Tensor:
    """(L,) bool: pixels along one axis whose extent [i, i + 1) overlaps a seam's band."""
    size = plan.image_size[axis]
    lines = torch.tensor(_seam_lines(plan, axis), dtype=torch.float64)  # (E,)
    if band == 0 or lines.numel() == 0:
        return torch.zeros(size, dtype=torch.bool)
    half = band * plan.tile_size[axis] * _scale(plan, axis) / 2
    start = torch.arange(size, dtype=torch.float64)[:, None]  # (L, 1)
    near = (start < lines + half) & (start + 1 > lines - half)  # (L, E)
    return near.any(dim=1)  # (L, E) -> (L,)


def seam_band(
    plan: TilePlan, band: float = 0.1, device: torch.device | str | None = None
) -> torch.Tensor:
    """(H, W) bool mask of the pixels within the band around the plan's tile seams.

    Args:
        plan: the tile plan the map was merged with.
        band: total band width as a fraction of the tile size, in [0, 1]; 0 gives an empty mask.
        device: where the mask lives, CPU by default.

    Returns:
        All False for a single-tile plan (no seams) or ``band == 0``.
    """
    _check_number("band", band, 1.0, "a fraction of the tile size")
    rows = _band_1d(plan, 0, band)  # (H,)
    cols = _band_1d(plan, 1, band)  # (W,)
    return (rows[:, None] | cols[None, :]).to(device)  # -> (H, W)


def _check_maps(maps: torch.Tensor, plan: TilePlan) -> None:
    """Raise unless ``maps`` is a floating (B, H, W) or (B, 1, H, W) tensor at the plan size."""
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"maps must be a torch.Tensor, got {type(maps).__name__}")
    shape = tuple(maps.shape)
    single_channel = maps.dim() == 3 or (maps.dim() == 4 and shape[1] == 1)
    if not single_channel or shape[-2:] != plan.image_size:
        H, W = plan.image_size
        raise ValueError(
            f"maps must have shape (B, {H}, {W}) or (B, 1, {H}, {W}) for this plan, got "
            f"{shape}; smooth merged maps at the plan's image size"
        )
    if not maps.is_floating_point():
        raise TypeError(f"maps must be floating point, got {maps.dtype}; use maps.float()")


def smooth_seams(
    maps: torch.Tensor, plan: TilePlan, band: float = 0.1, sigma: float = 2.0
) -> torch.Tensor:
    """Gaussian-blur the merged maps and keep the blur only inside the seam band.

    The blur uses reflect padding and a kernel of ``2 * ceil(4 * sigma) + 1`` pixels, shrunk so
    that its radius stays below the image size. Pixels outside the band are returned bit for bit.

    Args:
        maps: (B, H, W) or (B, 1, H, W) floating point merged maps; any device.
        plan: the tile plan the maps were merged with.
        band: total band width as a fraction of the tile size, in [0, 1].
        sigma: Gaussian standard deviation in pixels, >= 0.

    Returns:
        Maps of the same shape, dtype and device; an unchanged copy when ``band == 0``,
        ``sigma == 0`` or the plan has a single tile.
    """
    _check_maps(maps, plan)
    _check_number("sigma", sigma, math.inf, "a Gaussian standard deviation in pixels")
    mask = seam_band(plan, band, device=maps.device)  # (H, W)
    if sigma == 0 or not bool(mask.any()):
        return maps.clone()
    radius = min(math.ceil(4 * sigma), min(plan.image_size) - 1)
    images = maps.reshape(maps.shape[0], 1, *plan.image_size)  # (B, [1,] H, W) -> (B, 1, H, W)
    blurred = gaussian_blur(images, kernel_size=[2 * radius + 1] * 2, sigma=[sigma, sigma])
    blurred = blurred.reshape(maps.shape)  # (B, 1, H, W) -> (B, [1,] H, W)
    return torch.where(mask, blurred, maps)
