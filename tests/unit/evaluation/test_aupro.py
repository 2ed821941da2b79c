"""Pixel AUPRO against a brute-force reference written independently of the library."""

from __future__ import annotations

from collections import deque
from itertools import pairwise

import numpy as np
import pytest

from tiled_pipeline.evaluation import MetricUndefinedWarning, PixelScores, pixel_aupro


def _components(mask: np.ndarray, connectivity: int) -> list[list[tuple[int, int]]]:
    """Connected components of a 2-D bool mask by breadth-first search."""
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if connectivity == 8:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    seen = np.zeros_like(mask)
    regions = []
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        seen[start] = True
        queue, region = deque([start]), []
        while queue:
            y, x = queue.popleft()
            region.append((y, x))
            for dy, dx in steps:
                ny, nx = y + dy, x + dx
                inside = 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1]
                if inside and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        regions.append(region)
    return regions


def reference_aupro(
    maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3, connectivity: int = 8
) -> float:
    """One threshold at a time, one image and one region at a time, then trapezoids."""
    regions = [(i, r) for i in range(len(maps)) for r in _components(masks[i], connectivity)]
    n_normal = np.count_nonzero(~masks)
    points = [(0.0, 0.0)]
    for t in sorted(set(maps.ravel().tolist()), reverse=True):
        false_positives = sum(
            np.count_nonzero((m >= t) & ~k) for m, k in zip(maps, masks, strict=True)
        )
        overlaps = [np.mean([maps[i][y, x] >= t for y, x in r]) for i, r in regions]
        points.append((false_positives / n_normal, float(np.mean(overlaps))))
    area = 0.0
    for (x0, y0), (x1, y1) in pairwise(points):
        if x0 >= fpr_limit:
            break
        if x1 > fpr_limit:
            y1 = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
            x1 = fpr_limit
        area += (x1 - x0) * (y0 + y1) / 2
    return area / fpr_limit


def _random_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Tiny maps with many ties, masks of random blobs (single pixels, touching regions)."""
    n, h, w = rng.integers(1, 4), rng.integers(3, 8), rng.integers(3, 8)
    masks = rng.random((n, h, w)) < rng.uniform(0.1, 0.5)
    masks[0, 0, 0], masks[-1, -1, -1] = True, False  # at least one defect and one normal pixel
    levels = rng.integers(2, 12)
    maps = (rng.integers(0, levels, (n, h, w)) + 2 * masks * rng.random()).astype(np.float32)
    return maps, masks


def test_pixel_aupro_matches_bruteforce_on_random_cases() -> None:
    rng = np.random.default_rng(0)
    for case in range(80):
        maps, masks = _random_case(rng)
        limit = (0.05, 0.3, 0.3, 1.0)[case % 4]
        connectivity = (4, 8)[case % 2]
        fast = pixel_aupro(PixelScores.from_maps(maps, masks, connectivity), limit)
        expected = reference_aupro(maps, masks, limit, connectivity)
        assert fast == pytest.approx(expected, abs=1e-9), f"case {case}"


def test_pixel_aupro_single_pixel_regions_count_like_large_ones() -> None:
    masks = np.zeros((1, 20, 20), dtype=bool)
    masks[0, 2:10, 2:10] = True  # 64 pixels, always found first
    masks[0, 15, 15] = True  # 1 pixel, scored below every normal pixel
    maps = np.full((1, 20, 20), 0.5, dtype=np.float32)
    maps[0, 2:10, 2:10] = 1.0
    maps[0, 15, 15] = 0.0
    pixels = PixelScores.from_maps(maps, masks)
    assert pixels.n_regions == 2
    assert pixel_aupro(pixels) == pytest.approx(0.5)  # half of the regions over FPR [0, 0.3]
    assert pixel_aupro(pixels) == pytest.approx(reference_aupro(maps, masks))


def test_pixel_aupro_touching_regions_depend_on_connectivity() -> None:
    masks = np.zeros((1, 6, 6), dtype=bool)
    masks[0, 1, 1] = masks[0, 2, 2] = True  # diagonal neighbours: one region only if 8-connected
    masks[0, 2:4, 4] = True  # a separate region either way
    maps = np.linspace(0, 1, 36, dtype=np.float32).reshape(1, 6, 6)
    maps[0, 2, 2] = 1.5
    for connectivity, n_regions in ((8, 2), (4, 3)):
        pixels = PixelScores.from_maps(maps, masks, connectivity)
        assert pixels.n_regions == n_regions
        expected = reference_aupro(maps, masks, 0.3, connectivity)
        assert pixel_aupro(pixels) == pytest.approx(expected)


def test_pixel_aupro_perfect_separation_is_one() -> None:
    rng = np.random.default_rng(1)
    masks = rng.random((3, 16, 16)) < 0.2
    maps = np.where(masks, 2.0 + rng.random(masks.shape), rng.random(masks.shape))
    assert pixel_aupro(PixelScores.from_maps(maps, masks)) == pytest.approx(1.0)


@pytest.mark.parametrize("limit", [0.3, 1.0])
def test_pixel_aupro_constant_maps_give_half_the_limit(limit: float) -> None:
    masks = np.zeros((2, 8, 8), dtype=bool)
    masks[0, 2:4, 2:4] = True
    maps = np.full(masks.shape, 0.7, dtype=np.float32)
    # One threshold: the curve is the diagonal (0, 0) -> (1, 1), area limit**2 / 2 up to limit.
    assert pixel_aupro(PixelScores.from_maps(maps, masks), limit) == pytest.approx(limit / 2)


def test_pixel_aupro_empty_masks_nan_with_warning() -> None:
    maps = np.random.default_rng(2).random((2, 5, 5))
    pixels = PixelScores.from_maps(maps, np.zeros(maps.shape, dtype=bool))
    with pytest.warns(MetricUndefinedWarning, match="pixel AUPRO undefined .no defect region"):
        assert np.isnan(pixel_aupro(pixels))


def test_pixel_aupro_without_normal_pixels_nan_with_warning() -> None:
    maps = np.random.default_rng(3).random((1, 4, 4))
    pixels = PixelScores.from_maps(maps, np.ones(maps.shape, dtype=bool))
    with pytest.warns(MetricUndefinedWarning, match="no normal pixels"):
        assert np.isnan(pixel_aupro(pixels))


@pytest.mark.parametrize("limit", [0.0, -0.1, 1.5])
def test_pixel_aupro_rejects_limit_outside_unit_interval(limit: float) -> None:
    masks = np.zeros((1, 3, 3), dtype=bool)
    masks[0, 1, 1] = True
    pixels = PixelScores.from_maps(np.zeros((1, 3, 3)), masks)
    with pytest.raises(ValueError, match=r"fpr_limit must be in \(0, 1\]"):
        pixel_aupro(pixels, limit)
