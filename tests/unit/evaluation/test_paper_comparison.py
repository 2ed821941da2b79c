"""The packaged paper table and our results beside it."""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from tiled_pipeline.evaluation import (
    compare_with_paper,
    load_paper_results,
    load_paper_training_time,
)


def _csv_row(dataset: str, model: str, setup: str, category: str) -> dict[str, str]:
    """The row as written in the packaged CSV, read without pandas."""
    wanted = [dataset, model, setup, category]
    path = resources.files("tiled_pipeline.evaluation").joinpath("paper_results.csv")
    with path.open(encoding="utf-8") as file:
        for row in csv.DictReader(file):
            if [row["dataset"], row["model"], row["setup"], row["category"]] == wanted:
                return row
    raise AssertionError(f"{dataset}/{model}/{setup}/{category} is not in the paper table")


def _ours(rows: list[tuple]) -> pd.DataFrame:
    columns = ["dataset", "model", "setup", "category", "image_auroc", "pixel_aupro"]
    return pd.DataFrame(rows, columns=columns)


def test_load_paper_results_has_every_combination_once() -> None:
    paper = load_paper_results()
    assert not paper.duplicated(["dataset", "model", "setup", "category"]).any()
    assert len(paper) == 2 * 4 * 6 * 16 - 4 * 6 * 3  # 15 + Average on MVTec, 12 + Average on VisA
    typo = paper[
        (paper.model == "fastflow") & (paper.setup == "SM256") & (paper.category == "Leather")
    ]
    assert typo.pixel_aupro.tolist() == [108.3]  # kept as published


def test_compare_with_paper_puts_the_published_numbers_beside_ours() -> None:
    published = _csv_row("mvtec_ad", "patchcore", "ENS9", "Carpet")
    result = compare_with_paper(_ours([("mvtec_ad", "patchcore", "ens9", "carpet", 0.95, 0.9)]))
    row = result.iloc[0]
    assert row.image_auroc_paper_pct == float(published["image_auroc"])
    assert row.pixel_aupro_paper_pct == float(published["pixel_aupro"])
    assert row.image_auroc_ours_pct == pytest.approx(95.0)
    assert row.image_auroc_diff_pp == pytest.approx(95.0 - float(published["image_auroc"]))
    assert row.pixel_aupro_diff_pp == pytest.approx(90.0 - float(published["pixel_aupro"]))
    assert row.category == "carpet"  # our spelling is kept


def test_compare_with_paper_matches_names_across_spellings() -> None:
    ours = _ours(
        [
            ("mvtec_ad", "padim", "SM256", "metal_nut", 0.9, 0.9),
            ("visa", "fastflow", "ST4", "macaroni1", 0.8, 0.8),
            ("visa", "reverse_distillation", "ENS4", "pipe_fryum", 0.7, 0.7),
        ]
    )
    result = compare_with_paper(ours)
    expected = [
        _csv_row("mvtec_ad", "padim", "SM256", "Metal nut"),
        _csv_row("visa", "fastflow", "ST4", "Macaroni 1"),
        _csv_row("visa", "reverse_distillation", "ENS4", "Pipe fryum"),
    ]
    paper_values = [float(row["image_auroc"]) for row in expected]
    assert result.image_auroc_paper_pct.tolist() == paper_values


def test_compare_with_paper_missing_rows_are_nan_and_extra_columns_kept() -> None:
    ours = _ours([("mvtec_ad", "patchcore", "ENS9", "not_a_category", 0.9, np.nan)])
    ours["image_score"] = "map_max"
    row = compare_with_paper(ours).iloc[0]
    assert np.isnan(row.image_auroc_paper_pct) and np.isnan(row.image_auroc_diff_pp)
    assert np.isnan(row.pixel_aupro_ours_pct) and row.image_score == "map_max"


def test_compare_with_paper_rejects_percentages_and_missing_columns() -> None:
    with pytest.raises(ValueError, match=r"must be in \[0, 1\], got values up to 97.*divide"):
        compare_with_paper(_ours([("mvtec_ad", "patchcore", "ENS9", "Carpet", 97.0, 0.9)]))
    with pytest.raises(ValueError, match=r"ours lacks columns \['pixel_aupro'\]"):
        compare_with_paper(_ours([]).drop(columns="pixel_aupro"))


def test_load_paper_training_time_has_the_six_setups() -> None:
    times = load_paper_training_time()
    assert sorted(times.setup) == sorted(["SM256", "SM512", "ST4", "ST9", "ENS4", "ENS9"])
    assert (times.drop(columns="setup").to_numpy() > 0).all()
