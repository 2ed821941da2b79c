"""The metric report of one category: every metric for all images and per defect type.

Rows: one per (defect type, image-score method), the defect type ``all`` first, then each
anomalous defect type in sorted order; a defect type's row uses that type's images plus every
normal image. Pixel metrics do not depend on the image-score method and repeat across its rows.
Metric values are in [0, 1] or NaN; the ``warnings`` column says why a value is NaN.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from tqdm import tqdm

from tiled_pipeline.evaluation._validation import (
    MetricUndefinedWarning,
    check_labels,
    check_maps,
    check_masks,
    check_scores,
)
from tiled_pipeline.evaluation.aupro import DEFAULT_FPR_LIMIT, pixel_aupro
from tiled_pipeline.evaluation.metrics import binary_f1, image_auroc, pixel_auroc, pixel_f1
from tiled_pipeline.evaluation.normalization import NormalizationStage
from tiled_pipeline.evaluation.pixels import Connectivity, PixelScores
from tiled_pipeline.evaluation.splits import StatsSource
from tiled_pipeline.evaluation.thresholds import ThresholdStage

logger = logging.getLogger(__name__)

ALL_TYPES = "all"
METRIC_COLUMNS = ("image_auroc", "pixel_auroc", "pixel_aupro", "image_f1", "pixel_f1")
REPORT_COLUMNS = (
    "defect_type",
    "image_score",
    *METRIC_COLUMNS,
    "n_images",
    "n_anomalous",
    "image_threshold",
    "pixel_threshold",
    "normalization_stage",
    "threshold_stage",
    "stats_source",
    "fpr_limit",
    "warnings",
)
_T = TypeVar("_T")


@dataclass(frozen=True)
class ReportSetup:
    """How the evaluated outputs were post-processed (recorded in the report) and AUPRO options.

    Attributes:
        normalization_stage: ``tile``, ``image`` or ``none``.
        threshold_stage: ``tile`` or ``image``.
        stats_source: images the statistics were fitted on (see ``splits``).
        fpr_limit: AUPRO integrates FPR over [0, fpr_limit].
        connectivity: 8 or 4, how defect pixels join into AUPRO regions.
    """

    normalization_stage: NormalizationStage = "image"
    threshold_stage: ThresholdStage = "image"
    stats_source: StatsSource = "test"
    fpr_limit: float = DEFAULT_FPR_LIMIT
    connectivity: Connectivity = 8


def defect_subsets(labels: np.ndarray, defect_types: np.ndarray) -> dict[str, np.ndarray]:
    """Image indices of ``all`` and of each anomalous defect type (plus all normal images)."""
    normal = ~labels
    types = sorted(set(defect_types[labels].tolist()))
    if ALL_TYPES in types:
        raise ValueError(f"defect type {ALL_TYPES!r} is reserved for the whole set; rename it")
    subsets = {ALL_TYPES: np.arange(labels.size)}
    for name in types:
        subsets[name] = np.flatnonzero(normal | (defect_types == name))
    return subsets


def evaluate(
    labels: np.ndarray,
    image_scores: Mapping[str, np.ndarray],
    maps: np.ndarray,
    masks: np.ndarray,
    defect_types: Sequence[str] | np.ndarray,
    image_thresholds: Mapping[str, float] | None,
    pixel_threshold: float | None,
    setup: ReportSetup | None = None,
    *,
    predicted_labels: np.ndarray | None = None,
    predicted_masks: np.ndarray | None = None,
) -> pd.DataFrame:
    """Compute the metric report of one category.

    Args:
        labels: (N,) bool or 0/1, True = anomalous image.
        image_scores: image-score method name (e.g. ``tile_mean``, ``map_max``) -> (N,) scores.
        maps: (N, H, W) float anomaly maps (float16 is read as float32).
        masks: (N, H, W) bool ground truth.
        defect_types: (N,) defect type of each image (the value for normal images is unused).
        image_thresholds: method -> threshold for ``scores >= threshold``; None only with
            ``predicted_labels``.
        pixel_threshold: threshold for ``maps >= threshold``; None only with ``predicted_masks``.
        setup: stages and AUPRO options; default :class:`ReportSetup()`.
        predicted_labels: (N,) bool decisions that replace the image thresholds (``tile``
            threshold stage, see ``thresholds.tile_decisions``).
        predicted_masks: (N, H, W) bool decisions that replace the pixel threshold.

    Returns:
        One row per (defect_type, image_score) with columns ``defect_type, image_score,
        image_auroc, pixel_auroc, pixel_aupro, image_f1, pixel_f1, n_images, n_anomalous,
        image_threshold, pixel_threshold, normalization_stage, threshold_stage, stats_source,
        fpr_limit, warnings`` (``warnings``: "; "-joined reasons for NaN values, or "").
    """
    setup = setup or ReportSetup()
    truth = check_labels(labels)
    maps = check_maps(maps)
    masks = check_masks(masks, maps.shape)
    types = _check_defect_types(defect_types, truth.size)
    scores = _check_image_inputs(image_scores, image_thresholds, predicted_labels, truth.size)
    decisions = _check_pixel_decisions(pixel_threshold, predicted_masks, maps.shape)
    if decisions is not None:
        pixel_threshold = None  # the decisions replace it
    if predicted_labels is not None:
        image_thresholds = None  # likewise
    rows = []
    for name, idx in tqdm(defect_subsets(truth, types).items(), desc="metric report", leave=False):
        pixel_values, pixel_notes = _recorded(
            partial(_pixel_metrics, maps, masks, idx, pixel_threshold, decisions, setup)
        )
        for note in pixel_notes:
            logger.warning("%s: %s", name, note)
        shared = {
            "n_images": idx.size,
            "n_anomalous": int(truth[idx].sum()),
            "pixel_threshold": _or_nan(pixel_threshold),
            **_setup_columns(setup),
        }
        for method, values in scores.items():
            threshold = None if image_thresholds is None else image_thresholds[method]
            chosen = None if predicted_labels is None else np.asarray(predicted_labels)[idx]
            image_values, image_notes = _recorded(
                partial(_image_metrics, truth[idx], values[idx], threshold, chosen)
            )
            for note in image_notes:
                logger.warning("%s, image score %s: %s", name, method, note)
            notes = "; ".join(f"{name}: {message}" for message in image_notes + pixel_notes)
            rows.append(
                {"defect_type": name, "image_score": method, **image_values, **pixel_values}
                | {"image_threshold": _or_nan(threshold), **shared, "warnings": notes}
            )
    return pd.DataFrame(rows, columns=REPORT_COLUMNS)


def _pixel_metrics(
    maps: np.ndarray,
    masks: np.ndarray,
    idx: np.ndarray,
    threshold: float | None,
    decisions: np.ndarray | None,
    setup: ReportSetup,
) -> dict[str, float]:
    """Pixel AUROC, AUPRO and F1 of the images ``idx``."""
    pixels = PixelScores.from_maps(maps, masks, setup.connectivity, idx)
    if decisions is None:
        f1 = pixel_f1(pixels, float(threshold))
    else:
        f1 = binary_f1(masks[idx], decisions[idx], "pixel F1", "defect pixels in the masks")
    return {
        "pixel_auroc": pixel_auroc(pixels),
        "pixel_aupro": pixel_aupro(pixels, setup.fpr_limit),
        "pixel_f1": f1,
    }


def _image_metrics(
    truth: np.ndarray, scores: np.ndarray, threshold: float | None, decisions: np.ndarray | None
) -> dict[str, float]:
    """Image AUROC and F1 of one subset and one image-score method."""
    predicted = scores >= threshold if decisions is None else decisions
    return {
        "image_auroc": image_auroc(truth, scores),
        "image_f1": binary_f1(truth, predicted, "image F1", "anomalous images"),
    }


def _recorded(compute: Callable[[], _T]) -> tuple[_T, list[str]]:
    """Run ``compute``, collecting the messages of the metric warnings it raises."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MetricUndefinedWarning)
        result = compute()
    messages = []
    for item in caught:
        if issubclass(item.category, MetricUndefinedWarning):
            messages.append(str(item.message))
        else:  # not ours: let it through as if it had not been caught
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    return result, messages


def _or_nan(value: float | None) -> float:
    """``value`` as a float, NaN for None."""
    return float("nan") if value is None else float(value)


def _setup_columns(setup: ReportSetup) -> dict[str, Any]:
    """The report columns that record the setup."""
    return {
        "normalization_stage": setup.normalization_stage,
        "threshold_stage": setup.threshold_stage,
        "stats_source": setup.stats_source,
        "fpr_limit": setup.fpr_limit,
    }


def _check_defect_types(defect_types: Sequence[str] | np.ndarray, n: int) -> np.ndarray:
    """``defect_types`` as an (n,) str array."""
    types = np.asarray(defect_types, dtype=object)
    if types.shape != (n,):
        raise ValueError(f"defect_types must have shape ({n},) like labels, got {types.shape}")
    return types.astype(str)


def _check_image_inputs(
    image_scores: Mapping[str, Any],
    thresholds: Mapping[str, float] | None,
    predicted: np.ndarray | None,
    n: int,
) -> dict[str, np.ndarray]:
    """Validated image scores per method; thresholds for each method unless decisions given."""
    if not image_scores:
        raise ValueError("image_scores is empty; pass e.g. {'tile_mean': scores}")
    if predicted is None and (thresholds is None or not set(image_scores) <= set(thresholds)):
        raise ValueError(
            f"image_thresholds must name every method in image_scores {sorted(image_scores)}, "
            f"got {None if thresholds is None else sorted(thresholds)}; or pass predicted_labels"
        )
    if predicted is not None:
        check_labels(predicted, "predicted_labels")
        if np.shape(predicted) != (n,):
            raise ValueError(f"predicted_labels must have shape ({n},), got {np.shape(predicted)}")
    return {m: check_scores(s, n, f"image_scores[{m!r}]") for m, s in image_scores.items()}


def _check_pixel_decisions(
    threshold: float | None, predicted: np.ndarray | None, shape: tuple[int, ...]
) -> np.ndarray | None:
    """Validated predicted masks, or None when the pixel threshold decides."""
    if predicted is None:
        if threshold is None:
            raise ValueError("pass pixel_threshold or predicted_masks, got neither")
        return None
    return check_masks(predicted, shape, "predicted_masks")


_MARKDOWN_NAMES = {
    "image_auroc": "I-AUROC",
    "pixel_auroc": "P-AUROC",
    "pixel_aupro": "P-AUPRO",
    "image_f1": "I-F1",
    "pixel_f1": "P-F1",
}
_MAX_WARNINGS = 10


def report_markdown(table: pd.DataFrame, title: str | None = None) -> str:
    """A compact markdown summary of an :func:`evaluate` table, metrics in percent.

    One line of setup, one table row per report row (``n/a`` for NaN), then the distinct
    warnings with the defect types they concern (the first ten, and a count of the rest).

    Raises:
        ValueError: if ``table`` lacks report columns.
    """
    missing = [c for c in REPORT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks report columns {missing}; pass the result of evaluate()")
    lines = [f"### {title}", ""] if title else []
    if len(table):
        first = table.iloc[0]
        lines += [
            f"Normalization `{first.normalization_stage}`, thresholds `{first.threshold_stage}`, "
            f"statistics from `{first.stats_source}`, AUPRO up to FPR {first.fpr_limit:g}; "
            "metrics in %.",
            "",
        ]
    lines += _markdown_table(table)
    notes = _grouped_warnings(table["warnings"])
    if notes:
        lines += ["", "**Warnings**", *(f"- {note}" for note in notes[:_MAX_WARNINGS])]
        if len(notes) > _MAX_WARNINGS:
            lines.append(f"- ... and {len(notes) - _MAX_WARNINGS} more")
    return "\n".join(lines) + "\n"


def _grouped_warnings(cells: pd.Series) -> list[str]:
    """Distinct warnings, each followed by the defect types it concerns, in first-seen order."""
    types_of: dict[str, list[str]] = {}
    for cell in cells:
        for note in filter(None, cell.split("; ")):
            defect_type, _, message = note.partition(": ")
            seen = types_of.setdefault(message, [])
            if defect_type not in seen:
                seen.append(defect_type)
    return [f"{', '.join(types)}: {message}" for message, types in types_of.items()]


def _markdown_table(table: pd.DataFrame) -> list[str]:
    """Header, separator and one line per row of the report table."""
    names = list(_MARKDOWN_NAMES.values())
    lines = [
        "| defect type | image score | images (anomalous) | " + " | ".join(names) + " |",
        "| --- | --- | ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    for row in table.itertuples(index=False):
        values = [_percent(getattr(row, column)) for column in _MARKDOWN_NAMES]
        counts = f"{row.n_images} ({row.n_anomalous})"
        lines.append(f"| {row.defect_type} | {row.image_score} | {counts} | {' | '.join(values)} |")
    return lines


def _percent(value: float) -> str:
    """A [0, 1] value as a percentage with one decimal, ``n/a`` for NaN."""
    return "n/a" if np.isnan(value) else f"{100 * value:.1f}"
