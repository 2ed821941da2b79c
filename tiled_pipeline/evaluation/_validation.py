"""Boundary checks shared by the evaluation modules, and the warning for undefined metrics."""

from __future__ import annotations

import warnings

import numpy as np


class MetricUndefinedWarning(UserWarning):
    """A metric has no defined value for its inputs (e.g. AUROC without anomalous images).

    The metric returns NaN instead of raising; :func:`~tiled_pipeline.evaluation.evaluate` records
    the message in the report's ``warnings`` column.
    """


def undefined(metric: str, reason: str) -> float:
    """Warn that ``metric`` is undefined because of ``reason`` and return NaN.

    Messages hold no semicolon: the report joins them with "; ".
    """
    warnings.warn(f"{metric} undefined ({reason})", MetricUndefinedWarning, 2)
    return float("nan")


def check_labels(labels: object, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a (N,) bool array; accepts bool or 0/1 integers, N >= 1."""
    array = np.asarray(labels)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array (N,), got shape {array.shape}")
    if array.dtype != bool and not np.isin(array, (0, 1)).all():
        found = np.unique(array)[:5].tolist()
        raise ValueError(
            f"{name} must hold 0/1 or bool (1 = anomalous), got values {found}; "
            "convert the labels with labels == anomalous_label"
        )
    return array.astype(bool, copy=False)


def check_scores(scores: object, n: int, name: str = "scores") -> np.ndarray:
    """Return ``scores`` as a finite (n,) float64 array."""
    array = np.asarray(scores)
    if array.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the labels, got {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or array.dtype == bool:
        raise TypeError(f"{name} must be a numeric array, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds {np.count_nonzero(~np.isfinite(array))} NaN/inf values")
    return array


def check_maps(maps: object, name: str = "maps", ndim: int = 3) -> np.ndarray:
    """Return ``maps`` as a finite float array of ``ndim`` dims (float16/32/64 kept as given)."""
    array = np.asarray(maps)
    if array.ndim != ndim or array.size == 0:
        raise ValueError(f"{name} must be a non-empty {ndim}-D array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds {np.count_nonzero(~np.isfinite(array))} NaN/inf values")
    return array


def check_masks(masks: object, shape: tuple[int, ...], name: str = "masks") -> np.ndarray:
    """Return ``masks`` as a bool array of ``shape``; accepts bool or 0/1 integers."""
    array = np.asarray(masks)
    if array.shape != shape:
        raise ValueError(f"{name} must have the maps' shape {shape}, got {array.shape}")
    if array.dtype != bool:
        if array.min() < 0 or array.max() > 1:
            raise ValueError(
                f"{name} must hold 0/1 or bool (1 = defect pixel); binarize with masks > 0"
            )
        array = array.astype(bool)
    return array
