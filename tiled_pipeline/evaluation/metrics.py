"""Image and pixel AUROC and F1.

Conventions shared by every metric here:

- Higher scores are more anomalous; a sample is predicted anomalous when its score is at or
  above the threshold (``score >= threshold``).
- Undefined values are NaN with a :class:`MetricUndefinedWarning`, never an exception: AUROC
  needs both classes; F1 needs at least one anomalous sample (else recall has no meaning).
- Ties: AUROC counts a tied (anomalous, normal) pair as one half, so constant scores give 0.5
  (the same value as ``sklearn.metrics.roc_auc_score``).

Pixel AUPRO lives in :mod:`tiled_pipeline.evaluation.aupro`.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from tiled_pipeline.evaluation._validation import check_labels, check_scores, undefined
from tiled_pipeline.evaluation.pixels import PixelScores


def image_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of image scores (``sklearn.metrics.roc_auc_score``).

    Args:
        labels: (N,) bool or 0/1, True = anomalous image.
        scores: (N,) image anomaly scores.

    Returns:
        AUROC in [0, 1]; NaN with a warning when all images have the same label.
    """
    truth = check_labels(labels)
    values = check_scores(scores, truth.size)
    n_anomalous = int(truth.sum())
    if n_anomalous in (0, truth.size):
        kind = "anomalous" if n_anomalous == 0 else "normal"
        return undefined("image AUROC", f"no {kind} images among {truth.size}")
    return float(roc_auc_score(truth, values))


def binary_f1(
    truth: np.ndarray,
    predicted: np.ndarray,
    metric: str = "F1",
    positives: str = "anomalous samples",
) -> float:
    """F1 of boolean predictions against boolean ground truth of any (equal) shape.

    ``F1 = 2 TP / (2 TP + FP + FN)``; 0 when nothing anomalous is predicted. ``metric`` and
    ``positives`` name the metric and the positive samples in the warning.

    Returns:
        F1 in [0, 1]; NaN with a warning when ``truth`` holds no anomalous sample.
    """
    truth = np.asarray(truth, dtype=bool)
    predicted = np.asarray(predicted, dtype=bool)
    if truth.shape != predicted.shape:
        raise ValueError(
            f"predictions of shape {predicted.shape} do not match ground truth {truth.shape}"
        )
    n_true = np.count_nonzero(truth)
    n_tp = np.count_nonzero(truth & predicted)
    n_fp = np.count_nonzero(predicted) - n_tp
    return _f1_from_counts(n_tp, n_fp, n_true - n_tp, metric, positives)


def _f1_from_counts(n_tp: int, n_fp: int, n_fn: int, metric: str, positives: str) -> float:
    """F1 from confusion counts; NaN with a warning when there are no positives (TP + FN = 0)."""
    if n_tp + n_fn == 0:
        return undefined(metric, f"no {positives}")
    return float(2 * n_tp / (2 * n_tp + n_fp + n_fn))


def image_f1(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    """F1 of image predictions ``scores >= threshold``.

    Args:
        labels: (N,) bool or 0/1, True = anomalous image.
        scores: (N,) image anomaly scores.
        threshold: decision threshold in score units.

    Returns:
        F1 in [0, 1]; NaN with a warning when no image is anomalous.
    """
    truth = check_labels(labels)
    values = check_scores(scores, truth.size)
    return binary_f1(truth, values >= threshold, "image F1", "anomalous images")


def pixel_auroc(pixels: PixelScores) -> float:
    """Area under the pixel-level ROC curve, exact, over all pixels of all images.

    Computed as the Mann-Whitney statistic on the sorted scores: for each defect pixel, the
    normal pixels scoring lower count 1 and those scoring equal count 1/2. Equal to
    ``roc_auc_score(masks.ravel(), maps.ravel())`` without its per-pixel memory.

    Returns:
        AUROC in [0, 1]; NaN with a warning when there are no defect or no normal pixels.
    """
    if pixels.n_positive == 0 or pixels.n_negative == 0:
        kind = "defect" if pixels.n_positive == 0 else "normal"
        return undefined("pixel AUROC", f"no {kind} pixels in the masks")
    below = np.searchsorted(pixels.negatives, pixels.positives, side="left")
    at_or_below = np.searchsorted(pixels.negatives, pixels.positives, side="right")
    wins = below.sum(dtype=np.float64) + 0.5 * (at_or_below - below).sum(dtype=np.float64)
    return float(wins / (float(pixels.n_positive) * float(pixels.n_negative)))


def pixel_f1(pixels: PixelScores, threshold: float) -> float:
    """F1 of the pixel predictions ``map >= threshold`` over all pixels of all images.

    Returns:
        F1 in [0, 1]; NaN with a warning when the masks hold no defect pixel.
    """
    n_fp, n_tp = pixels.counts_at_or_above(threshold)
    n_fn = pixels.n_positive - int(n_tp)
    return _f1_from_counts(int(n_tp), int(n_fp), n_fn, "pixel F1", "defect pixels in the masks")
