"""Tile grid plans, and tiling / untiling images and maps with them.

A :class:`TilePlan` holds the working image size (H, W), the tile size (th, tw) and the
stride (sh, sw). Tiling and untiling are pure functions of the plan: :func:`untile`
reads nothing left behind by :func:`tile`, so maps predicted in another process merge
with the plan alone.

Tile index ``t = row * Gw + col`` (row-major) everywhere. Tile keys carry the grid,
``g{Gh}x{Gw}r{row}c{col}`` (e.g. ``g3x3r0c1``), so a 2x2 and a 3x3 run never share a
key; :func:`shared_key` (``g3x3all``) names the one model trained on the tiles of all
positions.

Sizes that do not divide evenly:

1. Grid: ``Gh = ceil((H - th) / sh) + 1`` rows (``Gw`` likewise from W, tw, sw). The
   grid covers ``H' = (Gh - 1) * sh + th`` rows, with ``H <= H' < H + sh``.
2. Mode ``"pad"``: images are padded at the bottom and right up to (H', W') by
   reflection (always possible for a valid plan, since the padding is smaller than the
   stride and the stride is no larger than the image; replicate padding is the
   fallback), then tiled. :func:`untile` averages into (H', W') and crops back to
   (H, W): tile then untile returns the input bit for bit.
3. Mode ``"resize"``: images are resized bilinearly (antialias off) to (H', W') before
   tiling and :func:`untile` resizes the merged map back to (H, W). The round trip is
   approximate, and exact when the sizes divide (then H' = H, W' = W and nothing is
   resized).

Overlap: a pixel covered by k tiles gets the mean of its k tile values, computed as a
reference value plus the mean deviation from it, so k equal values give that value back
bit for bit. With ``stride == tile_size`` tiles do not overlap and every pixel has
exactly one tile.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from numbers import Integral
from typing import Literal, get_args

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

TileMode = Literal["pad", "resize"]
_MODES: tuple[str, ...] = get_args(TileMode)
_KEY_PATTERN = re.compile(r"g(\d+)x(\d+)r(\d+)c(\d+)")


def _pair(name: str, value: object) -> tuple[int, int]:
    """Return ``value`` (an int, or a pair of ints) as a positive (height, width) tuple."""
    if isinstance(value, Integral) and not isinstance(value, bool):
        value = (value, value)
    is_pair = isinstance(value, tuple | list) and len(value) == 2
    if not is_pair or not all(isinstance(v, Integral) and not isinstance(v, bool) for v in value):
        raise TypeError(f"{name} must be an int or a (height, width) pair of ints, got {value!r}")
    pair = (int(value[0]), int(value[1]))
    if min(pair) < 1:
        raise ValueError(f"{name} must be at least 1 pixel in both dimensions, got {pair}")
    return pair


@dataclass(frozen=True)
class TilePlan:
    """Where each tile of an (H, W) working image lies, and how uneven sizes are covered.

    Every plan is valid: the fields are checked (and ints expanded to square pairs) on
    construction. :func:`make_plan` is the usual way to build one.

    Attributes:
        image_size: (H, W) of the working image, pixels.
        tile_size: (th, tw) pixels, no larger than the image.
        stride: (sh, sw) pixels between tile top-left corners, ``1 <= stride <= tile_size``;
            equal to the tile size for no overlap.
        mode: how a grid that overshoots the image is filled, "pad" or "resize" (see the module
            docstring).
    """

    image_size: tuple[int, int]
    tile_size: tuple[int, int]
    stride: tuple[int, int]
    mode: TileMode = "pad"

    def __post_init__(self) -> None:
        for name in ("image_size", "tile_size", "stride"):
            object.__setattr__(self, name, _pair(name, getattr(self, name)))
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {self.mode!r}")
        if any(s > t for s, t in zip(self.stride, self.tile_size, strict=True)):
            raise ValueError(
                f"stride={self.stride} exceeds tile_size={self.tile_size}, which would leave "
                "gaps between tiles; use a stride <= the tile size (equal for no overlap)"
            )
        if any(t > i for t, i in zip(self.tile_size, self.image_size, strict=True)):
            raise ValueError(
                f"tile_size={self.tile_size} exceeds image_size={self.image_size}; use a tile "
                "no larger than the image, or a larger working image"
            )

    @property
    def grid(self) -> tuple[int, int]:
        """(Gh, Gw): tile rows and columns, ``ceil((H - th) / sh) + 1`` and likewise for W."""
        (H, W), (th, tw), (sh, sw) = self.image_size, self.tile_size, self.stride
        return -(-(H - th) // sh) + 1, -(-(W - tw) // sw) + 1

    @property
    def n_tiles(self) -> int:
        """T = Gh * Gw."""
        Gh, Gw = self.grid
        return Gh * Gw

    @property
    def covered_size(self) -> tuple[int, int]:
        """(H', W') the grid covers: ``(Gh - 1) * sh + th`` and likewise; never below (H, W)."""
        (Gh, Gw), (th, tw), (sh, sw) = self.grid, self.tile_size, self.stride
        return (Gh - 1) * sh + th, (Gw - 1) * sw + tw

    @property
    def offsets(self) -> tuple[tuple[int, int], ...]:
        """(y, x) top-left corner of each tile in (H', W') coordinates, row-major."""
        (Gh, Gw), (sh, sw) = self.grid, self.stride
        return tuple((r * sh, c * sw) for r in range(Gh) for c in range(Gw))

    @property
    def keys(self) -> tuple[str, ...]:
        """Tile keys in tile-index order."""
        Gh, Gw = self.grid
        return tuple(self.key(r, c) for r in range(Gh) for c in range(Gw))

    def key(self, row: int, col: int) -> str:
        """Key of the tile at (row, col), e.g. ``g3x3r0c1``.

        Raises:
            ValueError: row or col outside the grid.
        """
        Gh, Gw = self.grid
        if not (0 <= row < Gh and 0 <= col < Gw):
            raise ValueError(
                f"(row, col)=({row}, {col}) is outside the {Gh}x{Gw} grid; "
                f"use 0 <= row < {Gh} and 0 <= col < {Gw}"
            )
        return f"g{Gh}x{Gw}r{row}c{col}"

    def position(self, key: str) -> tuple[int, int]:
        """(row, col) of a tile key of this plan's grid; the inverse of :meth:`key`.

        Raises:
            ValueError: the key is malformed, belongs to another grid, or lies outside this one.
        """
        match = _KEY_PATTERN.fullmatch(key) if isinstance(key, str) else None
        if match is None:
            raise ValueError(f"key {key!r} is not a tile key like 'g3x3r0c1'")
        Gh, Gw, row, col = (int(group) for group in match.groups())
        if (Gh, Gw) != self.grid:
            raise ValueError(
                f"key {key!r} belongs to a {Gh}x{Gw} grid, not this plan's "
                f"{self.grid[0]}x{self.grid[1]} grid; use a key from plan.keys"
            )
        self.key(row, col)  # raises when the position lies outside the grid
        return row, col

    def index(self, key: str) -> int:
        """Tile index ``t = row * Gw + col`` of a tile key (see :meth:`position`)."""
        row, col = self.position(key)
        return row * self.grid[1] + col


def make_plan(
    image_size: int | tuple[int, int],
    tile_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    mode: TileMode = "pad",
) -> TilePlan:
    """Build and validate a tile plan; ints stand for square sizes.

    Args:
        image_size: (H, W) of the working image, pixels.
        tile_size: (th, tw), pixels.
        stride: (sh, sw), pixels; None means the tile size (no overlap).
        mode: "pad" or "resize", how sizes that do not divide are handled.

    Raises:
        TypeError: a size that is not an int or pair of ints.
        ValueError: a size below 1, a stride larger than the tile (gaps), a tile larger than
            the image, or an unknown mode.
    """
    plan = TilePlan(image_size, tile_size, tile_size if stride is None else stride, mode)
    if plan.covered_size != plan.image_size:
        logger.debug(
            "Grid %dx%d covers %s, not the image's %s; %s mode fills the difference",
            *plan.grid,
            plan.covered_size,
            plan.image_size,
            plan.mode,
        )
    return plan


def shared_key(plan: TilePlan) -> str:
    """The one tile key, ``g{Gh}x{Gw}all``, of a model trained on the tiles of all positions."""
    Gh, Gw = plan.grid
    return f"g{Gh}x{Gw}all"


def _check_images(images: torch.Tensor, plan: TilePlan) -> None:
    """Raise unless ``images`` is a (B, C, H, W) tensor at the plan's image size."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(
            f"images must have shape (B, C, H, W), got {tuple(images.shape)}; "
            "add the missing batch or channel axis with unsqueeze"
        )
    if tuple(images.shape[-2:]) != plan.image_size:
        raise ValueError(
            f"images are {tuple(images.shape[-2:])} (H, W) but the plan is for "
            f"{plan.image_size}; resize the images or build the plan for their size"
        )
    if plan.mode == "resize" and not images.is_floating_point():
        raise TypeError(
            f"mode 'resize' interpolates and needs floating-point images, got {images.dtype}; "
            "convert with images.float() or use mode 'pad'"
        )


def _pad(images: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H + pad_h, W + pad_w), reflected at the bottom and right."""
    if images.dtype == torch.bool:  # torch has no bool padding kernels
        return _pad(images.to(torch.uint8), pad_h, pad_w).bool()
    H, W = images.shape[-2:]
    mode = "reflect" if pad_h < H and pad_w < W else "replicate"
    return F.pad(images, (0, pad_w, 0, pad_h), mode=mode)


def _cover(images: torch.Tensor, plan: TilePlan) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H', W'), padded or resized by the plan's mode."""
    (H, W), (Hc, Wc) = plan.image_size, plan.covered_size
    if (Hc, Wc) == (H, W):
        return images
    if plan.mode == "resize":
        return F.interpolate(
            images, size=(Hc, Wc), mode="bilinear", align_corners=False, antialias=False
        )
    return _pad(images, Hc - H, Wc - W)


def tile(images: torch.Tensor, plan: TilePlan) -> torch.Tensor:
    """Cut images into the plan's tiles.

    Args:
        images: (B, C, H, W) at ``plan.image_size``; any dtype in "pad" mode, floating point in
            "resize" mode; any device.

    Returns:
        (B, T, C, th, tw) tiles in row-major tile order, same dtype and device. It may share
        memory with ``images`` (single-tile plan); clone it before writing in place.
    """
    _check_images(images, plan)
    B, C = images.shape[:2]
    (th, tw), (sh, sw) = plan.tile_size, plan.stride
    covered = _cover(images, plan)  # (B, C, H', W')
    windows = covered.unfold(2, th, sh).unfold(3, tw, sw)  # -> (B, C, Gh, Gw, th, tw)
    windows = windows.permute(0, 2, 3, 1, 4, 5)  # -> (B, Gh, Gw, C, th, tw)
    return windows.reshape(B, plan.n_tiles, C, th, tw)  # -> (B, T, C, th, tw)


def tile_at(images: torch.Tensor, plan: TilePlan, index: int) -> torch.Tensor:
    """Cut one tile, equal to ``tile(images, plan)[:, index]`` without cutting the others.

    Args:
        images: (B, C, H, W), as for :func:`tile`.
        index: tile index t in [0, T), e.g. ``plan.index(key)``.

    Returns:
        (B, C, th, tw), possibly a view of ``images``.
    """
    _check_images(images, plan)
    if isinstance(index, bool) or not isinstance(index, Integral) or not 0 <= index < plan.n_tiles:
        raise ValueError(f"index must be an int in [0, {plan.n_tiles}), got {index!r}")
    (y, x), (th, tw) = plan.offsets[index], plan.tile_size
    H, W = plan.image_size
    inside = y + th <= H and x + tw <= W
    source = images if plan.mode == "pad" and inside else _cover(images, plan)
    return source[:, :, y : y + th, x : x + tw]  # (B, C, H', W') -> (B, C, th, tw)


def _coverage_1d(length: int, tile: int, stride: int, n: int, device: torch.device) -> torch.Tensor:
    """(length,) int64 count of the n tiles (at multiples of stride) covering each position."""
    position = torch.arange(length, device=device)[:, None]  # (length, 1)
    start = torch.arange(n, device=device) * stride  # (n,)
    return ((position >= start) & (position < start + tile)).sum(dim=1)  # (length, n) -> (length,)


def _covered_coverage(plan: TilePlan, device: torch.device) -> torch.Tensor:
    """(H', W') int64 number of tiles covering each pixel of the covered area."""
    (Hc, Wc), (Gh, Gw) = plan.covered_size, plan.grid
    (th, tw), (sh, sw) = plan.tile_size, plan.stride
    rows = _coverage_1d(Hc, th, sh, Gh, device)  # (H',)
    cols = _coverage_1d(Wc, tw, sw, Gw, device)  # (W',)
    return rows[:, None] * cols[None, :]  # (H', W')


def coverage(plan: TilePlan, device: torch.device | str | None = None) -> torch.Tensor:
    """(H, W) int64: how many tiles cover each pixel of the working image, at least 1.

    In "resize" mode the counts of the covered area are mapped back by nearest neighbour.
    """
    counts = _covered_coverage(plan, torch.device(device or "cpu"))  # (H', W')
    H, W = plan.image_size
    if plan.mode == "pad" or counts.shape == (H, W):
        return counts[:H, :W]
    counts = counts[None, None].float()  # (H', W') -> (1, 1, H', W')
    counts = F.interpolate(counts, size=(H, W), mode="nearest-exact")  # -> (1, 1, H, W)
    return counts[0, 0].long()  # -> (H, W)


def _check_tiles(tiles: torch.Tensor, plan: TilePlan) -> None:
    """Raise unless ``tiles`` is a floating (B, T, C, th, tw) tensor matching the plan."""
    if not isinstance(tiles, torch.Tensor):
        raise TypeError(f"tiles must be a torch.Tensor, got {type(tiles).__name__}")
    expected = (plan.n_tiles, *plan.tile_size)
    if tiles.dim() != 5 or (tiles.shape[1], *tiles.shape[3:]) != expected:
        raise ValueError(
            f"tiles must have shape (B, T, C, th, tw) with (T, th, tw)={expected} for this "
            f"plan, got {tuple(tiles.shape)}; untile with the plan the tiles were cut with"
        )
    if not tiles.is_floating_point():
        raise TypeError(
            f"tiles must be floating point to be averaged, got {tiles.dtype}; "
            "convert with tiles.float()"
        )


def _merge(tiles: torch.Tensor, plan: TilePlan) -> torch.Tensor:
    """(B, T, C, th, tw) -> (B, C, H', W'), the mean of the tiles covering each pixel."""
    B, T, C, th, tw = tiles.shape
    Hc, Wc = plan.covered_size

    # reference value per pixel: the last tile covering it (stride <= tile leaves no pixel empty)
    reference = tiles.new_empty(B, C, Hc, Wc)
    for t, (y, x) in enumerate(plan.offsets):
        reference[:, :, y : y + th, x : x + tw] = tiles[:, t]

    # mean = reference + mean deviation from it; equal values deviate by exactly zero
    kernel = {"kernel_size": (th, tw), "stride": plan.stride}
    columns = tiles.permute(0, 2, 3, 4, 1).reshape(B, C * th * tw, T)  # -> (B, C*th*tw, T)
    deviation = columns - F.unfold(reference, **kernel)  # (B, C*th*tw, T)
    summed = F.fold(deviation, output_size=(Hc, Wc), **kernel)  # -> (B, C, H', W')
    counts = _covered_coverage(plan, tiles.device).to(tiles.dtype)  # (H', W')
    return reference + summed / counts


def untile(tiles: torch.Tensor, plan: TilePlan) -> torch.Tensor:
    """Merge tiles back into images, averaging where tiles overlap.

    Args:
        tiles: (B, T, C, th, tw) floating point, in the plan's row-major tile order; any device.

    Returns:
        (B, C, H, W) at ``plan.image_size``, same dtype and device. "pad" mode crops the merged
        (H', W') area; "resize" mode resizes it back (bilinear, antialias off).
    """
    _check_tiles(tiles, plan)
    merged = _merge(tiles, plan)  # (B, C, H', W')
    H, W = plan.image_size
    if plan.mode == "resize" and plan.covered_size != (H, W):
        return F.interpolate(
            merged, size=(H, W), mode="bilinear", align_corners=False, antialias=False
        )
    return merged[:, :, :H, :W]  # (B, C, H', W') -> (B, C, H, W)
