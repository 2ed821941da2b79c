"""Image scores from tile outputs: the mean of tile scores or the maximum of the merged map."""

from __future__ import annotations

from typing import Literal

import numpy as np

from tiled_pipeline.evaluation._validation import check_maps

ScoreMethod = Literal["tile_mean", "map_max"]


def image_scores(tile_scores: np.ndarray, maps: np.ndarray) -> dict[ScoreMethod, np.ndarray]:
    """Both image-score merges of one set of images.

    Args:
        tile_scores: (N, T) tile scores.
        maps: (N, H, W) merged anomaly maps of the same images.

    Returns:
        ``{"tile_mean": (N,), "map_max": (N,)}`` float64: the mean over the T tile scores (the
        reference implementation's image score) and the maximum of each merged map.
    """
    merged = check_maps(maps)
    scores = np.asarray(tile_scores, dtype=np.float64)
    N = merged.shape[0]
    if scores.ndim != 2 or scores.shape[0] != N or scores.shape[1] == 0:
        raise ValueError(
            f"tile_scores must have shape (N, T) with N={N} images as in maps, got {scores.shape}"
        )
    return {
        "tile_mean": scores.mean(axis=1),
        "map_max": merged.reshape(N, -1).max(axis=1).astype(np.float64),  # (N, H, W) -> (N, H*W)
    }
