"""Put one category of a dataset on storage and write its manifest, idempotently.

Steps for a category:

1. If ``<storage>/<category>/manifest.parquet`` exists, was produced from the same source
   (dataset kind, archive checksum or generator settings, or for a folder the same file list)
   and every file it lists exists, it is returned as is: no download, no extraction.
2. Otherwise the archive is downloaded and verified (archive kinds), the stale category folder is
   removed, the images are extracted or generated, and the manifest is built from the files and
   validated (image and mask sizes from the headers).
3. The manifest is written last, atomically, so a category interrupted at any step never looks
   complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from upath import UPath

from tiled_pipeline.data.catalog import DatasetSpec
from tiled_pipeline.data.download import download
from tiled_pipeline.data.errors import DatasetError
from tiled_pipeline.data.folder import files_digest, folder_files, folder_images
from tiled_pipeline.data.manifest import (
    MANIFEST_NAME,
    manifest_from_files,
    read_manifest,
    read_manifest_source,
    write_manifest,
)
from tiled_pipeline.data.mvtec import extract_mvtec_category
from tiled_pipeline.data.paths import as_upath, list_files, remove_tree
from tiled_pipeline.data.synthetic import GENERATOR_VERSION, write_synthetic_category
from tiled_pipeline.data.visa import write_visa_category

logger = logging.getLogger(__name__)

Builder = Callable[[DatasetSpec, str, UPath, Path], list[str]]


def materialize_category(
    spec: DatasetSpec, category: str, storage: UPath, downloads: Path
) -> pd.DataFrame:
    """Materialize one category: images on storage and ``<storage>/<category>/manifest.parquet``.

    Args:
        spec: The dataset.
        category: One of ``spec.selected_categories()``.
        storage: Folder of this dataset's categories (local path, fsspec URL or ``UPath``).
        downloads: Local cache folder for archives (created when needed).

    Returns:
        The manifest (columns ``manifest.MANIFEST_COLUMNS``). For kind "folder" its paths point
        at the user's files; otherwise at the files below ``<storage>/<category>``.

    Raises:
        DatasetError: unknown category, bad download, bad archive, folder not in the MVTec
            layout, empty train set, unreadable image, missing or mis-sized mask. Nothing is
            written to the manifest then, and a stored category is left untouched when the
            failure happens before its images are replaced (download and checksum errors).
    """
    spec.check_category(category)
    storage = as_upath(storage)
    category_dir = storage / category
    data_dir = as_upath(spec.root) / category if spec.kind == "folder" else category_dir
    manifest_path = category_dir / MANIFEST_NAME
    source = _source(spec, data_dir)
    stored = _stored_manifest(manifest_path, source, data_dir)
    if stored is not None:
        logger.info("%s/%s is already materialized (%d images)", spec.kind, category, len(stored))
        return stored
    files = _BUILDERS[spec.kind](spec, category, data_dir, Path(downloads))
    manifest = manifest_from_files(data_dir, files)
    write_manifest(manifest, manifest_path, source)
    return manifest


def source_fingerprint(spec: DatasetSpec, category: str) -> str:
    """A digest of what a category would be built from; it changes when the source changes.

    Synthetic: the generator settings; archives: the archive checksum; folder: the names and
    sizes of the category's image and mask files (one listing of the user's tree).
    """
    spec.check_category(category)
    data_dir = as_upath(spec.root) / category if spec.kind == "folder" else UPath(category)
    text = json.dumps(_source(spec, data_dir), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _source(spec: DatasetSpec, data_dir: UPath) -> dict[str, Any]:
    """What the stored images were produced from; a stored manifest is reused only if equal."""
    if spec.kind == "synthetic":
        config = spec.synthetic_config()
        return {"kind": spec.kind, "version": GENERATOR_VERSION, **asdict(config)}
    if spec.kind == "folder":
        return {
            "kind": spec.kind,
            "root": str(data_dir),
            "files": files_digest(folder_images(data_dir)),
        }
    return {"kind": spec.kind, "sha256": spec.archive()[1]}


def _stored_manifest(
    manifest_path: UPath, source: dict[str, Any], data_dir: UPath
) -> pd.DataFrame | None:
    """The stored manifest when it is complete and current, else ``None``."""
    stored_source = read_manifest_source(manifest_path)
    if stored_source is None:
        return None
    if stored_source != source:
        logger.info(
            "%s was produced from %s, now %s; rebuilding", manifest_path, stored_source, source
        )
        return None
    try:
        manifest = read_manifest(manifest_path)
    except DatasetError as error:
        logger.warning("%s; rebuilding", error)
        return None
    missing = _missing_files(manifest, data_dir)
    if missing:
        logger.warning(
            "%s lists %d missing files (e.g. %s); rebuilding",
            manifest_path,
            len(missing),
            missing[0],
        )
        return None
    return manifest


def _missing_files(manifest: pd.DataFrame, data_dir: UPath) -> list[str]:
    """Manifest paths that are not files below ``data_dir`` (one listing, no per-file request)."""
    present = list_files(data_dir)
    prefix = str(data_dir).rstrip("/") + "/"
    paths = [*manifest["image_path"], *(p for p in manifest["mask_path"] if p)]
    return [p for p in paths if not p.startswith(prefix) or p[len(prefix) :] not in present]


def _build_synthetic(spec: DatasetSpec, category: str, target: UPath, downloads: Path) -> list[str]:
    remove_tree(target)
    return write_synthetic_category(category, target, spec.synthetic_config())


def _build_mvtec(spec: DatasetSpec, category: str, target: UPath, downloads: Path) -> list[str]:
    archive = _download_archive(spec, downloads)
    remove_tree(target)
    return extract_mvtec_category(archive, category, target)


def _build_visa(spec: DatasetSpec, category: str, target: UPath, downloads: Path) -> list[str]:
    archive = _download_archive(spec, downloads)
    remove_tree(target)
    return write_visa_category(archive, category, target)


def _build_folder(spec: DatasetSpec, category: str, target: UPath, downloads: Path) -> list[str]:
    return list(folder_files(target))


def _download_archive(spec: DatasetSpec, downloads: Path) -> Path:
    """Download into ``<downloads>/<first 12 digits of the SHA-256>/<file name>``.

    Keying the folder by checksum means a wrong checksum override never deletes a good archive
    cached for the right one.
    """
    url, sha256 = spec.archive()
    name = posixpath.basename(url.split("?", 1)[0].rstrip("/")) or f"{spec.kind}.tar"
    return download(url, downloads / sha256.lower()[:12] / name, sha256)


_BUILDERS: dict[str, Builder] = {
    "synthetic": _build_synthetic,
    "mvtec_ad": _build_mvtec,
    "visa": _build_visa,
    "folder": _build_folder,
}
