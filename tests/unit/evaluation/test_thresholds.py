"""Adaptive F1 thresholds against an exhaustive search, and per-tile decisions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from tiled_pipeline.evaluation import (
    MetricUndefinedWarning,
    PixelScores,
    adaptive_f1_threshold,
    pixel_adaptive_f1_threshold,
    tile_decisions,
)


def _best_f1(truth: np.ndarray, scores: np.ndarray) -> float:
    """The highest F1 over every distinct score used as threshold (exhaustive)."""
    return max(f1_score(truth, scores >= t, zero_division=0.0) for t in np.unique(scores))


@pytest.mark.parametrize("seed", range(6))
def test_adaptive_f1_threshold_reaches_the_best_f1(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.random(25) < 0.4
    labels[0] = True
    scores = np.round(rng.random(25) + 0.5 * labels, 1)
    threshold = adaptive_f1_threshold(labels, scores)
    assert threshold in scores
    assert f1_score(labels, scores >= threshold) == pytest.approx(_best_f1(labels, scores))


@pytest.mark.parametrize("seed", range(6))
def test_pixel_adaptive_f1_threshold_reaches_the_best_f1(seed: int) -> None:
    rng = np.random.default_rng(seed)
    masks = rng.random((3, 6, 7)) < 0.2
    masks[0, 0, 0] = True
    maps = ((rng.integers(0, 6, masks.shape) + 2 * masks * rng.random()) / 3).astype(np.float32)
    threshold = pixel_adaptive_f1_threshold(PixelScores.from_maps(maps, masks))
    achieved = f1_score(masks.ravel(), maps.ravel() >= threshold)
    assert achieved == pytest.approx(_best_f1(masks.ravel(), maps.ravel()))


def test_adaptive_thresholds_without_anomalies_fall_back_to_the_highest_score() -> None:
    scores = np.array([0.2, 0.9, 0.4])
    with pytest.warns(MetricUndefinedWarning, match="no anomalous samples, using the highest"):
        assert adaptive_f1_threshold(np.zeros(3, bool), scores) == 0.9
    maps = np.array([[[0.1, 0.7], [0.3, 0.2]]], dtype=np.float32)
    pixels = PixelScores.from_maps(maps, np.zeros(maps.shape, bool))
    with pytest.warns(MetricUndefinedWarning, match="adaptive pixel threshold"):
        assert pixel_adaptive_f1_threshold(pixels) == pytest.approx(0.7)


def test_adaptive_f1_threshold_all_anomalous_takes_the_lowest_score() -> None:
    assert adaptive_f1_threshold(np.ones(3, bool), np.array([0.5, 0.2, 0.8])) == 0.2


def test_tile_decisions_use_each_tile_threshold_and_or_over_tiles() -> None:
    # 2 images, 2 tiles of 1x2 pixels; tile 0 works in units of 1, tile 1 in units of 100.
    tile_scores = np.array([[0.5, 50.0], [0.5, 150.0]])
    tile_maps = np.array([[[[0.2, 0.9]], [[10.0, 90.0]]], [[[0.1, 0.1]], [[200.0, 20.0]]]])
    labels, masks = tile_decisions(tile_scores, tile_maps, np.array([1.0, 100.0]), [0.5, 80.0])
    np.testing.assert_array_equal(labels, [False, True])  # only image 1's tile 1 reaches 100
    expected = np.array([[[[False, True]], [[False, True]]], [[[False, False]], [[True, False]]]])
    np.testing.assert_array_equal(masks, expected)


def test_tile_decisions_reject_thresholds_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match=r"image_thresholds must have shape \(2,\)"):
        tile_decisions(np.zeros((1, 2)), np.zeros((1, 2, 3, 3)), np.zeros(3), np.zeros(2))
