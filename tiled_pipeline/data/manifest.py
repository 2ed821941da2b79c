"""The manifest table of one category: one row per image, built from an MVTec-layout folder.

Layout of a category folder (the MVTec AD convention, used for every dataset kind)::

    train/good/<name>.<ext>                   normal training images
    test/good/<name>.<ext>                    normal test images
    test/<defect>/<name>.<ext>                anomalous test images of one defect type
    ground_truth/<defect>/<name>_mask.png     their masks (``<name>.png`` is accepted too)

Columns (``MANIFEST_COLUMNS``): ``image_path`` absolute URI, ``split`` "train"/"test", ``label`` 0
normal / 1 anomalous, ``defect_type`` ("good" when normal), ``mask_path`` ("" when normal),
``height`` and ``width`` in pixels. Rows are sorted by split (train first), defect type and path.
"""

from __future__ import annotations

import io
import json
import logging
import posixpath
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from tiled_pipeline.data.errors import DatasetError, ImageReadError, LayoutError
from tiled_pipeline.data.imageio import is_image_name, read_size
from tiled_pipeline.data.paths import write_bytes_atomic

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.parquet"
MANIFEST_COLUMNS = ("image_path", "split", "label", "defect_type", "mask_path", "height", "width")
GOOD = "good"
_SOURCE_KEY = b"tiled_pipeline.source"
_HEADER_READERS = 8  # parallel header reads; object-store latency dominates, not CPU


def manifest_from_files(root: UPath, files: Iterable[str]) -> pd.DataFrame:
    """Build and validate the manifest of a category folder in the MVTec layout.

    Image sizes come from the file headers (cheap); every mask must have its image's size.

    Args:
        root: The category folder.
        files: Paths relative to ``root`` (``/``-separated). Files that are not images, or that
            lie outside ``train/``, ``test/`` and ``ground_truth/``, are ignored.

    Returns:
        The manifest, columns ``MANIFEST_COLUMNS``.

    Raises:
        LayoutError: no training image, no test image, a training folder other than ``good``,
            or an anomalous image without a mask.
        ImageReadError: an unreadable or truncated image or mask, or a mask of another size.
    """
    images, masks = _classify(root, [f for f in files if is_image_name(f)])
    pairs = [(image, _mask_of(root, image, masks)) for image in images]
    sizes = _read_sizes(root, pairs)
    rows = [_row(root, image, mask, size) for (image, mask), size in zip(pairs, sizes, strict=True)]
    frame = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    return _typed(frame.sort_values(["split", "defect_type", "image_path"], key=_split_first))


def read_manifest(path: UPath) -> pd.DataFrame:
    """Read a manifest parquet file and check its columns and values.

    Raises:
        DatasetError: unreadable file, columns other than ``MANIFEST_COLUMNS``, or a bad split or
            label value.
    """
    try:
        frame = pd.read_parquet(io.BytesIO(path.read_bytes()))
    except (OSError, ValueError, pa.ArrowException) as error:
        raise DatasetError(
            f"cannot read manifest {path}: {error}; delete it and materialize the category again"
        ) from error
    return validate_manifest(frame, str(path))


def validate_manifest(frame: pd.DataFrame, name: str = "manifest") -> pd.DataFrame:
    """Check a manifest table and return it with canonical column order and dtypes.

    Raises:
        DatasetError: missing or extra columns, or values outside split {train, test} and
            label {0, 1}. ``name`` identifies the table in the message.
    """
    if set(frame.columns) != set(MANIFEST_COLUMNS):
        missing = sorted(set(MANIFEST_COLUMNS) - set(frame.columns))
        extra = sorted(set(frame.columns) - set(MANIFEST_COLUMNS))
        raise DatasetError(
            f"{name} has the wrong columns (missing {missing}, unexpected {extra}); expected "
            f"exactly {list(MANIFEST_COLUMNS)}. Materialize the category again"
        )
    bad_split = sorted(set(frame["split"]) - {"train", "test"})
    bad_label = sorted(set(frame["label"]) - {0, 1})
    if bad_split or bad_label:
        raise DatasetError(
            f"{name} has split values {bad_split} / label values {bad_label} outside "
            "split {train, test} and label {0, 1}; materialize the category again"
        )
    return _typed(frame[list(MANIFEST_COLUMNS)])


def write_manifest(frame: pd.DataFrame, path: UPath, source: dict[str, Any]) -> None:
    """Write a manifest atomically, with ``source`` (JSON) in the parquet metadata.

    ``source`` describes what produced the images (dataset kind, checksum, generator settings);
    a later run compares it to decide whether the stored category can be reused.
    """
    table = pa.Table.from_pandas(validate_manifest(frame, str(path)), preserve_index=False)
    metadata = {**(table.schema.metadata or {}), _SOURCE_KEY: json.dumps(source).encode()}
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(metadata), buffer)
    write_bytes_atomic(path, buffer.getvalue())
    logger.info("wrote manifest %s (%d images)", path, len(frame))


def read_manifest_source(path: UPath) -> dict[str, Any] | None:
    """The ``source`` stored by ``write_manifest``; ``None`` when absent or unreadable."""
    try:
        with path.open("rb") as stream:
            metadata = pq.read_schema(stream).metadata or {}
        return json.loads(metadata[_SOURCE_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None


def _classify(root: UPath, files: list[str]) -> tuple[list[str], dict[tuple[str, str], str]]:
    """Split relative paths into images (train/test) and masks keyed by (defect, image stem)."""
    images, masks, ignored = [], {}, 0
    for relative in sorted(files):
        parts = relative.split("/")
        if len(parts) != 3:
            ignored += 1
        elif parts[0] == "train" and parts[1] != GOOD:
            raise LayoutError(
                f"{root}/{relative}: training images must be normal and lie in train/good, found "
                f"train/{parts[1]}; move them to train/good or to test/{parts[1]}"
            )
        elif parts[0] in ("train", "test"):
            images.append(relative)
        elif parts[0] == "ground_truth":
            stem = posixpath.splitext(parts[2])[0]
            masks[(parts[1], stem.removesuffix("_mask"))] = relative
        else:
            ignored += 1
    if ignored:
        logger.warning("%s: ignored %d images outside train/, test/, ground_truth/", root, ignored)
    _check_splits(root, images)
    return images, masks


def _check_splits(root: UPath, images: list[str]) -> None:
    if not any(relative.startswith("train/") for relative in images):
        raise LayoutError(
            f"{root} has an empty train set: no image in {root}/train/good; put the normal "
            "training images there (MVTec layout: train/good, test/<defect>, ground_truth/<defect>)"
        )
    if not any(relative.startswith("test/") for relative in images):
        raise LayoutError(
            f"{root} has no test image: {root}/test/<good|defect>/ is empty or missing; add test "
            "images in the MVTec layout (test/good, test/<defect>, ground_truth/<defect>)"
        )


def _mask_of(root: UPath, image: str, masks: dict[tuple[str, str], str]) -> str | None:
    """Relative mask path of an anomalous image, ``None`` for a normal one."""
    _, defect, name = image.split("/")
    if defect == GOOD:
        return None
    stem = posixpath.splitext(name)[0]
    mask = masks.get((defect, stem))
    if mask is None:
        raise LayoutError(
            f"mask missing for anomalous image {root}/{image}: expected "
            f"{root}/ground_truth/{defect}/{stem}_mask.png; add the mask (white = defect) or move "
            "the image to test/good if it is normal"
        )
    return mask


def _read_sizes(root: UPath, pairs: list[tuple[str, str | None]]) -> list[tuple[int, int]]:
    """(H, W) of every image, read from headers in parallel; each mask must match its image.

    Raises:
        ImageReadError: unreadable image or mask, or a mask of another size.
    """

    def size(pair: tuple[str, str | None]) -> tuple[int, int]:
        image, mask = pair
        image_size = read_size(root / image)
        mask_size = image_size if mask is None else read_size(root / mask)
        if mask_size != image_size:
            raise ImageReadError(
                f"mask {root / mask} is {mask_size[0]}x{mask_size[1]} (HxW) but its image "
                f"{root / image} is {image_size[0]}x{image_size[1]}; replace the mask with one "
                "of its image's size"
            )
        return image_size

    with ThreadPoolExecutor(_HEADER_READERS) as pool:
        return list(pool.map(size, pairs))


def _row(root: UPath, image: str, mask: str | None, size: tuple[int, int]) -> dict[str, Any]:
    split, defect, _ = image.split("/")
    return {
        "image_path": str(root / image),
        "split": split,
        "label": int(mask is not None),
        "defect_type": defect,
        "mask_path": "" if mask is None else str(root / mask),
        "height": size[0],
        "width": size[1],
    }


def _split_first(column: pd.Series) -> pd.Series:
    """Sort key that puts "train" before "test" and leaves other columns as they are."""
    return column.map({"train": 0, "test": 1}) if column.name == "split" else column


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(
        {
            "image_path": str,
            "split": str,
            "label": "int64",
            "defect_type": str,
            "mask_path": str,
            "height": "int64",
            "width": "int64",
        }
    ).reset_index(drop=True)
