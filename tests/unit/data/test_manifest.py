"""Manifest building from an MVTec-layout folder, validation, and parquet round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from upath import UPath

from tiled_pipeline.data.errors import DatasetError, ImageReadError, LayoutError
from tiled_pipeline.data.manifest import (
    MANIFEST_COLUMNS,
    manifest_from_files,
    read_manifest,
    read_manifest_source,
    write_manifest,
)
from tiled_pipeline.data.paths import list_files


@pytest.fixture
def category(folder_tree) -> UPath:
    return UPath(folder_tree(("widget",)) / "widget")


def _build(root: UPath) -> pd.DataFrame:
    return manifest_from_files(root, list_files(root))


def test_manifest_from_files_rows_follow_layout(category: UPath) -> None:
    manifest = _build(category)

    assert tuple(manifest.columns) == MANIFEST_COLUMNS
    counts = manifest.groupby(["split", "defect_type"]).size().to_dict()
    assert counts == {("train", "good"): 3, ("test", "good"): 2, ("test", "crack"): 2,
                      ("test", "hole"): 1}  # fmt: skip
    assert list(manifest["split"].iloc[:3]) == ["train"] * 3
    assert (manifest["label"] == (manifest["defect_type"] != "good")).all()
    assert (manifest["mask_path"] == "").equals(manifest["label"] == 0)
    assert (manifest[["height", "width"]] == 32).all().all()
    for path in [*manifest["image_path"], *filter(None, manifest["mask_path"])]:
        assert UPath(path).is_file()
        assert Path(path).is_absolute()


def test_manifest_from_files_pairs_each_mask_with_its_image(category: UPath) -> None:
    anomalous = _build(category).query("label == 1")

    for image, mask in zip(anomalous["image_path"], anomalous["mask_path"], strict=True):
        defect, name = Path(image).parts[-2:]
        assert Path(mask).parts[-3:] == ("ground_truth", defect, name.replace(".png", "_mask.png"))


def test_manifest_from_files_accepts_mask_without_suffix(category: UPath) -> None:
    mask = Path(category / "ground_truth" / "hole" / "000_mask.png")
    mask.rename(mask.with_name("000.png"))

    manifest = _build(category)

    assert manifest.query("defect_type == 'hole'")["mask_path"].iloc[0].endswith("hole/000.png")


def test_manifest_from_files_missing_mask_names_expected_path(category: UPath) -> None:
    Path(category / "ground_truth" / "crack" / "001_mask.png").unlink()

    with pytest.raises(LayoutError, match=r"mask missing for .*test/crack/001\.png.*001_mask\.png"):
        _build(category)


def test_manifest_from_files_mask_of_other_size_names_both(category: UPath) -> None:
    Image.fromarray(np.zeros((16, 32), np.uint8)).save(category / "ground_truth/hole/000_mask.png")

    with pytest.raises(ImageReadError, match=r"000_mask\.png is 16x32 .*000\.png is 32x32"):
        _build(category)


def test_manifest_from_files_unreadable_image_names_it(category: UPath) -> None:
    Path(category / "test" / "good" / "001.png").write_bytes(b"garbage")

    with pytest.raises(ImageReadError, match=r"test/good/001\.png"):
        _build(category)


def test_manifest_from_files_empty_train_set(category: UPath) -> None:
    for image in Path(category / "train" / "good").iterdir():
        image.unlink()

    with pytest.raises(LayoutError, match=r"empty train set.*train/good"):
        _build(category)


def test_manifest_from_files_without_tests(category: UPath) -> None:
    files = {k: v for k, v in list_files(category).items() if k.startswith("train/")}

    with pytest.raises(LayoutError, match="no test image"):
        manifest_from_files(category, files)


def test_manifest_from_files_refuses_anomalous_training_folder(category: UPath) -> None:
    files = [*list_files(category), "train/crack/000.png"]

    with pytest.raises(LayoutError, match=r"train/crack.*move them"):
        manifest_from_files(category, files)


def test_write_manifest_round_trip_with_source(category: UPath, tmp_path: Path) -> None:
    manifest = _build(category)
    path = UPath(tmp_path / "out" / "manifest.parquet")

    write_manifest(manifest, path, {"kind": "folder", "n": 3})

    pd.testing.assert_frame_equal(read_manifest(path), manifest)
    assert read_manifest_source(path) == {"kind": "folder", "n": 3}
    assert sorted(p.name for p in Path(tmp_path / "out").iterdir()) == ["manifest.parquet"]


def test_read_manifest_wrong_columns_names_them(category: UPath, tmp_path: Path) -> None:
    path = tmp_path / "manifest.parquet"
    _build(category).drop(columns=["mask_path"]).assign(extra=1).to_parquet(path)

    with pytest.raises(DatasetError, match=r"missing \['mask_path'\], unexpected \['extra'\]"):
        read_manifest(UPath(path))


def test_read_manifest_bad_values(category: UPath, tmp_path: Path) -> None:
    path = tmp_path / "manifest.parquet"
    _build(category).assign(split="validation").to_parquet(path)

    with pytest.raises(DatasetError, match=r"split values \['validation'\]"):
        read_manifest(UPath(path))


def test_read_manifest_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "manifest.parquet"
    path.write_bytes(b"not parquet")

    with pytest.raises(DatasetError, match=r"cannot read manifest .*manifest\.parquet"):
        read_manifest(UPath(path))
    assert read_manifest_source(UPath(path)) is None
