"""Image and mask reading: conversions, binarization, and clear errors on bad files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from upath import UPath

from tiled_pipeline.data.errors import ImageReadError
from tiled_pipeline.data.imageio import encode_png, read_image, read_mask, read_size


def _save(path: Path, array: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> Path:
    Image.fromarray(array, mode=mode).save(path, format=fmt)
    return path


@pytest.mark.parametrize("channels", [None, 3, 4])
def test_read_image_returns_rgb_uint8(tmp_path: Path, channels: int | None) -> None:
    shape = (5, 7) if channels is None else (5, 7, channels)
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path = _save(tmp_path / "image.png", pixels)

    image = read_image(str(path))

    assert image.shape == (5, 7, 3)
    assert image.dtype == np.uint8
    expected = pixels if channels is None else pixels[..., 0]
    np.testing.assert_array_equal(image[..., 0], expected)


def test_read_image_from_fsspec_url(tmp_path: Path) -> None:
    pixels = np.full((4, 6, 3), 77, dtype=np.uint8)
    UPath("memory://imageio-test/a.png").write_bytes(encode_png(pixels))

    np.testing.assert_array_equal(read_image("memory://imageio-test/a.png"), pixels)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        (b"definitely not an image", "corrupt, truncated or not an image"),
    ],
)
def test_read_image_bad_file_names_it(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(ImageReadError, match=rf"bad\.png.*{message}"):
        read_image(path)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_read_image_truncated_file_names_it(tmp_path: Path, fmt: str) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = _save(tmp_path / "cut.img", pixels, fmt)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    with pytest.raises(ImageReadError, match=r"cut\.img"):
        read_image(path)
    with pytest.raises(ImageReadError, match=r"cut\.img"):
        read_size(UPath(path))


def test_read_size_reads_header(tmp_path: Path) -> None:
    path = _save(tmp_path / "wide.png", np.zeros((3, 9), dtype=np.uint8))

    assert read_size(UPath(path)) == (3, 9)


def test_read_mask_binarizes_any_positive_value(tmp_path: Path) -> None:
    values = np.array([[0, 1, 128], [255, 0, 3]], dtype=np.uint8)
    path = _save(tmp_path / "mask.png", values)

    mask = read_mask(str(path), size=(2, 3))

    np.testing.assert_array_equal(mask, values > 0)
    assert mask.dtype == np.bool_


def test_read_mask_colour_mask_uses_any_channel(tmp_path: Path) -> None:
    values = np.zeros((2, 2, 3), dtype=np.uint8)
    values[0, 1, 2] = 9
    path = _save(tmp_path / "mask.png", values)

    np.testing.assert_array_equal(read_mask(path), [[False, True], [False, False]])


def test_read_mask_size_mismatch_names_file_and_sizes(tmp_path: Path) -> None:
    path = _save(tmp_path / "small_mask.png", np.zeros((4, 5), dtype=np.uint8))

    with pytest.raises(ImageReadError, match=r"small_mask\.png is 4x5 .* its image is 8x8"):
        read_mask(path, size=(8, 8))


def test_encode_png_palette_round_trip(tmp_path: Path) -> None:
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    palette = np.stack([np.arange(256), 255 - np.arange(256), np.full(256, 7)], 1).astype(np.uint8)
    path = tmp_path / "indexed.png"
    path.write_bytes(encode_png(levels, palette))

    np.testing.assert_array_equal(read_image(path), palette[levels])


def test_encode_png_bool_mask_as_0_255(tmp_path: Path) -> None:
    mask = np.array([[True, False]])
    decoded = np.asarray(Image.open(io.BytesIO(encode_png(mask))))

    np.testing.assert_array_equal(decoded, [[255, 0]])
