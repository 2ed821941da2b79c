"""Procedural textures: shape, range, fine structure, and the smooth-noise helper."""

from __future__ import annotations

import numpy as np
import pytest

from tiled_pipeline.data.textures import TEXTURES, palette, quantize, smooth_noise


@pytest.mark.parametrize("name", sorted(TEXTURES))
def test_texture_shape_range_and_fine_structure(name: str) -> None:
    intensity = TEXTURES[name](np.random.default_rng(0), 256)

    assert intensity.shape == (256, 256)
    assert intensity.dtype == np.float32 and intensity.flags.c_contiguous
    assert intensity.min() > -0.1 and intensity.max() < 1.1
    blocks = intensity.reshape(64, 4, 64, 4).mean(axis=(1, 3))  # (H, W) -> (H/4, W/4)
    detail = intensity - np.repeat(np.repeat(blocks, 4, axis=0), 4, axis=1)
    assert detail.std() > 0.02  # structure finer than 4 px, which a 4x shrink averages away


@pytest.mark.parametrize("name", sorted(TEXTURES))
def test_texture_differs_between_generators(name: str) -> None:
    first = TEXTURES[name](np.random.default_rng(0), 128)
    second = TEXTURES[name](np.random.default_rng(1), 128)

    assert not np.allclose(first, second)


def test_smooth_noise_bounded_and_smooth() -> None:
    noise = smooth_noise(np.random.default_rng(0), 200, cells=4, amplitude=0.5)

    assert noise.shape == (200, 200) and noise.dtype == np.float32
    assert np.abs(noise).max() <= 0.5 + 1e-6
    assert np.abs(np.diff(noise, axis=0)).max() < 0.05  # no jumps between neighbours
    assert np.abs(np.diff(noise, axis=1)).max() < 0.05


def test_quantize_and_palette_map_ends_to_colours() -> None:
    levels = quantize(np.array([[-1.0, 0.0, 0.5, 1.0, 2.0]], dtype=np.float32))

    np.testing.assert_array_equal(levels, [[0, 0, 128, 255, 255]])
    colours = palette("wood")
    assert colours.shape == (256, 3) and colours.dtype == np.uint8
    assert (colours[0] < colours[255]).all()
