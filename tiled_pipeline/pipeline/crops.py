"""Working-resolution images and the tile crops that one tile model sees."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from tiled_pipeline.data import read_image, read_mask
from tiled_pipeline.experiments import Experiment
from tiled_pipeline.tiling import TilePlan, tile_at

logger = logging.getLogger(__name__)

SPLITS = ("train", "holdout", "test")


@dataclass(frozen=True)
class Crops:
    """The crops of some tile positions for every image of a category.

    Attributes:
        index: one row per image: split (train | holdout | test), image_path, label,
            defect_type, mask_path; rows of each split in manifest order.
        images: split -> (N, P, th, tw, 3) uint8 crops, P = positions of this tile key.
        masks: split -> (N, P, th, tw) bool ground-truth crops.
    """

    index: pd.DataFrame
    images: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]


def assign_splits(manifest: pd.DataFrame, holdout_fraction: float, seed: int) -> pd.DataFrame:
    """Copy of the manifest with ``split`` train | holdout | test.

    ``holdout_fraction`` of the train images (seeded, the same for every tile of a category) are
    held out from fitting, for normalization statistics on normal images; 0 holds none out.
    """
    if manifest.empty or not (manifest["split"] == "train").any():
        raise ValueError("the manifest has no train images; the category needs train/good images")
    table = manifest.reset_index(drop=True).copy()
    train = np.flatnonzero(table["split"].to_numpy() == "train")
    n_holdout = round(holdout_fraction * len(train))
    if n_holdout >= len(train):
        raise ValueError(
            f"heldout_fraction={holdout_fraction} leaves no train image out of {len(train)}; "
            "lower it"
        )
    held = np.random.default_rng(seed).choice(train, size=n_holdout, replace=False)
    table.loc[held, "split"] = "holdout"
    return table


def load_working_image(path: str, size: int) -> torch.Tensor:
    """An image resized (bilinear, antialiased) to ``size`` x ``size``: (3, H, W) uint8."""
    image = Image.fromarray(read_image(path)).resize((size, size), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)


def load_working_mask(path: str, size: int) -> torch.Tensor:
    """A mask resized to ``size`` x ``size``: (H, W) bool; empty when ``path`` is "".

    A working pixel counts as defective when any part of it is (box filter > 0), so that thin
    defects survive downscaling in the ground truth as well.
    """
    if not path:
        return torch.zeros(size, size, dtype=torch.bool)
    mask = Image.fromarray(read_mask(path).astype(np.uint8) * 255)
    resized = np.asarray(mask.resize((size, size), Image.Resampling.BOX))
    return torch.from_numpy(resized > 0)


def crop_split(rows: pd.DataFrame, plan: TilePlan, positions: tuple[int, ...], desc: str):
    """Crops of ``positions`` for ``rows``: images (N, P, th, tw, 3) uint8, masks (N, P, th, tw)."""
    th, tw = plan.tile_size
    size = plan.image_size[0]
    # TODO: every tile partition decodes and resizes each full-resolution image of its category
    # again (9 times for ENS9); a per-category cache of working-resolution images would save it.
    images = np.zeros((len(rows), len(positions), th, tw, 3), dtype=np.uint8)
    masks = np.zeros((len(rows), len(positions), th, tw), dtype=bool)
    for i, row in enumerate(tqdm(list(rows.itertuples()), desc=desc, leave=False)):
        image = load_working_image(row.image_path, size)[None]  # (1, 3, H, W)
        mask = load_working_mask(row.mask_path, size)[None, None]  # (1, 1, H, W)
        for p, position in enumerate(positions):
            crop = tile_at(image, plan, position)[0]  # (3, th, tw)
            images[i, p] = crop.permute(1, 2, 0).numpy()  # (3, th, tw) -> (th, tw, 3)
            masks[i, p] = tile_at(mask, plan, position)[0, 0].numpy()
    return images, masks


def make_crops(
    manifest: pd.DataFrame,
    plan: TilePlan,
    positions: tuple[int, ...],
    holdout_fraction: float,
    seed: int,
) -> Crops:
    """Resize every image of a category to the plan's size and cut the crops of ``positions``.

    Args:
        manifest: the category's manifest (see ``tiled_pipeline.data``).
        plan: the tile plan; its ``image_size`` must be square.
        positions: row-major tile indices this tile key covers (one for an ensemble member).
        holdout_fraction: share of train images held out from fitting (0 for none).
        seed: seed of the holdout choice.
    """
    if plan.image_size[0] != plan.image_size[1]:
        raise ValueError(f"working images must be square, got {plan.image_size}")
    index = assign_splits(manifest, holdout_fraction, seed)
    images, masks = {}, {}
    for split in SPLITS:
        rows = index[index["split"] == split]
        images[split], masks[split] = crop_split(rows, plan, positions, f"crops {split}")
    ordered = pd.concat([index[index["split"] == s] for s in SPLITS], ignore_index=True)
    columns = ["split", "image_path", "label", "defect_type", "mask_path"]
    return Crops(index=ordered[columns], images=images, masks=masks)


def tile_key_crops(experiment: Experiment, manifest: pd.DataFrame, tile: str) -> Crops:
    """The crops that the model of ``tile`` in ``experiment`` fits on and scores."""
    return make_crops(
        manifest,
        experiment.plan,
        experiment.positions(tile),
        experiment.train_holdout_fraction,
        experiment.seed,
    )
