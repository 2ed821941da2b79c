"""Read images and masks from any ``UPath`` location, check headers, write PNG files.

Images come back as (H, W, 3) uint8 RGB arrays, masks as (H, W) bool arrays. Every failure to
decode a file raises ``ImageReadError`` naming the file, so a bad file in a dataset of thousands
is found at once.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, UnidentifiedImageError
from upath import UPath

from tiled_pipeline.data.errors import ImageReadError
from tiled_pipeline.data.paths import as_upath

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# Bytes read from the end of a file to find its end marker (PNG IEND chunk, JPEG EOI marker).
_TAIL_BYTES = 1024
_HEADER_BLOCK = 1 << 16
# PNG compression level 1: noisy high-resolution textures barely compress better at level 6 but
# encode about twice as slowly.
_PNG_LEVEL = 1


def is_image_name(name: str) -> bool:
    """Whether a file name has one of the image suffixes (case-insensitive)."""
    return name.lower().endswith(IMAGE_SUFFIXES)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file as RGB.

    Args:
        path: Local path, fsspec URL or ``UPath`` (keeps its storage options).

    Returns:
        (H, W, 3) uint8 array. Grayscale, palette and RGBA files are converted to RGB.

    Raises:
        ImageReadError: the file is missing, not an image, or truncated.
    """
    image = _decode(path)
    return np.asarray(image.convert("RGB"))


def read_mask(path: str | os.PathLike[str], size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a ground-truth mask and binarize it (any value > 0 is anomalous).

    Args:
        path: Local path, fsspec URL or ``UPath``.
        size: Expected (H, W) in pixels, usually the size of the mask's image; ``None`` skips the
            check.

    Returns:
        (H, W) bool array. A colour mask is anomalous where any channel is > 0.

    Raises:
        ImageReadError: the file cannot be decoded or its size differs from ``size``.
    """
    image = _decode(path)
    if image.mode not in ("1", "L", "I", "I;16", "F", "RGB", "RGBA"):
        image = image.convert("L")
    mask = np.asarray(image) > 0
    if mask.ndim == 3:
        mask = mask.any(axis=-1)  # (H, W, C) -> (H, W)
    if size is not None and mask.shape != tuple(size):
        raise ImageReadError(
            f"mask {path} is {mask.shape[0]}x{mask.shape[1]} (HxW) but its image is "
            f"{size[0]}x{size[1]}; a mask must have its image's size, replace the mask file"
        )
    return mask


def read_size(path: UPath) -> tuple[int, int]:
    """Read (H, W) from the file header and check that the file is not cut short.

    Only the header and the last kilobyte are read, so this is cheap even on object stores. The
    end check covers PNG (IEND chunk) and JPEG (EOI marker); other formats get the header check.

    Raises:
        ImageReadError: missing file, unknown format, or a PNG/JPEG without its end marker.
    """
    try:
        with path.open("rb", block_size=_HEADER_BLOCK) as stream:
            with Image.open(stream) as image:
                size, kind = (image.height, image.width), image.format
            stream.seek(0, os.SEEK_END)
            stream.seek(max(stream.tell() - _TAIL_BYTES, 0))
            tail = stream.read()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise _read_error(path, error) from error
    if not _has_end_marker(kind, tail):
        raise ImageReadError(
            f"image {path} is truncated: its {kind} end marker is missing; "
            "replace the file with a complete copy"
        )
    return size


def encode_png(array: np.ndarray, palette: np.ndarray | None = None) -> bytes:
    """Encode an image as PNG.

    Args:
        array: (H, W) or (H, W, 3) uint8 pixels; a bool mask is written as 0/255.
        palette: Optional (256, 3) uint8 RGB colours; ``array`` (H, W) then holds indices into it
            and the file is an indexed-colour PNG (a third of the RGB size, faster to encode),
            read back as RGB by ``read_image``.
    """
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    image = Image.fromarray(array)
    if palette is not None:
        image = Image.fromarray(array, mode="P")
        image.putpalette(palette.astype(np.uint8).tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=_PNG_LEVEL)
    return buffer.getvalue()


def _decode(path: str | os.PathLike[str]) -> Image.Image:
    """Read the whole file and decode it fully, so truncation shows up here and not later."""
    upath = as_upath(path)
    try:
        image = Image.open(io.BytesIO(upath.read_bytes()))
        image.load()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise _read_error(path, error) from error
    return image


def _read_error(path: object, error: Exception) -> ImageReadError:
    if isinstance(error, FileNotFoundError):
        reason = "file not found; check the path or re-materialize the category"
    else:
        reason = f"{error}; the file is corrupt, truncated or not an image, replace it"
    return ImageReadError(f"cannot read image {path}: {reason}")


def _has_end_marker(kind: str | None, tail: bytes) -> bool:
    if kind == "PNG":
        return tail.endswith(b"IEND\xaeB`\x82")
    if kind == "JPEG":
        # 0xFFD9 cannot occur inside entropy-coded data (0xFF is byte-stuffed there), so finding
        # it near the end means the scan data was not cut short; trailing bytes are tolerated.
        return b"\xff\xd9" in tail
    return True
