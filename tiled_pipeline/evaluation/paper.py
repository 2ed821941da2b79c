"""The published numbers of the tiled-ensemble paper, and our results beside them.

Source: supplementary material of B. Rolih, D. Ameln, A. Vaidya, S. Akcay, "Divide and Conquer:
High-Resolution Industrial Anomaly Detection via Memory Efficient Tiled Ensemble", CVPR 2024 VAND
workshop. ``paper_results.csv``: image AUROC and pixel AUPRO in percent, each the mean of 3
seeds, per dataset (``mvtec_ad``, ``visa``), model, setup (SM256, SM512, ST4, ST9, ENS4, ENS9)
and category (the paper's spelling, e.g. ``Metal nut``, ``Macaroni 1``; ``Average`` is the
dataset mean). One published value is above 100 (FastFlow, Leather, SM256, AUPRO 108.3), a typo
in the source kept as published. ``paper_training_time.csv``: mean training seconds per category
and parameter count in millions, per setup and model.
"""

from __future__ import annotations

import re
from importlib import resources

import numpy as np
import pandas as pd

KEY_COLUMNS = ("dataset", "model", "setup", "category")
PAPER_METRICS = ("image_auroc", "pixel_aupro")
_DATASET_ALIASES = {"mvtec": "mvtecad"}


def _packaged_csv(name: str) -> pd.DataFrame:
    """A CSV shipped inside this package (see pyproject's package-data)."""
    with resources.files(__package__).joinpath(name).open("r", encoding="utf-8") as file:
        return pd.read_csv(file)


def load_paper_results() -> pd.DataFrame:
    """The paper's per-category table: dataset, model, setup, category, image_auroc,
    pixel_aupro (percent, as published)."""
    return _packaged_csv("paper_results.csv")


def load_paper_training_time() -> pd.DataFrame:
    """Training seconds per category (``<model>_s``) and parameters in millions
    (``<model>_params_m``), one row per setup, as published."""
    return _packaged_csv("paper_training_time.csv")


def match_key(name: str) -> str:
    """The form names are matched in: lower case, letters and digits only.

    ``"Metal nut"`` and ``"metal_nut"`` give ``"metalnut"``; ``"Macaroni 1"`` and ``"macaroni1"``
    give ``"macaroni1"``; ``"ENS9"`` and ``"ens9"`` give ``"ens9"``.
    """
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _with_match_keys(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` plus ``_dataset``, ``_model``, ``_setup``, ``_category`` in matching form."""
    keys = {f"_{c}": table[c].map(match_key) for c in KEY_COLUMNS}
    keys["_dataset"] = keys["_dataset"].replace(_DATASET_ALIASES)
    return table.assign(**keys)


def compare_with_paper(ours: pd.DataFrame) -> pd.DataFrame:
    """Put the paper's numbers beside ours, in percent, with the differences.

    Args:
        ours: columns ``dataset, model, setup, category, image_auroc, pixel_aupro`` with metric
            values in [0, 1] (NaN allowed); other columns are kept. Names are matched
            case-insensitively, ignoring spaces, underscores and hyphens (see :func:`match_key`).

    Returns:
        One row per row of ``ours``, in its order: the key columns, any other columns of
        ``ours``, then per metric ``<metric>_ours_pct``, ``<metric>_paper_pct`` and
        ``<metric>_diff_pp`` (ours minus paper, percentage points). Rows the paper lacks get NaN.

    Raises:
        ValueError: on missing columns, or metric values outside [0, 1] (e.g. already percent).
    """
    missing = [c for c in (*KEY_COLUMNS, *PAPER_METRICS) if c not in ours.columns]
    if missing:
        raise ValueError(f"ours lacks columns {missing}; expected {[*KEY_COLUMNS, *PAPER_METRICS]}")
    for metric in PAPER_METRICS:
        values = ours[metric].to_numpy(dtype=float)
        if np.any((values < 0) | (values > 1)):
            raise ValueError(
                f"ours[{metric!r}] must be in [0, 1], got values up to {np.nanmax(values):g}; "
                "divide percentages by 100"
            )
    paper = _with_match_keys(load_paper_results()).drop(columns=list(KEY_COLUMNS))
    paper = paper.rename(columns={m: f"{m}_paper_pct" for m in PAPER_METRICS})
    match_columns = [f"_{c}" for c in KEY_COLUMNS]
    merged = _with_match_keys(ours.reset_index(drop=True)).merge(
        paper, on=match_columns, how="left", validate="many_to_one"
    )
    extra = [c for c in ours.columns if c not in (*KEY_COLUMNS, *PAPER_METRICS)]
    result = merged[[*KEY_COLUMNS, *extra]].copy()
    for metric in PAPER_METRICS:
        result[f"{metric}_ours_pct"] = 100.0 * merged[metric].astype(float)
        result[f"{metric}_paper_pct"] = merged[f"{metric}_paper_pct"]
        result[f"{metric}_diff_pp"] = result[f"{metric}_ours_pct"] - result[f"{metric}_paper_pct"]
    return result
