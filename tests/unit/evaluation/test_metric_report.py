"""The metric report: rows per defect type and score method, warnings, markdown summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from tiled_pipeline.evaluation import (
    METRIC_COLUMNS,
    REPORT_COLUMNS,
    PixelScores,
    ReportSetup,
    evaluate,
    pixel_aupro,
    report_markdown,
)


def _category(seed: int = 0) -> dict:
    """10 images of 16x16: 4 good, 3 'crack', 3 'hole' with square defects."""
    rng = np.random.default_rng(seed)
    types = np.array(["good"] * 4 + ["crack"] * 3 + ["hole"] * 3)
    labels = types != "good"
    masks = np.zeros((10, 16, 16), dtype=bool)
    for i in np.flatnonzero(labels):
        y, x = rng.integers(0, 12, 2)
        masks[i, y : y + 4, x : x + 3] = True
    maps = (rng.random(masks.shape) + 0.8 * masks).astype(np.float32)
    scores = {
        "tile_mean": maps.mean(axis=(1, 2)) + 0.05 * rng.random(10),
        "map_max": maps.reshape(10, -1).max(axis=1),
    }
    return {
        "labels": labels,
        "image_scores": scores,
        "maps": maps,
        "masks": masks,
        "defect_types": types,
    }


def _evaluate(data: dict, **kwargs: object) -> pd.DataFrame:
    thresholds = {"image_thresholds": {"tile_mean": 0.55, "map_max": 1.5}, "pixel_threshold": 0.9}
    return evaluate(**data, **(thresholds | kwargs))


def test_evaluate_has_one_row_per_defect_type_and_score_method() -> None:
    table = _evaluate(_category())
    assert list(table.columns) == list(REPORT_COLUMNS)
    assert list(zip(table.defect_type, table.image_score, strict=True)) == [
        (t, m) for t in ("all", "crack", "hole") for m in ("tile_mean", "map_max")
    ]
    counts = table.set_index(["defect_type", "image_score"])[["n_images", "n_anomalous"]]
    assert counts.loc[("all", "map_max")].tolist() == [10, 6]
    assert counts.loc[("crack", "tile_mean")].tolist() == [7, 3]  # 3 cracks + 4 good
    values = table[list(METRIC_COLUMNS)].to_numpy()
    assert np.all((values >= 0) & (values <= 1)) and not table.warnings.any()


def test_evaluate_defect_type_rows_use_that_type_and_the_good_images() -> None:
    data = _category(1)
    table = _evaluate(data).set_index(["defect_type", "image_score"])
    subset = np.flatnonzero(data["defect_types"] != "hole")  # crack + good
    labels, scores = data["labels"][subset], data["image_scores"]["tile_mean"][subset]
    row = table.loc[("crack", "tile_mean")]
    assert row.image_auroc == pytest.approx(roc_auc_score(labels, scores))
    assert row.image_f1 == pytest.approx(f1_score(labels, scores >= 0.55))
    maps, masks = data["maps"][subset], data["masks"][subset]
    assert row.pixel_auroc == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()))
    assert row.pixel_f1 == pytest.approx(f1_score(masks.ravel(), maps.ravel() >= 0.9))
    assert row.pixel_aupro == pytest.approx(pixel_aupro(PixelScores.from_maps(maps, masks)))


def test_evaluate_without_anomalous_images_reports_nan_and_warnings() -> None:
    data = _category()
    good = data["defect_types"] == "good"
    only_good = {k: (v[good] if isinstance(v, np.ndarray) else v) for k, v in data.items()}
    only_good["image_scores"] = {m: s[good] for m, s in data["image_scores"].items()}
    table = _evaluate(only_good)
    assert table.defect_type.tolist() == ["all", "all"]
    assert table[list(METRIC_COLUMNS)].isna().all().all()
    for column in ("image AUROC", "image F1", "pixel AUROC", "pixel AUPRO", "pixel F1"):
        assert table.warnings.str.contains(f"all: {column} undefined").all()


def test_evaluate_with_empty_masks_keeps_image_metrics() -> None:
    data = _category() | {"masks": np.zeros((10, 16, 16), dtype=bool)}
    table = _evaluate(data)
    assert table.image_auroc.notna().all()
    assert table[["pixel_auroc", "pixel_aupro", "pixel_f1"]].isna().all().all()
    assert table.warnings.str.contains("pixel AUPRO undefined .no defect regions").all()


def test_evaluate_constant_maps_give_chance_level_pixel_metrics() -> None:
    data = _category() | {"maps": np.ones((10, 16, 16), dtype=np.float32)}
    table = _evaluate(data, setup=ReportSetup(fpr_limit=0.3))
    np.testing.assert_allclose(table.pixel_auroc, 0.5)
    np.testing.assert_allclose(table.pixel_aupro, 0.15)


def test_evaluate_predicted_decisions_replace_thresholds() -> None:
    data = _category()
    predicted_masks = data["masks"].copy()
    predicted_masks[0, 0, 0] = True  # one false positive pixel
    table = evaluate(
        **data,
        image_thresholds=None,
        pixel_threshold=None,
        predicted_labels=data["labels"],
        predicted_masks=predicted_masks,
    )
    np.testing.assert_allclose(table.image_f1, 1.0)
    expected = f1_score(data["masks"].ravel(), predicted_masks.ravel())
    assert table.pixel_f1.iloc[0] == pytest.approx(expected)
    assert table.image_threshold.isna().all() and table.pixel_threshold.isna().all()


def test_evaluate_records_the_setup() -> None:
    setup = ReportSetup("tile", "tile", "heldout_test", fpr_limit=0.05, connectivity=4)
    row = _evaluate(_category(), setup=setup).iloc[0]
    recorded = (row.normalization_stage, row.threshold_stage, row.stats_source, row.fpr_limit)
    assert recorded == ("tile", "tile", "heldout_test", 0.05)


def test_evaluate_rejects_missing_decisions() -> None:
    data = _category()
    with pytest.raises(ValueError, match="image_thresholds must name every method"):
        evaluate(**data, image_thresholds={"tile_mean": 0.5}, pixel_threshold=0.5)
    with pytest.raises(ValueError, match="pass pixel_threshold or predicted_masks"):
        evaluate(**data, image_thresholds={"tile_mean": 0.5, "map_max": 1.0}, pixel_threshold=None)
    with pytest.raises(ValueError, match=r"defect_types must have shape \(10,\)"):
        _evaluate(data | {"defect_types": ["good"] * 3})


def test_report_markdown_shows_rows_in_percent_and_warnings() -> None:
    data = _category() | {"masks": np.zeros((10, 16, 16), dtype=bool)}
    table = _evaluate(data)
    text = report_markdown(table, title="padim_ens9 / carpet")
    assert text.startswith("### padim_ens9 / carpet")
    first = table.iloc[0]
    assert f"| all | tile_mean | 10 (6) | {100 * first.image_auroc:.1f} | n/a |" in text
    assert "**Warnings**" in text
    assert "- all, crack, hole: pixel AUPRO undefined (no defect regions in the masks)" in text
    assert text.count("\n| ") == len(table) + 2  # header, separator, one line per row


def test_report_markdown_rejects_other_tables() -> None:
    with pytest.raises(ValueError, match="table lacks report columns"):
        report_markdown(pd.DataFrame({"image_auroc": [0.9]}))
