"""Image and pixel AUROC / F1 against scikit-learn, and their edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from tiled_pipeline.evaluation import (
    MetricUndefinedWarning,
    PixelScores,
    binary_f1,
    image_auroc,
    image_f1,
    pixel_auroc,
    pixel_f1,
)


def _maps_and_masks(seed: int, dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    masks = rng.random((4, 9, 11)) < 0.15
    maps = (rng.integers(0, 8, masks.shape) + 3 * masks * rng.random(masks.shape)) / 4
    return maps.astype(dtype), masks


@pytest.mark.parametrize("seed", range(5))
def test_image_auroc_matches_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.random(40) < 0.4
    scores = np.round(rng.random(40) + 0.3 * labels, 1)  # many ties
    assert image_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))


@pytest.mark.parametrize(("labels", "kind"), [([0, 0, 0], "anomalous"), ([1, 1], "normal")])
def test_image_auroc_single_class_nan_with_warning(labels: list[int], kind: str) -> None:
    with pytest.warns(MetricUndefinedWarning, match=f"image AUROC undefined .no {kind} images"):
        assert np.isnan(image_auroc(np.array(labels), np.arange(len(labels), dtype=float)))


def test_image_auroc_constant_scores_is_half() -> None:
    assert image_auroc(np.array([0, 1, 0, 1, 1]), np.full(5, 3.0)) == 0.5


@pytest.mark.parametrize(("seed", "dtype"), [(0, np.float32), (1, np.float64), (2, np.float16)])
def test_pixel_auroc_matches_sklearn(seed: int, dtype: type) -> None:
    maps, masks = _maps_and_masks(seed, dtype)
    expected = roc_auc_score(masks.ravel(), maps.astype(np.float32).ravel())
    assert pixel_auroc(PixelScores.from_maps(maps, masks)) == pytest.approx(expected, abs=1e-12)


def test_pixel_auroc_constant_maps_is_half() -> None:
    _, masks = _maps_and_masks(3)
    assert pixel_auroc(PixelScores.from_maps(np.ones(masks.shape), masks)) == 0.5


@pytest.mark.parametrize(("fill", "kind"), [(False, "defect"), (True, "normal")])
def test_pixel_auroc_one_class_masks_nan_with_warning(fill: bool, kind: str) -> None:
    maps, _ = _maps_and_masks(4)
    pixels = PixelScores.from_maps(maps, np.full(maps.shape, fill))
    with pytest.warns(MetricUndefinedWarning, match=f"no {kind} pixels"):
        assert np.isnan(pixel_auroc(pixels))


@pytest.mark.parametrize("threshold", [-1.0, 0.4, 0.75, 1.0, 5.0])
def test_image_f1_matches_sklearn(threshold: float) -> None:
    rng = np.random.default_rng(5)
    labels = rng.random(30) < 0.5
    scores = np.round(rng.random(30) + 0.4 * labels, 2)
    expected = f1_score(labels, scores >= threshold, zero_division=0.0)
    assert image_f1(labels, scores, threshold) == pytest.approx(expected)


@pytest.mark.parametrize("threshold", [0.0, 0.5, 1.25, 1.75, 9.0])
def test_pixel_f1_matches_sklearn(threshold: float) -> None:
    maps, masks = _maps_and_masks(6)
    expected = f1_score(masks.ravel(), maps.ravel() >= threshold, zero_division=0.0)
    assert pixel_f1(PixelScores.from_maps(maps, masks), threshold) == pytest.approx(expected)


def test_f1_without_anomalies_nan_with_warning() -> None:
    with pytest.warns(MetricUndefinedWarning, match="image F1 undefined .no anomalous images"):
        assert np.isnan(image_f1(np.zeros(4, bool), np.arange(4.0), 1.0))
    pixels = PixelScores.from_maps(np.ones((1, 3, 3)), np.zeros((1, 3, 3), bool))
    with pytest.warns(MetricUndefinedWarning, match="pixel F1 undefined .no defect pixels"):
        assert np.isnan(pixel_f1(pixels, 0.5))


def test_binary_f1_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match=r"predictions of shape \(3,\) do not match"):
        binary_f1(np.ones(4, bool), np.ones(3, bool))


def test_pixel_scores_sorted_counts_match_direct_counts() -> None:
    maps, masks = _maps_and_masks(7)
    pixels = PixelScores.from_maps(maps, masks)
    assert np.all(np.diff(pixels.negatives) >= 0) and np.all(np.diff(pixels.positives) >= 0)
    for t in (0.0, 0.5, 1.0, 2.2):
        n_fp, n_tp = pixels.counts_at_or_above(t)
        assert n_fp == np.count_nonzero((maps >= t) & ~masks)
        assert n_tp == np.count_nonzero((maps >= t) & masks)


def test_pixel_scores_indices_select_images() -> None:
    maps, masks = _maps_and_masks(8)
    subset = PixelScores.from_maps(maps, masks, indices=np.array([1, 3]))
    direct = PixelScores.from_maps(maps[[1, 3]], masks[[1, 3]])
    np.testing.assert_array_equal(subset.negatives, direct.negatives)
    assert subset.n_regions == direct.n_regions


def test_metric_inputs_are_validated_at_the_boundary() -> None:
    with pytest.raises(ValueError, match="labels must hold 0/1 or bool"):
        image_auroc(np.array([0, 2, 1]), np.zeros(3))
    with pytest.raises(ValueError, match=r"scores must have shape \(3,\)"):
        image_auroc(np.array([0, 1, 1]), np.zeros(4))
    with pytest.raises(ValueError, match="scores holds 1 NaN/inf"):
        image_auroc(np.array([0, 1, 1]), np.array([0.1, np.nan, 0.3]))
    with pytest.raises(ValueError, match="connectivity must be 4 or 8"):
        PixelScores.from_maps(np.zeros((1, 2, 2)), np.zeros((1, 2, 2), bool), connectivity=6)
    with pytest.raises(ValueError, match=r"masks must have the maps' shape \(1, 2, 2\)"):
        PixelScores.from_maps(np.zeros((1, 2, 2)), np.zeros((1, 2, 3), bool))
