import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tiled_pipeline.evaluation import load_paper_results
from tiled_pipeline.pipeline.gather import GatheredTiles
from tiled_pipeline.pipeline.scoring import merge_category, summarize


@pytest.fixture
def experiment(make_experiment):
    return lambda **evaluation: make_experiment(
        merge={"seam_smoothing": False}, evaluation=evaluation
    )


@pytest.fixture
def gathered(tmp_path):
    """6 test images (3 good, 3 with a defect in the top-left tile) and 2 held-out normals."""
    rng = np.random.default_rng(0)
    rows, maps, scores = [], [], []
    for i in range(6):
        defect = i >= 3
        mask = np.zeros((8, 8), dtype=np.uint8)
        tile_maps = rng.uniform(0, 1, size=(4, 4, 4)).astype(np.float32)
        if defect:
            mask[1:3, 1:3] = 255
            tile_maps[0, 1:3, 1:3] += 5.0
        path = tmp_path / f"m{i}.png"
        Image.fromarray(mask).save(path)
        rows.append(
            {
                "image_path": str(path),
                "label": int(defect),
                "defect_type": "spot" if defect else "good",
                "mask_path": str(path) if defect else "",
            }
        )
        maps.append(tile_maps)
        scores.append(tile_maps.reshape(4, -1).max(axis=1))
    test = GatheredTiles(pd.DataFrame(rows), np.stack(maps), np.stack(scores))
    held_maps = rng.uniform(0, 1, size=(2, 4, 4, 4)).astype(np.float32)
    holdout = GatheredTiles(
        pd.DataFrame([{"image_path": "h", "label": 0, "defect_type": "good", "mask_path": ""}] * 2),
        held_maps,
        held_maps.reshape(2, 4, -1).max(axis=2),
    )
    return test, holdout


@pytest.mark.parametrize("normalization", ["image", "tile"])
def test_scoring_normalized_maps_are_in_unit_range(experiment, gathered, normalization):
    merged = merge_category(experiment(normalization=normalization), *gathered)
    assert merged.maps.shape == (6, 8, 8)
    assert merged.maps.min() >= 0 and merged.maps.max() <= 1
    assert merged.stats["pixel_threshold"] == 0.5
    assert merged.masks[3:, 1:3, 1:3].all() and not merged.masks[:3].any()
    defect = merged.scores["label"] == 1
    assert merged.scores.loc[defect, "map_max"].min() > merged.scores.loc[~defect, "map_max"].max()


def test_scoring_without_normalization_keeps_raw_maps_and_fitted_thresholds(experiment, gathered):
    merged = merge_category(experiment(normalization="none"), *gathered)
    assert merged.maps.max() > 5
    threshold = merged.stats["pixel_threshold"]
    assert 1 < threshold <= merged.maps.max()


def test_scoring_heldout_test_evaluates_on_the_rest(experiment, gathered):
    merged = merge_category(
        experiment(stats_source="heldout_test", heldout_fraction=0.4), *gathered
    )
    assert 0 < len(merged.scores) < 6
    assert merged.stats["n_stats_images"] + len(merged.scores) == 6
    assert merged.stats["stats_source"] == "heldout_test"


def test_scoring_heldout_normal_fits_on_holdout(experiment, gathered):
    merged = merge_category(experiment(stats_source="heldout_normal"), *gathered)
    assert len(merged.scores) == 6 and merged.stats["n_stats_images"] == 2


def test_scoring_tile_thresholds_give_decisions(experiment, gathered):
    merged = merge_category(experiment(threshold="tile", normalization="tile"), *gathered)
    assert merged.predicted_masks.shape == (6, 8, 8)
    assert merged.scores["predicted_label"].dtype == bool


def test_scoring_summary_sets_paper_numbers_beside_ours():
    paper = load_paper_results()
    row = paper[
        (paper["dataset"] == "mvtec_ad")
        & (paper["model"] == "padim")
        & (paper["setup"] == "ENS9")
        & (paper["category"] == "Carpet")
    ].iloc[0]
    reports = pd.DataFrame(
        [
            {
                "experiment": "padim_ens9",
                "dataset": "mvtec_ad",
                "model": "padim",
                "setup": "ENS9",
                "category": "carpet",
                "defect_type": "all",
                "image_score": "map_max",
                "image_auroc": 0.9,
                "pixel_auroc": 0.95,
                "pixel_aupro": 0.8,
                "image_f1": 0.9,
                "pixel_f1": 0.5,
            }
        ]
    )
    table, markdown = summarize(reports)
    assert table["image_auroc_paper_pct"].iloc[0] == pytest.approx(row["image_auroc"])
    assert table["pixel_aupro_paper_pct"].iloc[0] == pytest.approx(row["pixel_aupro"])
    assert table["image_auroc_diff_pp"].iloc[0] == pytest.approx(90 - row["image_auroc"])
    assert "padim_ens9" in markdown
