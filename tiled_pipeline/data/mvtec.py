"""MVTec AD: the official archive and the extraction of one category from it.

Bergmann et al., "MVTec AD - A Comprehensive Real-World Dataset for Unsupervised Anomaly
Detection", CVPR 2019. The archive already uses the layout of ``manifest.py``:
``<category>/{train/good, test/<defect>, ground_truth/<defect>/<name>_mask.png}``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from upath import UPath

from tiled_pipeline.data.errors import DatasetError
from tiled_pipeline.data.extract import safe_extract

logger = logging.getLogger(__name__)

MVTEC_URL = (
    "https://www.mydrive.ch/shares/150996/b52ecdcbf521176e9db9c731f2304b27/download/"
    "420938113-1629960298/mvtec_anomaly_detection.tar.xz"
)
MVTEC_SHA256 = "cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d"
MVTEC_CATEGORIES = (
    "bottle",
    "cable",
    "capsule",
    "carpet",
    "grid",
    "hazelnut",
    "leather",
    "metal_nut",
    "pill",
    "screw",
    "tile",
    "toothbrush",
    "transistor",
    "wood",
    "zipper",
)


def extract_mvtec_category(archive: Path, category: str, target: UPath) -> list[str]:
    """Extract the members of one category from the MVTec AD archive into ``target``.

    The whole archive is streamed once (xz cannot seek); only ``<category>/...`` members are
    written.

    Args:
        archive: The verified archive (.tar.xz, or any tar for a mirror or a test archive).
        category: Category name, the archive's top-level folder.
        target: The category folder; ``<category>/train/good/000.png`` lands at
            ``target/train/good/000.png``.

    Returns:
        Written paths relative to ``target``.

    Raises:
        DatasetError: the archive holds nothing under ``<category>/``.
    """
    if target.name != category:
        raise ValueError(f"target must be a folder named {category!r}, got {target}")
    prefix = f"{category}/"
    names = safe_extract(archive, target.parent, lambda name: name.startswith(prefix))
    if not names:
        raise DatasetError(
            f"archive {archive} holds no file under {prefix}; it is not the MVTec AD archive "
            "or the category is missing from it. Check DatasetSpec(url=..., sha256=...)"
        )
    return [name.removeprefix(prefix) for name in names]
