import numpy as np
import pandas as pd
import pytest
from dagster import AssetCheckSeverity

from tiled_pipeline.defs.checks import check_merged, check_report


@pytest.fixture
def experiment(make_experiment):
    return lambda **evaluation: make_experiment(evaluation=evaluation)


def scores(n):
    return pd.DataFrame({"tile_mean": np.full(n, 0.5), "map_max": np.full(n, 0.7)})


def by_name(results):
    return {r.check_name: r for r in results}


def test_checks_merged_pass_on_good_maps(experiment):
    results = by_name(check_merged(experiment(), np.random.rand(3, 8, 8), scores(3)))
    assert results["maps_cover_every_image"].passed and results["maps_in_range"].passed


@pytest.mark.parametrize(
    ("maps", "failing"),
    [
        (np.full((3, 8, 8), np.nan), "maps_cover_every_image"),
        (np.zeros((2, 8, 8)), "maps_cover_every_image"),
        (np.zeros((3, 8, 6)), "maps_cover_every_image"),
        (np.full((3, 8, 8), 1.5), "maps_in_range"),
    ],
)
def test_checks_merged_fail_on_bad_maps(experiment, maps, failing):
    assert not by_name(check_merged(experiment(), maps, scores(3)))[failing].passed


def test_checks_merged_range_not_required_without_normalization(experiment):
    results = check_merged(experiment(normalization="none"), np.full((3, 8, 8), 7.0), scores(3))
    assert by_name(results)["maps_in_range"].passed


def report(rows):
    base = {m: 0.8 for m in ("image_auroc", "pixel_auroc", "pixel_aupro", "image_f1", "pixel_f1")}
    return pd.DataFrame([{**base, "image_score": "map_max", **row} for row in rows])


def test_checks_report_range_types_and_floor(experiment):
    table = report([{"defect_type": "all"}, {"defect_type": "spot", "pixel_aupro": np.nan}])
    ok = by_name(check_report(experiment(), table, {"spot"}))
    assert ok["metrics_in_range"].passed and ok["every_defect_type_reported"].passed
    missing = by_name(check_report(experiment(), table, {"spot", "scratch"}))
    assert not missing["every_defect_type_reported"].passed
    assert "scratch" in str(missing["every_defect_type_reported"].metadata["missing"])
    bad = report([{"defect_type": "all", "image_auroc": 1.2}])
    assert not by_name(check_report(experiment(), bad, set()))["metrics_in_range"].passed
    floored = by_name(check_report(experiment(min_image_auroc=0.9), table, {"spot"}))
    assert not floored["image_auroc_above_floor"].passed
    assert floored["image_auroc_above_floor"].severity == AssetCheckSeverity.WARN
    assert "image_auroc_above_floor" not in by_name(check_report(experiment(), table, {"spot"}))
