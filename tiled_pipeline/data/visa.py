"""VisA: the official archive and its standard one-class split, written in the MVTec layout.

Zou et al., "SPot-the-Difference Self-Supervised Pre-training for Anomaly Detection and
Segmentation", ECCV 2022. The archive holds ``<category>/Data/Images/{Normal,Anomaly}/*.JPG``,
``<category>/Data/Masks/Anomaly/*.png`` and the split table ``split_csv/1cls.csv`` (columns
``object, split, label, image, mask``; paths relative to the archive root). Normal images go to
``train/good`` or ``test/good`` as the table says, anomalous ones to ``test/bad`` with their
masks binarized (> 0 -> 255) in ``ground_truth/bad/<name>_mask.png``.
"""

from __future__ import annotations

import io
import logging
import posixpath
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm
from upath import UPath

from tiled_pipeline.data.errors import DatasetError, ImageReadError, LayoutError
from tiled_pipeline.data.extract import checked_member_name
from tiled_pipeline.data.imageio import encode_png, is_image_name
from tiled_pipeline.data.manifest import GOOD
from tiled_pipeline.data.paths import make_dirs

logger = logging.getLogger(__name__)

VISA_URL = "https://amazon-visual-anomaly.s3.us-west-2.amazonaws.com/VisA_20220922.tar"
VISA_SHA256 = "2eb8690c803ab37de0324772964100169ec8ba1fa3f7e94291c9ca673f40f362"
VISA_CATEGORIES = (
    "candle",
    "capsules",
    "cashew",
    "chewinggum",
    "fryum",
    "macaroni1",
    "macaroni2",
    "pcb1",
    "pcb2",
    "pcb3",
    "pcb4",
    "pipe_fryum",
)
VISA_SPLIT_CSV = "split_csv/1cls.csv"
VISA_DEFECT = "bad"
_SPLIT_COLUMNS = ("object", "split", "label", "image", "mask")


def visa_split(table: pd.DataFrame, category: str, source: str = VISA_SPLIT_CSV) -> pd.DataFrame:
    """Apply the one-class split table to one category.

    Args:
        table: The split table (columns ``object, split, label, image, mask``).
        category: Value of the ``object`` column to keep.
        source: Name of the table for error messages.

    Returns:
        One row per image, columns ``image`` and ``mask`` (archive paths, ``mask`` "" for normal
        images) and ``image_name`` and ``mask_name`` (destination paths relative to the category
        folder, ``mask_name`` "" for normal images).

    Raises:
        DatasetError: missing columns, no row for ``category``, unknown split or label values,
            an anomalous training image, or two images with one destination name.
        LayoutError: an anomalous image without a mask.
    """
    missing = sorted(set(_SPLIT_COLUMNS) - set(table.columns))
    if missing:
        raise DatasetError(
            f"split table {source} lacks columns {missing}; expected {list(_SPLIT_COLUMNS)} "
            "as in the official VisA archive"
        )
    rows = table[table["object"] == category].astype(object).fillna("")
    if rows.empty:
        raise DatasetError(
            f"split table {source} has no row for category {category!r}; it lists "
            f"{sorted(set(table['object']))}"
        )
    plan = pd.DataFrame([_destination(row, source) for row in rows.itertuples(index=False)])
    duplicated = plan["image_name"][plan["image_name"].duplicated()]
    if not duplicated.empty:
        raise DatasetError(
            f"split table {source} maps several images of {category!r} to {duplicated.iloc[0]}; "
            "image file names must be unique within a category"
        )
    return plan


def write_visa_category(archive: Path, category: str, target: UPath) -> list[str]:
    """Write one VisA category from the archive into ``target`` in the MVTec layout.

    Args:
        archive: The verified VisA tar archive.
        category: One of the archive's categories.
        target: The category folder (local or fsspec).

    Returns:
        Written paths relative to ``target``.

    Raises:
        DatasetError: no split table, a listed file missing from the archive, or a bad table.
        ImageReadError: a mask that cannot be decoded.
    """
    with tarfile.open(archive, "r:*") as tar:
        members = _file_members(tar, archive)
        table = pd.read_csv(io.BytesIO(_member_bytes(tar, members, VISA_SPLIT_CSV, archive)))
        plan = visa_split(table, category, f"{archive}:{VISA_SPLIT_CSV}")
        names = [n for n in (*plan["image_name"], *plan["mask_name"]) if n]
        make_dirs({(target / name).parent for name in names})
        for row in tqdm(plan.itertuples(), total=len(plan), desc=f"visa {category}", unit="image"):
            data = _member_bytes(tar, members, row.image, archive)
            (target / row.image_name).write_bytes(data)
            if row.mask_name:
                mask = _binarized(_member_bytes(tar, members, row.mask, archive), row.mask)
                (target / row.mask_name).write_bytes(encode_png(mask))
    logger.info("wrote %d VisA %s images to %s", len(plan), category, target)
    return names


def _destination(row: tuple, source: str) -> dict[str, str]:
    """Archive paths and MVTec-layout destination of one split-table row."""
    split, label = str(row.split).strip().lower(), str(row.label).strip().lower()
    image, mask = str(row.image).strip(), str(row.mask).strip()
    name = posixpath.basename(image)
    if split not in ("train", "test") or label not in ("normal", "anomaly"):
        raise DatasetError(
            f"split table {source} row for {image!r} has split {row.split!r} / label "
            f"{row.label!r}; expected split train/test and label normal/anomaly"
        )
    if not is_image_name(name):
        raise DatasetError(f"split table {source} lists {image!r}, which is not an image file")
    if label == "normal":
        return {"image": image, "mask": "", "image_name": f"{split}/{GOOD}/{name}", "mask_name": ""}
    if split == "train":
        raise DatasetError(
            f"split table {source} puts anomalous image {image!r} in the train split; the "
            "one-class setting trains on normal images only, use the official 1cls.csv"
        )
    if not mask:
        raise LayoutError(
            f"mask missing for anomalous image {image!r} in split table {source}; the table "
            "must give each anomalous image's mask path"
        )
    stem = posixpath.splitext(name)[0]
    return {
        "image": image,
        "mask": mask,
        "image_name": f"test/{VISA_DEFECT}/{name}",
        "mask_name": f"ground_truth/{VISA_DEFECT}/{stem}_mask.png",
    }


def _file_members(tar: tarfile.TarFile, archive: Path) -> dict[str, tarfile.TarInfo]:
    """Regular-file entries by normalised name; refuses unsafe entries like ``safe_extract``."""
    members = {}
    for member in tar.getmembers():
        name = checked_member_name(member, archive)
        if name is not None and member.isfile():
            members[name] = member
    return members


def _member_bytes(
    tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str, archive: Path
) -> bytes:
    member = members.get(posixpath.normpath(name))
    if member is None:
        raise DatasetError(
            f"archive {archive} has no file {name!r}, which its split table lists; the archive "
            "is incomplete or not the VisA archive, delete it and download it again"
        )
    stream = tar.extractfile(member)
    assert stream is not None  # regular files always have a stream
    with stream:
        return stream.read()


def _binarized(data: bytes, name: str) -> np.ndarray:
    """(H, W) bool mask: any value > 0 (in any channel) is anomalous."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            values = np.asarray(image.convert("L") if image.mode == "P" else image)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise ImageReadError(
            f"cannot read VisA mask {name}: {error}; the archive is corrupt, download it again"
        ) from error
    return values.any(axis=-1) if values.ndim == 3 else values > 0  # (H, W, C) -> (H, W)
