"""Datasets for anomaly detection: MVTec AD, VisA, a user's folder, and a synthetic generator.

``materialize_category`` puts one category on storage (local or any fsspec URL) and returns its
manifest table; ``read_image`` and ``read_mask`` load what the manifest lists.
"""

from tiled_pipeline.data.catalog import DATASET_KINDS, DatasetKind, DatasetSpec
from tiled_pipeline.data.download import download, file_sha256
from tiled_pipeline.data.errors import (
    ChecksumError,
    DatasetError,
    DownloadError,
    ImageReadError,
    IncompleteDownloadError,
    LayoutError,
    UnsafeArchiveError,
)
from tiled_pipeline.data.extract import safe_extract
from tiled_pipeline.data.imageio import read_image, read_mask
from tiled_pipeline.data.manifest import MANIFEST_COLUMNS, MANIFEST_NAME, read_manifest
from tiled_pipeline.data.materialize import materialize_category, source_fingerprint
from tiled_pipeline.data.mvtec import MVTEC_CATEGORIES, MVTEC_SHA256, MVTEC_URL
from tiled_pipeline.data.synthetic import SYNTHETIC_CATEGORIES, SYNTHETIC_DEFECT_TYPES
from tiled_pipeline.data.visa import VISA_CATEGORIES, VISA_SHA256, VISA_URL

__all__ = [
    "DATASET_KINDS",
    "MANIFEST_COLUMNS",
    "MANIFEST_NAME",
    "MVTEC_CATEGORIES",
    "MVTEC_SHA256",
    "MVTEC_URL",
    "SYNTHETIC_CATEGORIES",
    "SYNTHETIC_DEFECT_TYPES",
    "VISA_CATEGORIES",
    "VISA_SHA256",
    "VISA_URL",
    "ChecksumError",
    "DatasetError",
    "DatasetKind",
    "DatasetSpec",
    "DownloadError",
    "ImageReadError",
    "IncompleteDownloadError",
    "LayoutError",
    "UnsafeArchiveError",
    "download",
    "file_sha256",
    "materialize_category",
    "read_image",
    "read_manifest",
    "read_mask",
    "safe_extract",
    "source_fingerprint",
]
