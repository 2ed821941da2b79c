"""Min-max normalization with the threshold mapped to 0.5, at the tile or the image stage.

``normalized = clip((x - threshold) / (max - min) + 0.5, 0, 1)`` with min, max and threshold
fitted on the statistics images (:func:`fit_stats`); a fitted range of zero is taken as 1, so a
constant fit gives no NaN. Normalized scores and maps share one decision threshold, 0.5.

Stages, as users of the reference tiled ensemble know them:

- ``tile``: :func:`fit_tile_stats` on each tile position's outputs, :func:`normalize_tiles`,
  then merge; decisions at 0.5.
- ``image``: merge, :func:`fit_stats` on the merged outputs, :func:`normalize_scores` and
  :func:`normalize_maps`; decisions at 0.5.
- ``none``: merge; decisions at the raw thresholds of :func:`fit_stats` on the merged outputs.

:func:`decision_thresholds` gives the (image, pixel) thresholds of each case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from tiled_pipeline.evaluation._validation import check_labels, check_maps, check_scores
from tiled_pipeline.evaluation.pixels import PixelScores
from tiled_pipeline.evaluation.thresholds import adaptive_f1_threshold, pixel_adaptive_f1_threshold

NormalizationStage = Literal["tile", "image", "none"]


@dataclass(frozen=True)
class NormalizationStats:
    """Min, max and adaptive-F1 threshold of image scores and of pixel maps (score units)."""

    image_min: float
    image_max: float
    image_threshold: float
    pixel_min: float
    pixel_max: float
    pixel_threshold: float


def fit_stats(
    scores: np.ndarray, labels: np.ndarray, maps: np.ndarray, masks: np.ndarray
) -> NormalizationStats:
    """Fit normalization statistics on the statistics images.

    Args:
        scores: (N,) image scores.
        labels: (N,) bool or 0/1, True = anomalous image.
        maps: (N, H, W) anomaly maps.
        masks: (N, H, W) bool ground truth.

    Returns:
        The stats. Without anomalous images (or defect pixels) the thresholds fall back to the
        highest score, with a warning (see :mod:`tiled_pipeline.evaluation.thresholds`).
    """
    truth = check_labels(labels)
    values = check_scores(scores, truth.size)
    maps = check_maps(maps)
    if maps.shape[0] != truth.size:
        raise ValueError(f"maps hold {maps.shape[0]} images but labels {truth.size}")
    pixels = PixelScores.from_maps(maps, masks)
    return NormalizationStats(
        image_min=float(values.min()),
        image_max=float(values.max()),
        image_threshold=adaptive_f1_threshold(truth, values),
        pixel_min=float(maps.min()),
        pixel_max=float(maps.max()),
        pixel_threshold=pixel_adaptive_f1_threshold(pixels),
    )


def min_max_normalize(
    values: np.ndarray, minimum: float, maximum: float, threshold: float
) -> np.ndarray:
    """``clip((values - threshold) / (maximum - minimum) + 0.5, 0, 1)`` as float32.

    A zero range (``maximum == minimum``) is taken as 1. Values of any shape.
    """
    spread = maximum - minimum
    spread = spread if spread > 0 else 1.0
    normalized = (np.asarray(values, dtype=np.float32) - np.float32(threshold)) / np.float32(spread)
    return np.clip(normalized + np.float32(0.5), 0.0, 1.0)


def normalize_scores(scores: np.ndarray, stats: NormalizationStats) -> np.ndarray:
    """Image scores of any shape, normalized with the image statistics."""
    return min_max_normalize(scores, stats.image_min, stats.image_max, stats.image_threshold)


def normalize_maps(maps: np.ndarray, stats: NormalizationStats) -> np.ndarray:
    """Anomaly maps of any shape, normalized with the pixel statistics."""
    return min_max_normalize(maps, stats.pixel_min, stats.pixel_max, stats.pixel_threshold)


def fit_tile_stats(
    tile_scores: np.ndarray,
    labels: np.ndarray,
    tile_maps: np.ndarray,
    tile_masks: np.ndarray,
) -> tuple[NormalizationStats, ...]:
    """Fit one :class:`NormalizationStats` per tile position (``tile`` stage).

    A tile takes its image's label, as in the reference implementation, where each tile model
    fits its statistics on tiles labelled like their image; the pixel threshold uses the tile's
    own crop of the mask.

    Args:
        tile_scores: (N, T) tile scores.
        labels: (N,) image labels.
        tile_maps: (N, T, th, tw) tile maps.
        tile_masks: (N, T, th, tw) bool tile crops of the masks.

    Returns:
        T stats, in tile order.
    """
    maps = check_maps(tile_maps, "tile_maps", ndim=4)
    scores = np.asarray(tile_scores)
    if scores.shape != maps.shape[:2]:
        raise ValueError(f"tile_scores must have shape {maps.shape[:2]}, got {scores.shape}")
    masks = np.asarray(tile_masks)
    return tuple(
        fit_stats(scores[:, t], labels, maps[:, t], masks[:, t]) for t in range(maps.shape[1])
    )


def normalize_tiles(
    tile_scores: np.ndarray,
    tile_maps: np.ndarray,
    stats: tuple[NormalizationStats, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Normalize each tile position with its own stats (``tile`` stage, before merging).

    Args:
        tile_scores: (N, T) tile scores.
        tile_maps: (N, T, th, tw) tile maps.
        stats: T stats from :func:`fit_tile_stats`.

    Returns:
        (scores (N, T), maps (N, T, th, tw)), float32 in [0, 1].
    """
    maps = check_maps(tile_maps, "tile_maps", ndim=4)
    scores = np.asarray(tile_scores)
    if len(stats) != maps.shape[1] or scores.shape != maps.shape[:2]:
        raise ValueError(
            f"need tile_scores of shape {maps.shape[:2]} and {maps.shape[1]} stats, "
            f"got {scores.shape} and {len(stats)}; fit them with fit_tile_stats"
        )
    out_scores = np.stack([normalize_scores(scores[:, t], s) for t, s in enumerate(stats)], 1)
    out_maps = np.stack([normalize_maps(maps[:, t], s) for t, s in enumerate(stats)], 1)
    return out_scores, out_maps


def decision_thresholds(
    stage: NormalizationStage, stats: NormalizationStats | None
) -> tuple[float, float]:
    """The (image, pixel) thresholds that decisions on merged outputs use.

    Args:
        stage: the normalization stage.
        stats: for ``none``, the stats fitted on the merged (raw) outputs; ignored otherwise.

    Returns:
        (0.5, 0.5) after normalization; the fitted thresholds for ``none``.
    """
    if stage in ("tile", "image"):
        return 0.5, 0.5
    if stage != "none":
        raise ValueError(f"stage must be 'tile', 'image' or 'none', got {stage!r}")
    if stats is None:
        raise ValueError("stage 'none' needs the stats fitted on the merged outputs, got None")
    return stats.image_threshold, stats.pixel_threshold
