import numpy as np
import pandas as pd
import pytest
from upath import UPath

from tiled_pipeline import storage as io
from tiled_pipeline.pipeline.gather import gather_split


@pytest.fixture
def experiment(make_experiment):
    return make_experiment


def write_tile(folder: UPath, position: int, paths: list[str]) -> None:
    n = len(paths)
    maps = np.full((n, 1, 4, 4), position, dtype=np.float16)
    io.save_array(folder / "test_maps.npy", maps)
    table = pd.DataFrame(
        {
            "split": "test",
            "image_path": paths,
            "label": 0,
            "defect_type": "good",
            "mask_path": "",
            "position": position,
            "score": np.arange(n, dtype=np.float32) + position,
        }
    )
    io.save_table(folder / "scores.parquet", table)


def test_gather_places_each_tile_at_its_position(experiment, tmp_path):
    exp = experiment()
    root = UPath(tmp_path)
    for t, key in enumerate(exp.tile_keys):
        write_tile(root / key, t, ["a", "b", "c"])
    gathered = gather_split(exp, "test", lambda key: root / key)
    assert gathered.maps.shape == (3, 4, 4, 4)
    for t in range(4):
        assert (gathered.maps[:, t] == t).all()
        np.testing.assert_array_equal(gathered.scores[:, t], np.arange(3) + t)
    assert list(gathered.images["image_path"]) == ["a", "b", "c"]


def test_gather_refuses_tiles_cut_from_other_images(experiment, tmp_path):
    exp = experiment()
    root = UPath(tmp_path)
    for t, key in enumerate(exp.tile_keys):
        write_tile(root / key, t, ["a", "b", "x" if t == 2 else "c"])
    with pytest.raises(ValueError, match="re-materialize the tile layer"):
        gather_split(exp, "test", lambda key: root / key)
