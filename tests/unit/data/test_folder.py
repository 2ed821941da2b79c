"""A user's folder dataset: category discovery, file listing and change detection."""

from __future__ import annotations

from pathlib import Path

import pytest
from upath import UPath

from tiled_pipeline.data.errors import LayoutError
from tiled_pipeline.data.folder import files_digest, folder_categories, folder_files


def test_folder_categories_need_train_good(folder_tree) -> None:
    root = folder_tree(("widget", "gadget"))
    (root / "empty_dir").mkdir()
    (root / "notes.txt").write_text("not a category")

    assert folder_categories(UPath(root)) == ("gadget", "widget")


def test_folder_files_missing_category(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match=r"missing or empty.*train/good"):
        folder_files(UPath(tmp_path / "nothing"))


def test_files_digest_tracks_names_and_sizes() -> None:
    base = files_digest({"a.png": 10, "b.png": 20})

    assert files_digest({"b.png": 20, "a.png": 10}) == base
    assert files_digest({"a.png": 11, "b.png": 20}) != base
    assert files_digest({"a.png": 10}) != base
