"""A user's own dataset: a folder tree in the MVTec layout, used in place (nothing is copied).

``<root>/<category>/{train/good, test/<defect>, ground_truth/<defect>/<name>_mask.png}``; the
root is a local path or any fsspec URL. Every sub-folder of the root that has ``train/good`` is a
category.
"""

from __future__ import annotations

import hashlib
import json

from upath import UPath

from tiled_pipeline.data.errors import LayoutError
from tiled_pipeline.data.imageio import is_image_name
from tiled_pipeline.data.paths import list_files

_LAYOUT = "<root>/<category>/{train/good, test/<defect>, ground_truth/<defect>/<name>_mask.png}"


def folder_categories(root: UPath) -> tuple[str, ...]:
    """Sorted names of the sub-folders of ``root`` that hold ``train/good``.

    Raises:
        LayoutError: ``root`` does not exist or has no such sub-folder.
    """
    if not root.is_dir():
        raise LayoutError(
            f"dataset folder {root} does not exist or is not a folder; set DatasetSpec(root=...) "
            f"to a tree laid out as {_LAYOUT}"
        )
    categories = sorted(
        child.name for child in root.iterdir() if (child / "train" / "good").is_dir()
    )
    if not categories:
        raise LayoutError(
            f"dataset folder {root} has no category: no sub-folder holds train/good; lay it out "
            f"as {_LAYOUT}"
        )
    return tuple(categories)


def folder_files(category_dir: UPath) -> dict[str, int]:
    """Files of one category folder (relative path -> size in bytes).

    Raises:
        LayoutError: the folder is missing or empty.
    """
    files = list_files(category_dir)
    if not files:
        raise LayoutError(
            f"category folder {category_dir} is missing or empty; lay it out as {_LAYOUT}"
        )
    return files


def folder_images(category_dir: UPath) -> dict[str, int]:
    """Image files of a category folder (relative path -> size in bytes).

    Other files are left out, so a manifest written into the user's tree is not a data change.
    """
    return {name: size for name, size in list_files(category_dir).items() if is_image_name(name)}


def files_digest(files: dict[str, int]) -> str:
    """SHA-256 of the sorted (path, size) list: changes when a file is added, removed or resized."""
    return hashlib.sha256(json.dumps(sorted(files.items())).encode()).hexdigest()
