import numpy as np
import pandas as pd
import pytest
from upath import UPath

from tiled_pipeline import storage as io


@pytest.fixture(params=["local", "memory"])
def folder(request, tmp_path):
    if request.param == "local":
        return UPath(tmp_path) / "part"
    return UPath(f"memory://bucket/{tmp_path.name}/part")


def test_storage_round_trips_every_format(folder):
    array = np.arange(12, dtype=np.float16).reshape(3, 4)
    table = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    io.save_array(folder / "a.npy", array)
    io.save_table(folder / "t.parquet", table)
    io.save_json(folder / "j.json", {"k": [1, 2]})
    io.save_checkpoint(folder / "m.pt", {"model": "x", "state": {"w": np.ones(2).tolist()}})
    np.testing.assert_array_equal(io.load_array(folder / "a.npy"), array)
    pd.testing.assert_frame_equal(io.load_table(folder / "t.parquet"), table)
    assert io.load_json(folder / "j.json") == {"k": [1, 2]}
    assert io.load_checkpoint(folder / "m.pt")["model"] == "x"
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_storage_version_pointer_keeps_old_version_when_write_fails(folder):
    first = io.new_version(folder)
    io.save_array(first / "x.npy", np.ones(3))
    io.commit_version(folder, first, {"n": 3})
    second = io.new_version(folder)
    io.save_array(second / "x.npy", np.zeros(3))
    # the second materialization dies before committing: readers still see the first
    current = io.current_version(folder, "thing")
    np.testing.assert_array_equal(io.load_array(current / "x.npy"), np.ones(3))
    io.commit_version(folder, second)
    current = io.current_version(folder, "thing")
    np.testing.assert_array_equal(io.load_array(current / "x.npy"), np.zeros(3))
    versions = [p.name for p in folder.iterdir() if p.name.startswith("v")]
    assert versions == [second.name]


def test_storage_current_version_missing_names_the_fix(folder):
    with pytest.raises(FileNotFoundError, match="materialize that upstream partition"):
        io.current_version(folder, "tiled crops")
    assert not io.has_version(folder)


def test_storage_write_bytes_failure_leaves_no_file(tmp_path, monkeypatch):
    target = UPath(tmp_path) / "f.bin"

    class Boom(Exception):
        pass

    def broken_rename(self, other):
        raise Boom("disk full")

    monkeypatch.setattr(type(target), "rename", broken_rename)
    with pytest.raises(Boom):
        io.write_bytes(target, b"abc")
    assert list(UPath(tmp_path).iterdir()) == []
