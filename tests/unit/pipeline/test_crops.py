import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tiled_pipeline.pipeline.crops import assign_splits, load_working_mask, make_crops
from tiled_pipeline.tiling import make_plan


@pytest.fixture
def manifest(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(7):
        image = tmp_path / f"i{i}.png"
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(image)
        mask_path = ""
        if i == 6:
            mask = np.zeros((32, 32), dtype=np.uint8)
            mask[5, 5] = 255  # one pixel: survives the downscale as "any part is defective"
            mask_path = str(tmp_path / "m.png")
            Image.fromarray(mask).save(mask_path)
        split = "train" if i < 5 else "test"
        rows.append(
            {
                "image_path": str(image),
                "split": split,
                "label": int(i == 6),
                "defect_type": "spot" if i == 6 else "good",
                "mask_path": mask_path,
                "height": 32,
                "width": 32,
            }
        )
    return pd.DataFrame(rows)


def test_crops_holdout_is_seeded_and_only_from_train(manifest):
    a = assign_splits(manifest, 0.4, seed=1)
    b = assign_splits(manifest, 0.4, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert (a["split"] == "holdout").sum() == 2
    assert set(a.loc[manifest["split"] == "test", "split"]) == {"test"}
    with pytest.raises(ValueError, match="lower it"):
        assign_splits(manifest, 1.0, seed=0)
    with pytest.raises(ValueError, match="no train images"):
        assign_splits(manifest[manifest["split"] == "test"], 0.0, seed=0)


def test_crops_working_mask_keeps_single_pixel_defects(manifest):
    mask = load_working_mask(manifest["mask_path"].iloc[6], 8)
    assert mask.dtype == np.bool_ or str(mask.dtype) == "torch.bool"
    assert int(mask.sum()) == 1 and bool(mask[1, 1])
    assert not load_working_mask("", 8).any()


def test_crops_cut_the_planned_positions(manifest):
    plan = make_plan(16, 8, 4)  # 3x3 grid
    crops = make_crops(manifest, plan, positions=(0, 4, 8), holdout_fraction=0.0, seed=0)
    assert crops.images["train"].shape == (5, 3, 8, 8, 3)
    assert crops.images["test"].shape == (2, 3, 8, 8, 3)
    assert crops.images["holdout"].shape == (0, 3, 8, 8, 3)
    assert crops.masks["test"].shape == (2, 3, 8, 8)
    assert list(crops.index["split"]) == ["train"] * 5 + ["test"] * 2
    full = np.asarray(
        Image.open(manifest["image_path"].iloc[0]).resize((16, 16), Image.Resampling.BILINEAR)
    )
    np.testing.assert_array_equal(crops.images["train"][0, 1], full[4:12, 4:12])
    np.testing.assert_array_equal(crops.images["train"][0, 2], full[8:16, 8:16])
