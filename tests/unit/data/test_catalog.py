"""DatasetSpec: validation of its fields and the category lists of each dataset kind."""

from __future__ import annotations

import pytest

from tiled_pipeline.data.catalog import DATASET_KINDS, DatasetSpec
from tiled_pipeline.data.errors import DatasetError, LayoutError
from tiled_pipeline.data.mvtec import MVTEC_CATEGORIES, MVTEC_SHA256, MVTEC_URL
from tiled_pipeline.data.synthetic import SYNTHETIC_CATEGORIES
from tiled_pipeline.data.visa import VISA_CATEGORIES


def test_dataset_spec_defaults_to_synthetic() -> None:
    spec = DatasetSpec()

    assert spec.kind == "synthetic" and spec.kind in DATASET_KINDS
    assert spec.selected_categories() == SYNTHETIC_CATEGORIES
    assert len(SYNTHETIC_CATEGORIES) >= 3


def test_dataset_spec_official_category_lists() -> None:
    assert DatasetSpec(kind="mvtec_ad").all_categories() == MVTEC_CATEGORIES
    assert len(MVTEC_CATEGORIES) == 15
    assert DatasetSpec(kind="visa").all_categories() == VISA_CATEGORIES
    assert len(VISA_CATEGORIES) == 12


def test_dataset_spec_folder_categories_are_scanned(folder_tree, tmp_path) -> None:
    root = folder_tree(("widget", "gadget"))
    (root / "not_a_category").mkdir()

    spec = DatasetSpec(kind="folder", root=str(root))

    assert spec.all_categories() == ("gadget", "widget")


def test_dataset_spec_folder_without_categories(tmp_path) -> None:
    with pytest.raises(LayoutError, match="has no category"):
        DatasetSpec(kind="folder", root=str(tmp_path)).all_categories()
    with pytest.raises(LayoutError, match="does not exist"):
        DatasetSpec(kind="folder", root=str(tmp_path / "absent")).all_categories()


def test_dataset_spec_selected_categories_keeps_order_and_rejects_unknown() -> None:
    assert DatasetSpec(categories=("wood", "weave")).selected_categories() == ("wood", "weave")

    with pytest.raises(DatasetError, match=r"\['marble'\] are not in the synthetic dataset"):
        DatasetSpec(categories=("wood", "marble")).selected_categories()


def test_dataset_spec_check_category_names_choices() -> None:
    spec = DatasetSpec(kind="mvtec_ad", categories=("bottle",))

    spec.check_category("bottle")
    with pytest.raises(DatasetError, match=r"'cable' is not in the selected categories.*bottle"):
        spec.check_category("cable")
    with pytest.raises(DatasetError, match="'carpets' is not in the mvtec_ad dataset"):
        DatasetSpec(kind="mvtec_ad").check_category("carpets")


def test_dataset_spec_archive_uses_override() -> None:
    assert DatasetSpec(kind="mvtec_ad").archive() == (MVTEC_URL, MVTEC_SHA256)
    spec = DatasetSpec(kind="visa", url="http://127.0.0.1/v.tar", sha256="a" * 64)
    assert spec.archive() == ("http://127.0.0.1/v.tar", "a" * 64)


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"kind": "imagenet"}, ValueError, "kind must be one of"),
        ({"categories": "wood"}, TypeError, r"write categories=\('wood',\)"),
        ({"categories": ("wood", "wood")}, ValueError, "duplicates"),
        ({"kind": "folder"}, ValueError, "kind 'folder' needs root"),
        ({"root": "/data"}, ValueError, "root is only read for kind 'folder'"),
        ({"url": "http://x/y.tar", "sha256": "a" * 64}, ValueError, "only read for kinds"),
        ({"kind": "mvtec_ad", "url": "http://x/y.tar"}, ValueError, "sha256 must be given"),
        ({"image_size": 16}, ValueError, "image_size must be >= 64"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"n_train": 0}, ValueError, "n_train must be >= 1"),
        ({"n_test_defect": -1}, ValueError, "must be >= 0"),
        ({"n_test_good": 0, "n_test_defect": 0}, ValueError, "a category needs tests"),
    ],
)
def test_dataset_spec_rejects_bad_fields(fields: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        DatasetSpec(**fields)
