"""Small synthetic defects drawn into a texture's intensity map, each with its exact mask.

Sizes are given for a 1024x1024 image and scaled with ``size / 1024``. At 1024 a defect covers
about 0.015-0.15 % of the image: scratches 120-300 px long and 2-3 px wide, pitted spots of
7-16 px radius, foreign patches of 16-40 px side.

Each defect is a fine pattern that averages to about zero over blocks of ``size / 256`` pixels
(4x4 at 1024): a light edge beside a dark edge, checkered light and dark cells, or replaced fine
detail over unchanged block averages. It is plain at 1024 and still visible at 512 (where a block
is 2x2 pixels), and mostly averages away when the image is shrunk to 256, which is what makes a
high working resolution pay off.

The mask is exactly the set of pixels the defect changed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DEFECT_TYPES = ("scratch", "spot", "patch")
Defect = Callable[[np.random.Generator, np.ndarray], np.ndarray]


def add_defect(rng: np.random.Generator, intensity: np.ndarray, defect_type: str) -> np.ndarray:
    """Draw one defect of ``defect_type`` into ``intensity`` (modified in place).

    Args:
        rng: Random generator for position, size, shape and contrast.
        intensity: (H, W) float32 texture, H == W >= 64.
        defect_type: One of ``DEFECT_TYPES``.

    Returns:
        (H, W) bool mask of the changed pixels; never empty.
    """
    if defect_type not in _DEFECTS:
        raise ValueError(f"defect_type must be one of {DEFECT_TYPES}, got {defect_type!r}")
    return _DEFECTS[defect_type](rng, intensity)


def scratch(rng: np.random.Generator, intensity: np.ndarray) -> np.ndarray:
    """A groove along a slightly bent curve: a light edge on one side, a dark edge on the other."""
    size = intensity.shape[0]
    length = rng.uniform(120.0, 300.0) * size / 1024
    half_width = max(rng.uniform(1.0, 1.5) * size / 1024, 0.6)
    angle = rng.uniform(0.0, np.pi)
    direction = np.array([np.sin(angle), np.cos(angle)])  # (row, col)
    normal = np.array([direction[1], -direction[0]])
    center = rng.uniform(length / 2 + 3, size - 4 - length / 2, size=2)
    ends = center + np.outer([-0.5, 0.5], direction) * length  # (2, 2)
    control = center + normal * rng.uniform(-0.15, 0.15) * length
    t = np.linspace(0.0, 1.0, int(np.ceil(4 * length)) + 1)[:, None]  # (n, 1), 0.25 px steps
    points = (1 - t) ** 2 * ends[0] + 2 * (1 - t) * t * control + t**2 * ends[1]  # (n, 2)
    tangents = 2 * (1 - t) * (control - ends[0]) + 2 * t * (ends[1] - control)  # (n, 2)
    side = _stamp_sides(points, tangents, half_width, intensity.shape)
    intensity += _contrast(rng, 0.12, 0.2) * side
    return side != 0


def spot(rng: np.random.Generator, intensity: np.ndarray) -> np.ndarray:
    """Pitting: an elliptic cluster of light and dark cells, strongest at its centre."""
    size = intensity.shape[0]
    block = _block(size)
    radii = np.maximum(rng.uniform(7.0, 16.0, size=2) * size / 1024, 1.5)
    window, level = _shape_window(rng, size, radii, power=2, align=block)
    mask = level <= 1.0
    cells = _checker(rng, level.shape[0], block)
    intensity[window][mask] += (_contrast(rng, 0.12, 0.2) * cells * (1.0 - 0.5 * level))[mask]
    return _full_mask(intensity.shape, window, mask)


def patch(rng: np.random.Generator, intensity: np.ndarray) -> np.ndarray:
    """Foreign micro-texture in a rounded rectangle: block averages kept, fine detail replaced.

    The detail (pixel minus its block average) comes from texture elsewhere in the image, turned
    by 90 degrees and amplified.
    """
    size = intensity.shape[0]
    block = _block(size)
    half_sides = np.maximum(rng.uniform(8.0, 20.0, size=2) * size / 1024, 1.5)
    window, level = _shape_window(rng, size, half_sides, power=4, align=block)
    mask = level <= 1.0
    side = level.shape[0]
    row, col = rng.integers(0, (size - side) // block, size=2) * block
    source = intensity[row : row + side, col : col + side].T  # turned by 90 degrees
    target = intensity[window]
    foreign = _block_mean(target, block) + rng.uniform(1.5, 1.9) * (
        source - _block_mean(source, block)
    )
    target[mask] = foreign[mask]
    return _full_mask(intensity.shape, window, mask)


_DEFECTS: dict[str, Defect] = {"scratch": scratch, "spot": spot, "patch": patch}


def _block(size: int) -> int:
    """Pixels per side of the block that one pixel of a 256-pixel view averages (>= 2)."""
    return max(2, round(size / 256))


def _contrast(rng: np.random.Generator, low: float, high: float) -> float:
    """A random magnitude in [low, high) with a random sign."""
    return float(rng.choice([-1.0, 1.0]) * rng.uniform(low, high))


def _stamp_sides(
    points: np.ndarray, tangents: np.ndarray, half_width: float, shape: tuple[int, int]
) -> np.ndarray:
    """Mark the pixels within ``half_width`` of a curve, +1 left of it and -1 right of it.

    Args:
        points: (n, 2) sub-pixel (row, col) positions along the curve, spaced well under a pixel.
        tangents: (n, 2) curve directions at ``points`` (any length).
        half_width: Width of each side in pixels.
        shape: (H, W) of the output.

    Returns:
        (H, W) float32 map: +1, -1, or 0 away from the curve.
    """
    reach = int(np.ceil(half_width))
    offsets = np.arange(-reach, reach + 1)
    d_row, d_col = (a.reshape(1, -1) for a in np.meshgrid(offsets, offsets, indexing="ij"))
    rows = np.rint(points[:, :1]).astype(np.int64) + d_row  # (n, 1) + (1, k) -> (n, k)
    cols = np.rint(points[:, 1:]).astype(np.int64) + d_col  # (n, 1) + (1, k) -> (n, k)
    near = (rows - points[:, :1]) ** 2 + (cols - points[:, 1:]) ** 2 <= half_width**2
    cross = tangents[:, :1] * (cols - points[:, 1:]) - tangents[:, 1:] * (rows - points[:, :1])
    sides = np.zeros(shape, dtype=np.float32)
    sides[rows[near], cols[near]] = np.where(cross[near] >= 0, 1.0, -1.0)
    return sides


def _checker(rng: np.random.Generator, side: int, block: int) -> np.ndarray:
    """(side, side) map of +-1 cells of ``block // 2`` pixels; each block sums to zero.

    Every block holds a 2x2 checkerboard of cells whose phase is drawn per block.
    """
    cell = block // 2
    index = np.arange(side) // cell
    checker = np.where((index[:, None] + index[None, :]) % 2 == 0, 1.0, -1.0)  # (side, side)
    n_blocks = side // block
    flips = rng.choice([-1.0, 1.0], size=(n_blocks, n_blocks))
    flips = np.repeat(np.repeat(flips, block, axis=0), block, axis=1)  # -> (side, side)
    return (checker * flips).astype(np.float32)


def _block_mean(values: np.ndarray, block: int) -> np.ndarray:
    """Each pixel replaced by the mean of its ``block`` x ``block`` block; sides divisible."""
    side = values.shape[0]
    n = side // block
    means = values.reshape(n, block, n, block).mean(axis=(1, 3))  # (side, side) -> (n, n)
    return np.repeat(np.repeat(means, block, axis=0), block, axis=1)  # (n, n) -> (side, side)


def _shape_window(
    rng: np.random.Generator, size: int, half_axes: np.ndarray, power: int, align: int
) -> tuple[tuple[slice, slice], np.ndarray]:
    """A square window at a random place and the shape's level function inside it.

    The level ``|u / a| ** power + |v / b| ** power`` (randomly rotated axes u, v) is <= 1
    inside the shape: an ellipse for power 2, a rounded rectangle for power 4. The window's
    corner and side are multiples of ``align``, so it is made of whole blocks.

    Returns:
        ``(rows, cols)`` slices of the window and its (side, side) level map.
    """
    n_blocks = int(np.ceil((2 * half_axes.max() + 3) / align))
    side = n_blocks * align
    corner = rng.integers(1, (size - side) // align, size=2) * align
    offsets = np.arange(side) - (side - 1) / 2
    d_row, d_col = offsets[:, None], offsets[None, :]  # (side, 1), (1, side)
    angle = rng.uniform(0.0, np.pi)
    u = d_row * np.cos(angle) + d_col * np.sin(angle)  # (side, side)
    v = d_col * np.cos(angle) - d_row * np.sin(angle)  # (side, side)
    level = np.abs(u / half_axes[0]) ** power + np.abs(v / half_axes[1]) ** power
    window = (slice(corner[0], corner[0] + side), slice(corner[1], corner[1] + side))
    return window, level


def _full_mask(
    shape: tuple[int, int], window: tuple[slice, slice], local: np.ndarray
) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[window] = local
    return mask
