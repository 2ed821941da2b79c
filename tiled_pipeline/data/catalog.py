"""The dataset specification: which dataset, which categories, where from, generator settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from tiled_pipeline.data.errors import DatasetError
from tiled_pipeline.data.folder import folder_categories
from tiled_pipeline.data.mvtec import MVTEC_CATEGORIES, MVTEC_SHA256, MVTEC_URL
from tiled_pipeline.data.paths import as_upath
from tiled_pipeline.data.synthetic import MIN_IMAGE_SIZE, SYNTHETIC_CATEGORIES, SyntheticConfig
from tiled_pipeline.data.visa import VISA_CATEGORIES, VISA_SHA256, VISA_URL

logger = logging.getLogger(__name__)

DATASET_KINDS = ("synthetic", "mvtec_ad", "visa", "folder")
DatasetKind = Literal["synthetic", "mvtec_ad", "visa", "folder"]

_ARCHIVES = {"mvtec_ad": (MVTEC_URL, MVTEC_SHA256), "visa": (VISA_URL, VISA_SHA256)}
_OFFICIAL_CATEGORIES = {
    "synthetic": SYNTHETIC_CATEGORIES,
    "mvtec_ad": MVTEC_CATEGORIES,
    "visa": VISA_CATEGORIES,
}


@dataclass(frozen=True)
class DatasetSpec:
    """Which dataset to materialize, and how.

    Attributes:
        kind: "synthetic" (built-in generator), "mvtec_ad", "visa" (official archives) or
            "folder" (a user's tree in the MVTec layout).
        categories: Categories to use; empty means every category of the dataset.
        root: "folder" only: the tree's root, a local path or fsspec URL.
        url: "mvtec_ad"/"visa" only: archive URL overriding the official one (a mirror).
        sha256: "mvtec_ad"/"visa" only: the archive's SHA-256; required with ``url``.
        image_size: "synthetic" only: side of the square images in pixels, >= 64.
        seed: "synthetic" only: generator seed, >= 0.
        n_train: "synthetic" only: normal training images per category, >= 1.
        n_test_good: "synthetic" only: normal test images per category, >= 0.
        n_test_defect: "synthetic" only: anomalous test images per category, >= 0.
    """

    kind: DatasetKind = "synthetic"
    categories: tuple[str, ...] = ()
    root: str | None = None
    url: str | None = None
    sha256: str | None = None
    image_size: int = 1024
    seed: int = 0
    n_train: int = 32
    n_test_good: int = 8
    n_test_defect: int = 16

    def __post_init__(self) -> None:
        if self.kind not in DATASET_KINDS:
            raise ValueError(f"kind must be one of {DATASET_KINDS}, got {self.kind!r}")
        if isinstance(self.categories, str):
            raise TypeError(
                f"categories must be a tuple of names, got the string {self.categories!r}; "
                f"write categories=({self.categories!r},)"
            )
        object.__setattr__(self, "categories", tuple(self.categories))
        if len(set(self.categories)) != len(self.categories):
            raise ValueError(f"categories has duplicates: {self.categories}")
        self._check_sources()
        if self.kind == "synthetic":
            self._check_synthetic()

    def all_categories(self) -> tuple[str, ...]:
        """Every category of the dataset: the official list, or the folder's sub-folders."""
        if self.kind == "folder":
            return folder_categories(as_upath(self.root))
        return _OFFICIAL_CATEGORIES[self.kind]

    def selected_categories(self) -> tuple[str, ...]:
        """``categories``, or every category when it is empty, each checked to exist.

        Raises:
            DatasetError: a category that the dataset does not have.
        """
        available = self.all_categories()
        unknown = [c for c in self.categories if c not in available]
        if unknown:
            raise DatasetError(
                f"categories {unknown} are not in the {self.kind} dataset; choose from "
                f"{list(available)}"
            )
        return self.categories or available

    def check_category(self, category: str) -> None:
        """Raise ``DatasetError`` unless ``category`` is one of ``selected_categories()``."""
        selected = self.selected_categories()
        if category not in selected:
            where = "the selected categories" if self.categories else f"the {self.kind} dataset"
            raise DatasetError(
                f"category {category!r} is not in {where}; choose from {list(selected)}"
            )

    def archive(self) -> tuple[str, str]:
        """(url, sha256) of the archive to download; the overrides when given."""
        if self.kind not in _ARCHIVES:
            raise ValueError(f"kind {self.kind!r} has no archive; only {tuple(_ARCHIVES)} do")
        url, sha256 = _ARCHIVES[self.kind]
        return self.url or url, self.sha256 or sha256

    def synthetic_config(self) -> SyntheticConfig:
        """The generator settings of a "synthetic" spec."""
        return SyntheticConfig(
            image_size=self.image_size,
            seed=self.seed,
            n_train=self.n_train,
            n_test_good=self.n_test_good,
            n_test_defect=self.n_test_defect,
        )

    def _check_sources(self) -> None:
        if self.kind == "folder" and not self.root:
            raise ValueError(
                "kind 'folder' needs root: set DatasetSpec(kind='folder', root=...) to the "
                "dataset's local path or fsspec URL"
            )
        if self.kind != "folder" and self.root is not None:
            raise ValueError(f"root is only read for kind 'folder', got root={self.root!r}")
        if (self.url is not None or self.sha256 is not None) and self.kind not in _ARCHIVES:
            raise ValueError(
                f"url and sha256 are only read for kinds {tuple(_ARCHIVES)}, got kind {self.kind!r}"
            )
        if self.url is not None and self.sha256 is None:
            raise ValueError(
                f"url={self.url!r} overrides the official archive, so sha256 must be given too: "
                "the SHA-256 of the file at that URL"
            )

    def _check_synthetic(self) -> None:
        if self.image_size < MIN_IMAGE_SIZE:
            raise ValueError(
                f"image_size must be >= {MIN_IMAGE_SIZE} pixels, got {self.image_size}"
            )
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.n_train < 1:
            raise ValueError(f"n_train must be >= 1, got {self.n_train}")
        if self.n_test_good < 0 or self.n_test_defect < 0:
            raise ValueError(
                f"n_test_good and n_test_defect must be >= 0, got {self.n_test_good} and "
                f"{self.n_test_defect}"
            )
        if self.n_test_good + self.n_test_defect < 1:
            raise ValueError("n_test_good + n_test_defect must be >= 1: a category needs tests")
