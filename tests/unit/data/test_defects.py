"""Synthetic defects: size, exact masks, and the zero-mean-per-block design."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiled_pipeline.data.defects import DEFECT_TYPES, add_defect


@settings(max_examples=30, deadline=None)
@given(
    size=st.integers(64, 320),
    seed=st.integers(0, 2**32 - 1),
    defect=st.sampled_from(DEFECT_TYPES),
)
def test_add_defect_mask_small_nonempty_and_exact(size: int, seed: int, defect: str) -> None:
    texture = np.random.default_rng(seed).random((size, size), dtype=np.float32)
    intensity = texture.copy()

    mask = add_defect(np.random.default_rng(seed), intensity, defect)

    assert mask.shape == (size, size) and mask.dtype == np.bool_
    assert 0 < mask.mean() < 0.01
    assert np.array_equal(intensity != texture, mask & (intensity != texture))
    assert (intensity != texture).mean() > 0.5 * mask.mean()


def test_scratch_has_light_and_dark_edges() -> None:
    intensity = np.zeros((1024, 1024), dtype=np.float32)

    mask = add_defect(np.random.default_rng(0), intensity, "scratch")

    change = intensity[mask]
    assert (change > 0).any() and (change < 0).any()
    assert abs(change.sum()) < 0.2 * np.abs(change).sum()  # the edges roughly cancel


def test_spot_cells_cancel_within_blocks() -> None:
    intensity = np.zeros((1024, 1024), dtype=np.float32)

    mask = add_defect(np.random.default_rng(1), intensity, "spot")

    blocks = intensity.reshape(256, 4, 256, 4).sum(axis=(1, 3))  # (H, W) -> (H/4, W/4)
    assert np.abs(intensity[mask]).min() > 0.04
    assert np.abs(blocks).max() < 0.5 * np.abs(intensity).reshape(256, 4, 256, 4).sum((1, 3)).max()


def test_patch_keeps_block_means_inside_the_patch() -> None:
    texture = np.random.default_rng(2).random((1024, 1024), dtype=np.float32)
    intensity = texture.copy()

    mask = add_defect(np.random.default_rng(2), intensity, "patch")

    inside = mask.reshape(256, 4, 256, 4).all(axis=(1, 3))  # blocks wholly in the patch
    assert inside.any()
    means = intensity.reshape(256, 4, 256, 4).mean(axis=(1, 3))
    original = texture.reshape(256, 4, 256, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(means[inside], original[inside], atol=1e-5)
    assert not np.allclose(intensity[mask], texture[mask])


def test_add_defect_rejects_unknown_type() -> None:
    with pytest.raises(ValueError, match=r"defect_type must be one of .*got 'crack'"):
        add_defect(np.random.default_rng(0), np.zeros((64, 64), np.float32), "crack")
