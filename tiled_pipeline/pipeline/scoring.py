"""Normalization, thresholds and metrics of one category, from gathered tile predictions.

Stages, as users of the reference tiled ensemble know them:

1. Pick the statistics images (``stats_source``): the test set itself, a seeded held-out part
   of it (metrics on the rest), or normal images held out from training.
2. ``tile`` normalization: fit min/max/threshold per tile position and normalize tiles before
   merging; ``image``: merge, then fit and normalize the merged outputs; ``none``: merge only.
3. Merge: overlap mean, seam smoothing; image scores both as the mean of tile scores and as the
   maximum of the merged map.
4. Thresholds: per merged ``image`` (adaptive F1) or per ``tile`` position (each tile's own
   threshold, merged masks by majority vote of the covering tiles).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from tiled_pipeline.evaluation import (
    ReportSetup,
    anomaly_figure,
    compare_with_paper,
    evaluate,
    fit_stats,
    fit_tile_stats,
    image_scores,
    normalize_maps,
    normalize_scores,
    normalize_tiles,
    report_markdown,
    split_for_stats,
    tile_decisions,
)
from tiled_pipeline.experiments import Experiment
from tiled_pipeline.pipeline.crops import load_working_image, load_working_mask
from tiled_pipeline.pipeline.gather import GatheredTiles
from tiled_pipeline.pipeline.merging import merge_maps, merge_votes
from tiled_pipeline.tiling import tile

logger = logging.getLogger(__name__)

METHODS = ("tile_mean", "map_max")


@dataclass(frozen=True)
class MergedCategory:
    """Merged, normalized outputs of the evaluated images of one category.

    Attributes:
        maps: (N, H, W) float32 merged maps (normalized to [0, 1] unless normalization is none).
        masks: (N, H, W) bool ground truth at the working resolution.
        scores: one row per image: image_path, label, defect_type, mask_path, tile_mean,
            map_max, and predicted_label when thresholds are per tile.
        predicted_masks: (N, H, W) bool decisions of the tile threshold stage, else None.
        stats: thresholds and how they were fitted (plain data, saved as JSON).
    """

    maps: np.ndarray
    masks: np.ndarray
    scores: pd.DataFrame
    predicted_masks: np.ndarray | None
    stats: dict[str, Any]


def working_masks(images: pd.DataFrame, size: int) -> np.ndarray:
    """(N, H, W) bool masks of ``images`` at the working resolution."""
    masks = [load_working_mask(path, size).numpy() for path in images["mask_path"]]
    return np.stack(masks) if masks else np.zeros((0, size, size), dtype=bool)


def tile_masks(masks: np.ndarray, experiment: Experiment) -> np.ndarray:
    """(N, H, W) bool -> (N, T, th, tw) bool crops of every position."""
    tiles = tile(torch.from_numpy(masks)[:, None], experiment.plan)  # -> (N, T, 1, th, tw)
    return tiles[:, :, 0].numpy()


def split_images(experiment: Experiment, test: GatheredTiles, holdout: GatheredTiles):
    """(statistics images, evaluated images) as GatheredTiles, by ``stats_source``."""
    options = experiment.evaluation
    if options.stats_source == "heldout_normal":
        if len(holdout.images) == 0:
            raise ValueError("stats_source='heldout_normal' but no train image was held out")
        return holdout, test
    strata = test.images["defect_type"].to_numpy()
    split = split_for_stats(
        options.stats_source,
        len(test.images),
        0,
        fraction=options.heldout_fraction,
        seed=experiment.seed,
        strata=strata,
    )
    return subset(test, split.fit_indices), subset(test, split.eval_indices)


def subset(tiles: GatheredTiles, index: np.ndarray) -> GatheredTiles:
    """The images at ``index``."""
    images = tiles.images.iloc[index].reset_index(drop=True)
    return GatheredTiles(images=images, maps=tiles.maps[index], scores=tiles.scores[index])


def merged_outputs(experiment: Experiment, tiles: GatheredTiles):
    """(maps (N, H, W), {method: (N,) scores}) of gathered tiles."""
    merge = experiment.merge
    band = merge.seam_band if merge.seam_smoothing else None
    maps = merge_maps(tiles.maps, experiment.plan, band, merge.seam_sigma)
    return maps, image_scores(tiles.scores, maps)


def merge_category(
    experiment: Experiment, test: GatheredTiles, holdout: GatheredTiles
) -> MergedCategory:
    """Normalize, merge and threshold one category's predictions (see module docstring)."""
    options = experiment.evaluation
    size = experiment.plan.image_size[0]
    fit_set, eval_set = split_images(experiment, test, holdout)
    fit_masks = working_masks(fit_set.images, size)
    fit_labels = fit_set.images["label"].to_numpy()
    stats: dict[str, Any] = {
        "normalization": options.normalization,
        "threshold": options.threshold,
        "stats_source": options.stats_source,
        "n_stats_images": len(fit_set.images),
    }
    tile_stats = None
    if options.normalization == "tile" or options.threshold == "tile":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tile_stats = fit_tile_stats(
                fit_set.scores, fit_labels, fit_set.maps, tile_masks(fit_masks, experiment)
            )
        stats["warnings"] = sorted({str(w.message) for w in caught})
    if options.normalization == "tile":
        fit_set = normalized_tiles(fit_set, tile_stats)
        eval_set = normalized_tiles(eval_set, tile_stats)
    maps, scores = merged_outputs(experiment, eval_set)
    thresholds = {m: 0.5 for m in METHODS}
    pixel_threshold = 0.5
    if options.normalization != "tile":
        fit_maps, fit_scores = merged_outputs(experiment, fit_set)
        fitted = {m: fit_stats(fit_scores[m], fit_labels, fit_maps, fit_masks) for m in METHODS}
        if options.normalization == "image":
            scores = {m: normalize_scores(scores[m], fitted[m]) for m in METHODS}
            maps = normalize_maps(maps, fitted["map_max"])
        else:
            thresholds = {m: fitted[m].image_threshold for m in METHODS}
            pixel_threshold = fitted["map_max"].pixel_threshold
    stats.update(image_thresholds=thresholds, pixel_threshold=pixel_threshold)
    table = eval_set.images.copy()
    for method in METHODS:
        table[method] = scores[method].astype(np.float32)
    predicted_masks = None
    if options.threshold == "tile":
        predicted_masks, table["predicted_label"] = tile_threshold_decisions(
            experiment, eval_set, tile_stats
        )
    return MergedCategory(
        maps=maps.astype(np.float32),
        masks=working_masks(eval_set.images, size),
        scores=table,
        predicted_masks=predicted_masks,
        stats=stats,
    )


def normalized_tiles(tiles: GatheredTiles, tile_stats) -> GatheredTiles:
    """Tiles normalized per position with their own statistics."""
    scores, maps = normalize_tiles(tiles.scores, tiles.maps, tile_stats)
    return GatheredTiles(images=tiles.images, maps=maps, scores=scores)


def tile_threshold_decisions(experiment: Experiment, tiles: GatheredTiles, tile_stats):
    """Per-tile thresholds applied to raw tile outputs: (masks (N, H, W), labels (N,))."""
    image_t = np.array([s.image_threshold for s in tile_stats])
    pixel_t = np.array([s.pixel_threshold for s in tile_stats])
    labels, masks = tile_decisions(tiles.scores, tiles.maps, image_t, pixel_t)
    return merge_votes(masks, experiment.plan), labels


@dataclass(frozen=True)
class CategoryReport:
    """Metric table, markdown summary, figure and the warnings of one category."""

    table: pd.DataFrame
    markdown: str
    figure_png: bytes
    warnings: list[str]


def evaluate_category(
    experiment: Experiment,
    maps: np.ndarray,
    masks: np.ndarray,
    scores: pd.DataFrame,
    stats: dict[str, Any],
    predicted_masks: np.ndarray | None,
    title: str,
) -> CategoryReport:
    """Metrics per defect type and image-score method, with a figure of the extremes."""
    options = experiment.evaluation
    labels = scores["label"].to_numpy()
    setup = ReportSetup(
        normalization_stage=options.normalization,
        threshold_stage=options.threshold,
        stats_source=options.stats_source,
    )
    tile_stage = options.threshold == "tile"
    table = evaluate(
        labels,
        {m: scores[m].to_numpy() for m in METHODS},
        maps,
        masks,
        scores["defect_type"].to_numpy(),
        image_thresholds=None if tile_stage else stats["image_thresholds"],
        pixel_threshold=None if tile_stage else stats["pixel_threshold"],
        setup=setup,
        predicted_labels=scores["predicted_label"].to_numpy() if tile_stage else None,
        predicted_masks=predicted_masks if tile_stage else None,
    )
    notes = sorted({w for cell in table["warnings"] for w in cell.split("; ") if w})
    notes += list(stats.get("warnings", []))
    figure = category_figure(experiment, maps, masks, scores, stats, title)
    return CategoryReport(
        table=table,
        markdown=report_markdown(table, title=title),
        figure_png=figure,
        warnings=notes,
    )


def category_figure(
    experiment: Experiment,
    maps: np.ndarray,
    masks: np.ndarray,
    scores: pd.DataFrame,
    stats: dict[str, Any],
    title: str,
) -> bytes:
    """PNG of the most and least anomalous images (only those are read from storage)."""
    k = experiment.evaluation.figure_images
    values = scores["map_max"].to_numpy()
    order = np.argsort(-values, kind="stable")
    chosen = np.unique(np.concatenate([order[:k], order[-k:]])) if len(order) else order
    size = experiment.plan.image_size[0]
    images = np.stack(
        [
            load_working_image(scores["image_path"].iloc[i], size).permute(1, 2, 0).numpy()
            for i in chosen
        ]
    )  # each (3, H, W) -> (H, W, 3)
    return anomaly_figure(
        images,
        masks[chosen],
        maps[chosen],
        values[chosen],
        threshold=float(stats["pixel_threshold"]) if stats["threshold"] == "image" else 0.5,
        k=k,
        title=title,
    )


def summarize(reports: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Overall rows of every report beside the paper's numbers, and a markdown table."""
    overall = reports[(reports["defect_type"] == "all") & (reports["image_score"] == "map_max")]
    ours = overall[["dataset", "model", "setup", "category", "image_auroc", "pixel_aupro"]]
    compared = compare_with_paper(ours.reset_index(drop=True))
    compared.insert(0, "experiment", overall["experiment"].to_numpy())
    extra = overall[["pixel_auroc", "image_f1", "pixel_f1"]].reset_index(drop=True)
    table = pd.concat([compared, extra], axis=1)
    return table, table.to_markdown(index=False, floatfmt=".3f")
