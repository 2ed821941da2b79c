"""Deterministic synthetic dataset: high-resolution textures with small, subtle defects.

Each category is one texture (``textures.TEXTURES``); each anomalous test image holds one defect
(``defects.DEFECT_TYPES``, assigned in turn). Every image has its own random stream, seeded by
``(seed, category, split, defect type, index)``, so the same settings give byte-identical files
and changing one count leaves the other images unchanged.
"""

from __future__ import annotations

import logging
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
from tqdm.auto import tqdm
from upath import UPath

from tiled_pipeline.data.defects import DEFECT_TYPES, add_defect
from tiled_pipeline.data.imageio import encode_png
from tiled_pipeline.data.manifest import GOOD
from tiled_pipeline.data.paths import make_dirs
from tiled_pipeline.data.textures import TEXTURES, palette, quantize

logger = logging.getLogger(__name__)

SYNTHETIC_CATEGORIES = tuple(TEXTURES)
SYNTHETIC_DEFECT_TYPES = DEFECT_TYPES
MIN_IMAGE_SIZE = 64
# Raised whenever the generator's output changes, so that stored categories are rebuilt.
GENERATOR_VERSION = 1
# Threads that generate and encode images: numpy and PNG encoding release the GIL.
_WORKERS = min(4, os.cpu_count() or 1)


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of the synthetic generator.

    Attributes:
        image_size: Side of the square images in pixels, >= 64.
        seed: Base seed; images differ between seeds.
        n_train: Normal training images, >= 1.
        n_test_good: Normal test images, >= 0.
        n_test_defect: Anomalous test images, >= 0, spread over the defect types in turn.
    """

    image_size: int = 1024
    seed: int = 0
    n_train: int = 32
    n_test_good: int = 8
    n_test_defect: int = 16


@dataclass(frozen=True)
class SyntheticItem:
    """One image of a category: where it goes and which defect it holds ("good" for none)."""

    split: Literal["train", "test"]
    defect_type: str
    index: int

    @property
    def image_name(self) -> str:
        """Path relative to the category folder, e.g. ``test/scratch/002.png``."""
        return f"{self.split}/{self.defect_type}/{self.index:03d}.png"

    @property
    def mask_name(self) -> str | None:
        """Mask path relative to the category folder; ``None`` for a normal image."""
        if self.defect_type == GOOD:
            return None
        return f"ground_truth/{self.defect_type}/{self.index:03d}_mask.png"


def plan_items(config: SyntheticConfig) -> list[SyntheticItem]:
    """Every image of one category: train/good, test/good, then the defects in turn."""
    items = [SyntheticItem("train", GOOD, i) for i in range(config.n_train)]
    items += [SyntheticItem("test", GOOD, i) for i in range(config.n_test_good)]
    n_types = len(DEFECT_TYPES)
    items += [
        SyntheticItem("test", DEFECT_TYPES[i % n_types], i // n_types)
        for i in range(config.n_test_defect)
    ]
    return items


def synthesize(
    category: str, item: SyntheticItem, image_size: int, seed: int, *, with_defect: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Generate one image and its mask.

    Args:
        category: One of ``SYNTHETIC_CATEGORIES``.
        item: Which image (split, defect type, index).
        image_size: Side in pixels, >= 64.
        seed: Base seed.
        with_defect: False returns the same texture without its defect (for analysis).

    Returns:
        (H, W, 3) uint8 RGB image and (H, W) bool mask (all False for a normal image); the
        image is what ``read_image`` returns for the file ``write_synthetic_category`` writes.
    """
    levels, mask = _render(category, item, image_size, seed, with_defect)
    return np.take(palette(category), levels, axis=0), mask  # (H, W) -> (H, W, 3)


def write_synthetic_category(category: str, target: UPath, config: SyntheticConfig) -> list[str]:
    """Generate every image of ``category`` and write it as PNG below ``target``.

    Args:
        category: One of ``SYNTHETIC_CATEGORIES``.
        target: The category folder (local or fsspec); files go to the MVTec layout inside it.
        config: Generator settings.

    Returns:
        Paths of the written files relative to ``target``.
    """
    items = plan_items(config)
    names = [n for item in items for n in (item.image_name, item.mask_name) if n is not None]
    make_dirs({(target / name).parent for name in names})

    colours = palette(category)

    def write(item: SyntheticItem) -> None:
        levels, mask = _render(category, item, config.image_size, config.seed, True)
        (target / item.image_name).write_bytes(encode_png(levels, colours))
        if item.mask_name is not None:
            (target / item.mask_name).write_bytes(encode_png(mask))

    with ThreadPoolExecutor(_WORKERS) as pool:
        done = pool.map(write, items)
        for _ in tqdm(done, total=len(items), desc=f"synthesize {category}", unit="image"):
            pass  # iterating re-raises the first exception of a worker
    logger.info(
        "generated %d synthetic %s images of %dx%d px in %s",
        len(items),
        category,
        config.image_size,
        config.image_size,
        target,
    )
    return names


def _render(
    category: str, item: SyntheticItem, image_size: int, seed: int, with_defect: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) uint8 palette levels of one image and its (H, W) bool mask."""
    if category not in TEXTURES:
        raise ValueError(
            f"category must be one of {SYNTHETIC_CATEGORIES} for the synthetic dataset, "
            f"got {category!r}"
        )
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be >= {MIN_IMAGE_SIZE} pixels, got {image_size}")
    texture_rng, defect_rng = _generators(category, item, seed)
    intensity = TEXTURES[category](texture_rng, image_size)
    mask = np.zeros(intensity.shape, dtype=bool)
    if item.defect_type != GOOD and with_defect:
        mask = add_defect(defect_rng, intensity, item.defect_type)
    return quantize(intensity), mask


def _generators(
    category: str, item: SyntheticItem, seed: int
) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent texture and defect generators of one image (PCG64, stable across runs)."""
    defect_code = 0 if item.defect_type == GOOD else 1 + DEFECT_TYPES.index(item.defect_type)
    entropy = [
        seed,
        zlib.crc32(category.encode()),  # stable, unlike hash() which is salted per process
        0 if item.split == "train" else 1,
        defect_code,
        item.index,
    ]
    texture, defect = (
        np.random.Generator(np.random.PCG64(child))
        for child in np.random.SeedSequence(entropy).spawn(2)
    )
    return texture, defect
