"""VisA: the one-class split table applied to a category, and writing from the archive."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from upath import UPath

from tiled_pipeline.data.errors import DatasetError, LayoutError
from tiled_pipeline.data.imageio import read_mask
from tiled_pipeline.data.visa import visa_split, write_visa_category

IMAGES = "candle/Data/Images"
TABLE = pd.DataFrame(
    [
        ("candle", "train", "normal", f"{IMAGES}/Normal/0000.JPG", ""),
        ("candle", "test", "normal", f"{IMAGES}/Normal/0001.JPG", ""),
        ("candle", "test", "anomaly", f"{IMAGES}/Anomaly/000.JPG", "candle/Data/Masks/A/000.png"),
        ("pcb1", "train", "normal", "pcb1/Data/Images/Normal/0000.JPG", ""),
    ],
    columns=["object", "split", "label", "image", "mask"],
)


def test_visa_split_maps_rows_to_mvtec_layout() -> None:
    plan = visa_split(TABLE, "candle")

    assert list(plan["image_name"]) == [
        "train/good/0000.JPG",
        "test/good/0001.JPG",
        "test/bad/000.JPG",
    ]
    assert list(plan["mask_name"]) == ["", "", "ground_truth/bad/000_mask.png"]
    assert list(plan["image"]) == list(TABLE["image"][:3])
    assert plan["mask"].iloc[2] == "candle/Data/Masks/A/000.png"


def test_visa_split_reads_nan_masks_as_empty() -> None:
    table = TABLE.replace({"mask": {"": np.nan}})

    assert list(visa_split(table, "candle")["mask"]) == ["", "", "candle/Data/Masks/A/000.png"]


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda t: t.drop(columns=["mask"]), DatasetError, r"lacks columns \['mask'\]"),
        (lambda t: t.assign(object="pcb2"), DatasetError, "no row for category 'candle'"),
        (lambda t: t.assign(label="broken"), DatasetError, "expected split train/test"),
        (lambda t: t.assign(split="train"), DatasetError, "anomalous image .* in the train split"),
        (lambda t: t.assign(mask=""), LayoutError, r"mask missing for anomalous image"),
        (
            lambda t: t.assign(image="c/x.JPG", split="test", label="normal"),
            DatasetError,
            "several",
        ),
        (lambda t: t.assign(image="candle/readme.txt"), DatasetError, "not an image file"),
    ],
    ids=["columns", "category", "label", "train-anomaly", "mask", "duplicate", "not-image"],
)
def test_visa_split_rejects_bad_tables(change, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        visa_split(change(TABLE), "candle", source="1cls.csv")


def test_write_visa_category_binarizes_masks(visa_archive, tmp_path) -> None:
    target = UPath(tmp_path / "storage" / "candle")

    names = write_visa_category(visa_archive(), "candle", target)

    assert sorted(n.split("/")[1] for n in names if not n.startswith("ground_truth")) == (
        ["bad"] * 2 + ["good"] * 4
    )
    mask_path = target / "ground_truth" / "bad" / "000_mask.png"
    values = np.unique(np.asarray(Image.open(mask_path)))
    assert list(values) == [0, 255]  # the archive's value 3 became 255
    assert read_mask(mask_path).sum() == 16


def test_write_visa_category_missing_member_names_it(make_tar, tmp_path) -> None:
    table = "object,split,label,image,mask\ncandle,train,normal,candle/Data/Images/N/1.JPG,\n"
    archive = make_tar(tmp_path / "visa.tar", {"split_csv/1cls.csv": table.encode()})

    with pytest.raises(DatasetError, match=r"no file 'candle/Data/Images/N/1\.JPG'"):
        write_visa_category(archive, "candle", UPath(tmp_path / "out" / "candle"))


def test_write_visa_category_without_split_table(make_tar, tmp_path) -> None:
    archive = make_tar(tmp_path / "visa.tar", {"candle/readme.txt": b"x"})

    with pytest.raises(DatasetError, match=r"no file 'split_csv/1cls\.csv'"):
        write_visa_category(archive, "candle", UPath(tmp_path / "out" / "candle"))
