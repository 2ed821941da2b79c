"""Gather the per-tile predictions of one category into arrays over all positions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from upath import UPath

from tiled_pipeline import storage as io
from tiled_pipeline.experiments import Experiment


@dataclass(frozen=True)
class GatheredTiles:
    """Every position's predictions for the images of one split.

    Attributes:
        images: one row per image (image_path, label, defect_type), in crop order.
        maps: (N, T, th, tw) float32 tile maps in the plan's row-major order.
        scores: (N, T) float32 tile scores.
    """

    images: pd.DataFrame
    maps: np.ndarray
    scores: np.ndarray


def gather_split(
    experiment: Experiment, split: str, version_of: Callable[[str], UPath]
) -> GatheredTiles:
    """Collect ``split`` predictions of every tile key; ``version_of(tile)`` gives its folder."""
    plan = experiment.plan
    maps = scores = None
    images = None
    for tile in experiment.tile_keys:
        folder = version_of(tile)
        tile_maps = io.load_array(folder / f"{split}_maps.npy")  # (N, P, th, tw)
        table = io.load_table(folder / "scores.parquet")
        table = table[table["split"] == split]
        N = tile_maps.shape[0]
        if maps is None:
            maps = np.zeros((N, plan.n_tiles, *plan.tile_size), dtype=np.float32)
            scores = np.zeros((N, plan.n_tiles), dtype=np.float32)
            first = table[table["position"] == table["position"].min()]
            images = first[["image_path", "label", "defect_type", "mask_path"]].reset_index(
                drop=True
            )
        paths = table.loc[table["position"] == table["position"].min(), "image_path"]
        if tile_maps.shape[0] != len(images) or list(paths) != list(images["image_path"]):
            raise ValueError(
                f"tile {tile} holds other {split} images than the first tile "
                f"({tile_maps.shape[0]} vs {len(images)}); the tiles were cropped from different "
                "manifests: re-materialize the tile layer of this category"
            )
        for p, position in enumerate(experiment.positions(tile)):
            maps[:, position] = tile_maps[:, p]
            scores[:, position] = table.loc[table["position"] == position, "score"].to_numpy()
    return GatheredTiles(images=images, maps=maps, scores=scores)
