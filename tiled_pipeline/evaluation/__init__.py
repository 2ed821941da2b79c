"""Evaluation: normalization, thresholds, AUROC / AUPRO / F1, report tables, figures, paper numbers.

One category, ``image`` normalization fitted on the test set itself::

    scores = image_scores(tile_scores, maps)  # {"tile_mean": (N,), "map_max": (N,)}
    stats = {m: fit_stats(s, labels, maps, masks) for m, s in scores.items()}
    normalized = {m: normalize_scores(s, stats[m]) for m, s in scores.items()}
    table = evaluate(
        labels, normalized, normalize_maps(maps, stats["map_max"]), masks, defect_types,
        image_thresholds={m: 0.5 for m in normalized}, pixel_threshold=0.5,
    )
    summary = report_markdown(table, title="padim_ens9 / carpet")

Nothing here imports Dagster; matplotlib is imported only when a figure is drawn."""

from tiled_pipeline.evaluation._validation import MetricUndefinedWarning
from tiled_pipeline.evaluation.aupro import DEFAULT_FPR_LIMIT, pixel_aupro, pro_curve
from tiled_pipeline.evaluation.figures import anomaly_figure
from tiled_pipeline.evaluation.metrics import (
    binary_f1,
    image_auroc,
    image_f1,
    pixel_auroc,
    pixel_f1,
)
from tiled_pipeline.evaluation.normalization import (
    NormalizationStage,
    NormalizationStats,
    decision_thresholds,
    fit_stats,
    fit_tile_stats,
    min_max_normalize,
    normalize_maps,
    normalize_scores,
    normalize_tiles,
)
from tiled_pipeline.evaluation.paper import (
    compare_with_paper,
    load_paper_results,
    load_paper_training_time,
    match_key,
)
from tiled_pipeline.evaluation.pixels import Connectivity, PixelScores
from tiled_pipeline.evaluation.report import (
    ALL_TYPES,
    METRIC_COLUMNS,
    REPORT_COLUMNS,
    ReportSetup,
    defect_subsets,
    evaluate,
    report_markdown,
)
from tiled_pipeline.evaluation.scores import ScoreMethod, image_scores
from tiled_pipeline.evaluation.splits import StatsSource, StatsSplit, split_for_stats
from tiled_pipeline.evaluation.thresholds import (
    ThresholdStage,
    adaptive_f1_threshold,
    pixel_adaptive_f1_threshold,
    tile_decisions,
)

__all__ = [
    "ALL_TYPES",
    "DEFAULT_FPR_LIMIT",
    "METRIC_COLUMNS",
    "REPORT_COLUMNS",
    "Connectivity",
    "MetricUndefinedWarning",
    "NormalizationStage",
    "NormalizationStats",
    "PixelScores",
    "ReportSetup",
    "ScoreMethod",
    "StatsSource",
    "StatsSplit",
    "ThresholdStage",
    "adaptive_f1_threshold",
    "anomaly_figure",
    "binary_f1",
    "compare_with_paper",
    "decision_thresholds",
    "defect_subsets",
    "evaluate",
    "fit_stats",
    "fit_tile_stats",
    "image_auroc",
    "image_f1",
    "image_scores",
    "load_paper_results",
    "load_paper_training_time",
    "match_key",
    "min_max_normalize",
    "normalize_maps",
    "normalize_scores",
    "normalize_tiles",
    "pixel_adaptive_f1_threshold",
    "pixel_aupro",
    "pixel_auroc",
    "pixel_f1",
    "pro_curve",
    "report_markdown",
    "split_for_stats",
    "tile_decisions",
]
