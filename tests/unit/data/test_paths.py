"""UPath helpers: absolute paths, recursive listing, removal and atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from upath import UPath

from tiled_pipeline.data.paths import as_upath, list_files, remove_tree, write_bytes_atomic


def test_as_upath_makes_local_paths_absolute(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)

    assert str(as_upath("rel/dir")) == str(tmp_path / "rel" / "dir")
    assert str(as_upath("memory://bucket/x")) == "memory://bucket/x"


@pytest.mark.parametrize("root", ["local", "memory://paths-test/list"])
def test_list_files_recursive_relative_sorted(tmp_path: Path, root: str) -> None:
    base = UPath(tmp_path / "tree") if root == "local" else UPath(root)
    for name, data in {"b/2.txt": b"22", "a.txt": b"1", "b/c/3.txt": b"333"}.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_bytes(data)

    assert list_files(base) == {"a.txt": 1, "b/2.txt": 2, "b/c/3.txt": 3}
    assert list_files(base / "absent") == {}


def test_remove_tree_deletes_everything_and_ignores_absent(tmp_path: Path) -> None:
    (tmp_path / "gone" / "deep").mkdir(parents=True)
    (tmp_path / "gone" / "deep" / "f").write_bytes(b"x")

    remove_tree(UPath(tmp_path / "gone"))
    remove_tree(UPath(tmp_path / "gone"))

    assert not (tmp_path / "gone").exists()


@pytest.mark.parametrize("root", ["local", "memory://paths-test/atomic"])
def test_write_bytes_atomic_replaces_and_leaves_no_temporary(tmp_path: Path, root: str) -> None:
    folder = UPath(tmp_path) if root == "local" else UPath(root)
    path = folder / "sub" / "manifest.parquet"

    write_bytes_atomic(path, b"first")
    write_bytes_atomic(path, b"second")

    assert path.read_bytes() == b"second"
    assert [p.name for p in path.parent.iterdir()] == ["manifest.parquet"]
