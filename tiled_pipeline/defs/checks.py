"""Asset checks of the category layer, run inside the materialization that they guard.

They are computed before the new version is committed: a failed blocking check leaves the
previous version of the partition in force (nothing good is overwritten with bad data) and
Dagster skips the downstream assets of the run.
"""

import numpy as np
import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey

from tiled_pipeline.experiments import Experiment

METRICS = ("image_auroc", "pixel_auroc", "pixel_aupro", "image_f1", "pixel_f1")


def merged_check_specs(key: AssetKey) -> list[AssetCheckSpec]:
    """Blocking checks of the merged maps."""
    return [
        AssetCheckSpec(
            "maps_cover_every_image",
            asset=key,
            blocking=True,
            description="One finite map of the working size per evaluated image.",
        ),
        AssetCheckSpec(
            "maps_in_range",
            asset=key,
            blocking=True,
            description="Normalized maps and scores lie in [0, 1].",
        ),
    ]


def report_check_specs(experiment: Experiment, key: AssetKey) -> list[AssetCheckSpec]:
    """Blocking checks of the metric report, plus the optional AUROC floor."""
    specs = [
        AssetCheckSpec(
            "metrics_in_range",
            asset=key,
            blocking=True,
            description="Every metric is in [0, 1] or NaN (undefined).",
        ),
        AssetCheckSpec(
            "every_defect_type_reported",
            asset=key,
            blocking=True,
            description="A row for the category overall and for each defect type.",
        ),
    ]
    if experiment.evaluation.min_image_auroc is not None:
        specs.append(
            AssetCheckSpec(
                "image_auroc_above_floor",
                asset=key,
                description="Overall image AUROC at or above the configured floor.",
            )
        )
    return specs


def check_merged(
    experiment: Experiment, maps: np.ndarray, scores: pd.DataFrame
) -> list[AssetCheckResult]:
    """Coverage, finiteness and range of merged maps of shape (N, H, W)."""
    expected = (len(scores), *experiment.plan.image_size)
    finite = bool(np.isfinite(maps).all())
    covered = maps.shape == expected and finite
    normalized = experiment.evaluation.normalization != "none"
    values = np.concatenate([maps.ravel(), scores[["tile_mean", "map_max"]].to_numpy().ravel()])
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    in_range = not normalized or (0.0 <= low and high <= 1.0)
    return [
        AssetCheckResult(
            check_name="maps_cover_every_image",
            passed=covered,
            metadata={"shape": str(maps.shape), "expected": str(expected), "finite": finite},
        ),
        AssetCheckResult(
            check_name="maps_in_range",
            passed=bool(in_range),
            metadata={"min": low, "max": high, "normalized": normalized},
        ),
    ]


def check_report(
    experiment: Experiment, table: pd.DataFrame, defect_types: set[str]
) -> list[AssetCheckResult]:
    """Range of every metric, presence of every defect type, optional AUROC floor."""
    values = table[list(METRICS)].to_numpy(dtype=float)
    defined = values[~np.isnan(values)]
    in_range = bool(((defined >= 0) & (defined <= 1)).all())
    missing = sorted(({"all"} | defect_types) - set(table["defect_type"]))
    results = [
        AssetCheckResult(
            check_name="metrics_in_range",
            passed=in_range,
            metadata={"n_values": int(values.size), "n_undefined": int(np.isnan(values).sum())},
        ),
        AssetCheckResult(
            check_name="every_defect_type_reported",
            passed=not missing,
            metadata={"missing": ", ".join(missing) or "none"},
        ),
    ]
    floor = experiment.evaluation.min_image_auroc
    if floor is not None:
        overall = table[(table["defect_type"] == "all") & (table["image_score"] == "map_max")]
        auroc = float(overall["image_auroc"].iloc[0])
        results.append(
            AssetCheckResult(
                check_name="image_auroc_above_floor",
                passed=bool(auroc >= floor),
                severity=AssetCheckSeverity.WARN,
                metadata={"image_auroc": auroc, "floor": floor},
            )
        )
    return results
