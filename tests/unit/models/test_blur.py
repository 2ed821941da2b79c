"""Upsampling and Gaussian smoothing of patch-score maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from tiled_pipeline.models.blur import gaussian_blur_maps, kernel_size_for, patch_scores_to_maps


def test_gaussian_blur_maps_with_sigma_zero_is_identity() -> None:
    maps = torch.rand(2, 9, 7, generator=torch.Generator().manual_seed(0))
    assert gaussian_blur_maps(maps, 0.0) is maps


def test_gaussian_blur_maps_matches_scipy() -> None:
    maps = torch.rand(2, 40, 48, generator=torch.Generator().manual_seed(0))
    blurred = gaussian_blur_maps(maps, 4.0)
    # torchvision's reflect padding is scipy's "mirror"; both truncate the kernel at 4 sigma.
    for got, source in zip(blurred, maps, strict=True):
        expected = gaussian_filter(source.double().numpy(), sigma=4.0, mode="mirror")
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("size", [(3, 3), (8, 5), (64, 64)])
def test_gaussian_blur_maps_keeps_constants_at_any_size(size: tuple[int, int]) -> None:
    maps = torch.full((1, *size), 2.5)
    torch.testing.assert_close(gaussian_blur_maps(maps, 4.0), maps)


def test_kernel_size_for_is_truncated_on_small_maps() -> None:
    assert kernel_size_for(4.0, 64, 64) == 33
    assert kernel_size_for(4.0, 8, 20) == 15


def test_gaussian_blur_maps_rejects_negative_sigma() -> None:
    with pytest.raises(ValueError, match=r"sigma must be >= 0 pixels, got -1\.0"):
        gaussian_blur_maps(torch.zeros(1, 4, 4), -1.0)


def test_patch_scores_to_maps_reaches_the_tile_size() -> None:
    patch_scores = torch.zeros(2, 4, 6)
    patch_scores[:, 1, 4] = 1.0
    maps = patch_scores_to_maps(patch_scores, (32, 48), sigma=1.0)
    assert maps.shape == (2, 32, 48)
    peak = maps[0].flatten().argmax().item()
    assert (peak // 48, peak % 48) in {(r, c) for r in range(10, 14) for c in range(34, 38)}
