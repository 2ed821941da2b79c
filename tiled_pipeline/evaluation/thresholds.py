"""Adaptive F1 thresholds, and decisions per tile for the ``tile`` threshold stage.

Threshold stages, as in the reference tiled ensemble:

- ``image``: one image threshold and one pixel threshold, applied to the merged scores and maps.
- ``tile``: one pair of thresholds per tile position, applied to each tile's own outputs before
  merging (:func:`tile_decisions`); an image is anomalous when any of its tiles is.

A threshold is the score that maximizes F1 on the images its statistics are fitted on; a sample
is predicted anomalous when ``score >= threshold``. Without anomalous samples F1 has no maximum:
the threshold is then the highest score seen, with a :class:`MetricUndefinedWarning` (the
reference implementation's fallback), so that every fitted normal sample but the highest is
predicted normal.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from sklearn.metrics import precision_recall_curve

from tiled_pipeline.evaluation._validation import (
    MetricUndefinedWarning,
    check_labels,
    check_maps,
    check_scores,
)
from tiled_pipeline.evaluation.pixels import PixelScores

ThresholdStage = Literal["tile", "image"]


def _warn_no_anomalies(what: str, fallback: float) -> float:
    """Warn that an adaptive threshold fell back to the highest score, and return it."""
    message = f"adaptive {what} threshold: no anomalous samples, using the highest score"
    warnings.warn(f"{message} ({fallback:.6g})", MetricUndefinedWarning, 3)
    return fallback


def adaptive_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The image threshold maximizing F1 (``sklearn.metrics.precision_recall_curve``).

    Args:
        labels: (N,) bool or 0/1, True = anomalous image.
        scores: (N,) image anomaly scores.

    Returns:
        One of the scores; the lowest of equally good ones. The highest score, with a warning,
        when no image is anomalous.
    """
    truth = check_labels(labels)
    values = check_scores(scores, truth.size)
    if not truth.any():
        return _warn_no_anomalies("image", float(values.max()))
    precision, recall, thresholds = precision_recall_curve(truth, values)
    denominator = precision[:-1] + recall[:-1]  # the last point has no threshold
    f1 = np.divide(
        2 * precision[:-1] * recall[:-1],
        denominator,
        where=denominator > 0,
        out=np.zeros_like(denominator),
    )
    return float(thresholds[int(np.argmax(f1))])


def pixel_adaptive_f1_threshold(pixels: PixelScores) -> float:
    """The pixel threshold maximizing pixel F1 over all pixels of all images.

    Only defect-pixel scores are candidates: moving any threshold up to the next defect score
    keeps the true positives and can only drop false positives, so the maximum is among them.
    Exact, the same optimum as ``precision_recall_curve`` on all pixels.

    Returns:
        A defect-pixel score (float32 precision); the lowest of equally good ones. The highest
        normal score, with a warning, when the masks hold no defect pixel.
    """
    if pixels.n_positive == 0:
        return _warn_no_anomalies("pixel", float(pixels.negatives[-1]))
    candidates = np.unique(pixels.positives)  # ascending
    n_fp, n_tp = pixels.counts_at_or_above(candidates)
    f1 = 2 * n_tp / (n_tp + n_fp + pixels.n_positive)  # 2TP / (2TP + FP + FN)
    return float(candidates[int(np.argmax(f1))])


def tile_decisions(
    tile_scores: np.ndarray,
    tile_maps: np.ndarray,
    image_thresholds: np.ndarray,
    pixel_thresholds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply each tile position's own thresholds to its outputs (``tile`` threshold stage).

    Args:
        tile_scores: (N, T) tile scores.
        tile_maps: (N, T, th, tw) tile anomaly maps.
        image_thresholds: (T,) score threshold of each tile position.
        pixel_thresholds: (T,) map threshold of each tile position.

    Returns:
        (image labels (N,) bool, True when any tile of the image is at or above its threshold;
        tile masks (N, T, th, tw) bool). Merge the tile masks into (N, H, W) predicted masks with
        the tiling module's untile (a pixel covered by several tiles: mean of their 0/1 votes,
        then ``>= 0.5``), and pass both to ``evaluate(predicted_labels=, predicted_masks=)``.
    """
    maps = check_maps(tile_maps, "tile_maps", ndim=4)
    N, T = maps.shape[:2]
    scores = np.asarray(tile_scores, dtype=np.float64)
    image_t = np.asarray(image_thresholds, dtype=np.float64)
    pixel_t = np.asarray(pixel_thresholds, dtype=np.float64)
    for name, array, shape in (
        ("tile_scores", scores, (N, T)),
        ("image_thresholds", image_t, (T,)),
        ("pixel_thresholds", pixel_t, (T,)),
    ):
        if array.shape != shape:
            raise ValueError(
                f"{name} must have shape {shape} for tile maps {maps.shape}, got {array.shape}"
            )
    labels = (scores >= image_t).any(axis=1)  # (N, T) -> (N,)
    masks = maps >= pixel_t[None, :, None, None]  # (T,) -> (1, T, 1, 1)
    return labels, masks
