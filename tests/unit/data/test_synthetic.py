"""The synthetic generator: determinism, layout, defect sizes, and subtlety at low resolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from upath import UPath

from tiled_pipeline.data.imageio import read_image, read_mask
from tiled_pipeline.data.synthetic import (
    SYNTHETIC_CATEGORIES,
    SYNTHETIC_DEFECT_TYPES,
    SyntheticConfig,
    SyntheticItem,
    plan_items,
    synthesize,
    write_synthetic_category,
)

SMALL = SyntheticConfig(image_size=128, seed=3, n_train=2, n_test_good=1, n_test_defect=3)


def _write(root: Path, config: SyntheticConfig = SMALL, category: str = "weave") -> dict:
    names = write_synthetic_category(category, UPath(root), config)
    return {name: (root / name).read_bytes() for name in names}


def test_write_synthetic_category_same_seed_identical_bytes(tmp_path: Path) -> None:
    first = _write(tmp_path / "a")
    second = _write(tmp_path / "b")

    assert first == second


def test_write_synthetic_category_other_seed_differs(tmp_path: Path) -> None:
    first = _write(tmp_path / "a")
    other = _write(tmp_path / "b", SyntheticConfig(**{**vars(SMALL), "seed": 4}))

    assert first.keys() == other.keys()
    images = [name for name in first if not name.startswith("ground_truth/")]
    assert all(first[name] != other[name] for name in images)


def test_write_synthetic_category_files_match_synthesize(tmp_path: Path) -> None:
    _write(tmp_path)
    item = SyntheticItem("test", "spot", 0)

    image, mask = synthesize("weave", item, SMALL.image_size, SMALL.seed)

    np.testing.assert_array_equal(read_image(tmp_path / item.image_name), image)
    np.testing.assert_array_equal(read_mask(tmp_path / item.mask_name, image.shape[:2]), mask)


def test_plan_items_counts_and_defect_rotation() -> None:
    items = plan_items(SyntheticConfig(n_train=2, n_test_good=1, n_test_defect=7))

    names = [item.image_name for item in items]
    assert names[:3] == ["train/good/000.png", "train/good/001.png", "test/good/000.png"]
    defects = [item.defect_type for item in items[3:]]
    assert defects == [SYNTHETIC_DEFECT_TYPES[i % 3] for i in range(7)]
    assert len(set(names)) == len(names)
    assert [item.mask_name is None for item in items] == [True] * 3 + [False] * 7


def test_changing_one_count_keeps_other_images(tmp_path: Path) -> None:
    item = SyntheticItem("test", "scratch", 0)

    first = synthesize("wood", item, 128, seed=0)[0]
    # The item's stream depends only on (seed, category, split, defect type, index).
    again = synthesize("wood", item, 128, seed=0)[0]

    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, synthesize("speckle", item, 128, seed=0)[0])


@pytest.mark.parametrize("category", SYNTHETIC_CATEGORIES)
def test_synthesize_masks_small_exact_and_present(category: str) -> None:
    for defect in SYNTHETIC_DEFECT_TYPES:
        for index in range(4):
            item = SyntheticItem("test", defect, index)
            image, mask = synthesize(category, item, 256, seed=1)
            clean, no_mask = synthesize(category, item, 256, seed=1, with_defect=False)

            assert image.shape == (256, 256, 3) and image.dtype == np.uint8
            assert 0 < mask.mean() < 0.01
            assert not no_mask.any()
            changed = (image != clean).any(axis=-1)
            assert changed.any()
            assert not (changed & ~mask).any()  # nothing changed outside the mask


@pytest.mark.parametrize("category", SYNTHETIC_CATEGORIES)
def test_synthesize_normal_images_have_empty_masks(category: str) -> None:
    for split in ("train", "test"):
        _, mask = synthesize(category, SyntheticItem(split, "good", 0), 128, seed=0)
        assert not mask.any()


def _visibility(image: np.ndarray, clean: np.ndarray, mask: np.ndarray, factor: int) -> float:
    """RMS of the defect's change near the defect, over the texture's std, after box-shrinking."""
    size = image.shape[0] // factor

    def shrink(array: np.ndarray) -> np.ndarray:
        gray = Image.fromarray(array).convert("L")
        return np.asarray(gray.resize((size, size), Image.BOX), dtype=np.float32)

    near = mask.reshape(size, factor, size, factor).any(axis=(1, 3))  # (H, W) -> (H/f, W/f)
    change = shrink(image) - shrink(clean)
    return float(np.sqrt(np.mean(change[near] ** 2)) / shrink(clean).std())


def test_synthesize_1024_defects_tiny_and_fade_at_256() -> None:
    for index, defect in enumerate(SYNTHETIC_DEFECT_TYPES):
        category = SYNTHETIC_CATEGORIES[index]
        item = SyntheticItem("test", defect, 0)
        image, mask = synthesize(category, item, 1024, seed=0)
        clean, _ = synthesize(category, item, 1024, seed=0, with_defect=False)

        assert 1e-4 < mask.mean() < 3e-3  # 0.01 % - 0.3 % of the image
        full, half, quarter = (_visibility(image, clean, mask, f) for f in (1, 2, 4))
        assert full > 0.5, (category, defect, full)
        assert half > 0.4 * full, (category, defect, half, full)
        assert quarter < 0.5 * full, (category, defect, quarter, full)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"category": "marble"}, "category must be one of"),
        ({"image_size": 32}, "image_size must be >= 64"),
    ],
)
def test_synthesize_rejects_bad_arguments(arguments: dict, message: str) -> None:
    call = {"category": "wood", "item": SyntheticItem("train", "good", 0), "image_size": 128}
    with pytest.raises(ValueError, match=message):
        synthesize(**{**call, **arguments}, seed=0)
