"""Min-max normalization, its statistics, and the tile versus image stage on two tiles."""

from __future__ import annotations

import numpy as np
import pytest

from tiled_pipeline.evaluation import (
    MetricUndefinedWarning,
    NormalizationStats,
    PixelScores,
    adaptive_f1_threshold,
    decision_thresholds,
    fit_stats,
    fit_tile_stats,
    min_max_normalize,
    normalize_maps,
    normalize_tiles,
    pixel_adaptive_f1_threshold,
    tile_decisions,
)


def test_min_max_normalize_maps_threshold_to_half_and_keeps_order() -> None:
    values = np.array([2.0, 3.0, 4.0, 5.0])
    out = min_max_normalize(values, minimum=2.0, maximum=6.0, threshold=3.0)
    np.testing.assert_allclose(out, [0.25, 0.5, 0.75, 1.0])
    assert out.dtype == np.float32


def test_min_max_normalize_clips_to_the_unit_range() -> None:
    out = min_max_normalize(np.array([-100.0, 0.5, 100.0]), minimum=0.0, maximum=1.0, threshold=0.5)
    np.testing.assert_array_equal(out, [0.0, 0.5, 1.0])


def test_min_max_normalize_zero_range_gives_no_nan() -> None:
    out = min_max_normalize(np.full((2, 2), 3.0), minimum=3.0, maximum=3.0, threshold=3.0)
    np.testing.assert_array_equal(out, np.full((2, 2), 0.5))


def test_fit_stats_holds_ranges_and_adaptive_thresholds() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((6, 5, 5)) < 0.2
    maps = rng.random(masks.shape) + masks
    labels = masks.reshape(6, -1).any(axis=1)
    scores = maps.reshape(6, -1).max(axis=1)
    stats = fit_stats(scores, labels, maps, masks)
    assert (stats.image_min, stats.image_max) == (scores.min(), scores.max())
    assert (stats.pixel_min, stats.pixel_max) == (maps.min(), maps.max())
    assert stats.image_threshold == adaptive_f1_threshold(labels, scores)
    pixel_threshold = pixel_adaptive_f1_threshold(PixelScores.from_maps(maps, masks))
    assert stats.pixel_threshold == pixel_threshold
    normalized = normalize_maps(np.array([stats.pixel_threshold]), stats)
    assert normalized[0] == pytest.approx(0.5)


def test_fit_stats_on_normal_images_only_warns_and_uses_the_highest_scores() -> None:
    maps = np.random.default_rng(1).random((4, 3, 3))
    scores = maps.reshape(4, -1).mean(axis=1)
    with pytest.warns(MetricUndefinedWarning, match="no anomalous samples"):
        stats = fit_stats(scores, np.zeros(4, bool), maps, np.zeros(maps.shape, bool))
    assert stats.image_threshold == scores.max()
    assert stats.pixel_threshold == pytest.approx(maps.max())


def _two_tile_example() -> tuple[np.ndarray, ...]:
    """4 images, 2 tiles of 2x2 side by side; tile 1 outputs 100 times larger values.

    Images 0 and 1 are normal; image 2 has a defect in tile 0, image 3 in tile 1.
    """
    tile_masks = np.zeros((4, 2, 2, 2), dtype=bool)
    tile_masks[2, 0, 0, 0] = tile_masks[3, 1, 1, 1] = True
    base = np.array([[0.1, 0.2], [0.3, 0.2]])
    tile_maps = np.stack([np.stack([base, 100 * base]) for _ in range(4)])  # (N, T, th, tw)
    tile_maps[2, 0, 0, 0] = 0.9
    tile_maps[3, 1, 1, 1] = 90.0
    tile_scores = tile_maps.reshape(4, 2, -1).max(axis=2)  # (N, T, th*tw) -> (N, T)
    labels = np.array([False, False, True, True])
    return tile_scores, labels, tile_maps, tile_masks


def _merge(tile_maps: np.ndarray) -> np.ndarray:
    """Untile the two side-by-side tiles: (N, 2, th, tw) -> (N, th, 2 * tw)."""
    return np.concatenate([tile_maps[:, 0], tile_maps[:, 1]], axis=2)


def test_tile_stage_maps_each_tile_threshold_to_half() -> None:
    tile_scores, labels, tile_maps, tile_masks = _two_tile_example()
    stats = fit_tile_stats(tile_scores, labels, tile_maps, tile_masks)
    assert len(stats) == 2 and stats[1].pixel_threshold == pytest.approx(90.0)
    thresholds = np.array([[[[s.pixel_threshold]] for s in stats]]).reshape(1, 2, 1, 1)
    _, normalized = normalize_tiles(
        tile_scores[:1], np.broadcast_to(thresholds, (1, 2, 2, 2)), stats
    )
    np.testing.assert_allclose(normalized, 0.5)


def test_tile_stage_finds_defects_that_the_image_stage_misses() -> None:
    tile_scores, labels, tile_maps, tile_masks = _two_tile_example()
    stats = fit_tile_stats(tile_scores, labels, tile_maps, tile_masks)
    _, tile_normalized = normalize_tiles(tile_scores, tile_maps, stats)
    tile_stage = _merge(tile_normalized) >= 0.5

    maps, masks = _merge(tile_maps), _merge(tile_masks)
    image_stats = fit_stats(maps.reshape(4, -1).max(axis=1), labels, maps, masks)
    image_stage = normalize_maps(maps, image_stats) >= 0.5

    np.testing.assert_array_equal(tile_stage, masks)  # both defects, nothing else
    assert not np.array_equal(image_stage, masks)  # one global threshold cannot fit both scales
    # Tile normalization with decisions at 0.5 equals per-tile thresholds on raw tiles.
    raw_thresholds = [s.pixel_threshold for s in stats]
    _, raw_decisions = tile_decisions(tile_scores, tile_maps, np.zeros(2), raw_thresholds)
    np.testing.assert_array_equal(_merge(raw_decisions), tile_stage)


def test_normalize_tiles_rejects_a_wrong_number_of_stats() -> None:
    stats = NormalizationStats(0.0, 1.0, 0.5, 0.0, 1.0, 0.5)
    with pytest.raises(ValueError, match=r"need tile_scores of shape .* and 3 stats, got .* and 1"):
        normalize_tiles(np.zeros((2, 3)), np.zeros((2, 3, 4, 4)), (stats,))


def test_decision_thresholds_per_stage() -> None:
    stats = NormalizationStats(0.0, 10.0, 4.0, 0.0, 20.0, 7.0)
    assert decision_thresholds("tile", None) == (0.5, 0.5)
    assert decision_thresholds("image", stats) == (0.5, 0.5)
    assert decision_thresholds("none", stats) == (4.0, 7.0)
    with pytest.raises(ValueError, match="stage 'none' needs the stats"):
        decision_thresholds("none", None)
    with pytest.raises(ValueError, match="stage must be 'tile', 'image' or 'none', got 'pixel'"):
        decision_thresholds("pixel", stats)  # type: ignore[arg-type]
