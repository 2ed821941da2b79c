"""MVTec AD: extracting one category from a miniature archive in the official layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from upath import UPath

from tiled_pipeline.data.errors import DatasetError
from tiled_pipeline.data.mvtec import extract_mvtec_category


def test_extract_mvtec_category_only_its_members(mvtec_archive, tmp_path: Path) -> None:
    target = UPath(tmp_path / "storage" / "cable")

    names = extract_mvtec_category(mvtec_archive(("bottle", "cable")), "cable", target)

    assert len(names) == 11  # 8 images and 3 masks
    assert "ground_truth/crack/001_mask.png" in names
    assert sorted(p.name for p in (tmp_path / "storage").iterdir()) == ["cable"]
    assert all((target / name).is_file() for name in names)


def test_extract_mvtec_category_missing_category(mvtec_archive, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="holds no file under zipper/"):
        extract_mvtec_category(mvtec_archive(), "zipper", UPath(tmp_path / "zipper"))


def test_extract_mvtec_category_target_must_be_named_after_it(mvtec_archive, tmp_path) -> None:
    with pytest.raises(ValueError, match="target must be a folder named 'bottle'"):
        extract_mvtec_category(mvtec_archive(), "bottle", UPath(tmp_path / "other"))
