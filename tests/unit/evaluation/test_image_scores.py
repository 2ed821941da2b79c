"""Image scores merged from tiles: mean of tile scores and maximum of the merged map."""

from __future__ import annotations

import numpy as np
import pytest

from tiled_pipeline.evaluation import image_scores


def test_image_scores_mean_of_tiles_and_max_of_map() -> None:
    tile_scores = np.array([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 0.0, 4.0]])
    maps = np.zeros((2, 3, 3), dtype=np.float16)
    maps[0, 2, 1], maps[1, 0, 0] = 5.0, -1.0
    scores = image_scores(tile_scores, maps)
    np.testing.assert_allclose(scores["tile_mean"], [3.0, 1.0])
    np.testing.assert_allclose(scores["map_max"], [5.0, 0.0])


def test_image_scores_rejects_tile_scores_of_other_images() -> None:
    with pytest.raises(ValueError, match=r"tile_scores must have shape \(N, T\) with N=2"):
        image_scores(np.zeros((3, 4)), np.zeros((2, 5, 5)))
