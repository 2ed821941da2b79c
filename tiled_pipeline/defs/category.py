"""Per-category assets of an experiment: merged maps and the metric report."""

import base64

import numpy as np
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetDep,
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    StaticPartitionsDefinition,
    asset,
)

from tiled_pipeline import storage as io
from tiled_pipeline.defs.checks import (
    check_merged,
    check_report,
    merged_check_specs,
    report_check_specs,
)
from tiled_pipeline.defs.conditions import CASCADE
from tiled_pipeline.defs.resources import StorageResource
from tiled_pipeline.defs.tiles import BY_CATEGORY, stage_key
from tiled_pipeline.defs.versions import code_version
from tiled_pipeline.experiments import Experiment
from tiled_pipeline.pipeline.gather import gather_split
from tiled_pipeline.pipeline.scoring import evaluate_category, merge_category


def as_float16(maps: np.ndarray) -> np.ndarray:
    """float16 halves storage; raw maps beyond its range stay float32 rather than turn inf."""
    if np.abs(maps).max(initial=0.0) < np.finfo(np.float16).max:
        return maps.astype(np.float16)
    return maps.astype(np.float32)


def commit_if_passed(context, folder, version, checks: list[AssetCheckResult], stage: str) -> bool:
    """Commit ``version`` only when every blocking check passed; else keep the previous one."""
    if all(check.passed or check.severity == AssetCheckSeverity.WARN for check in checks):
        io.commit_version(folder, version)
        return True
    failed = [c.check_name for c in checks if not c.passed]
    context.log.error(
        f"{stage}: blocking check(s) {failed} failed; the new output stays uncommitted at "
        f"{version} and the previous version (if any) remains in force"
    )
    return False


def category_partitions(experiment: Experiment) -> StaticPartitionsDefinition:
    """One partition per category of the experiment's dataset."""
    return StaticPartitionsDefinition(list(experiment.categories))


def build_merged_asset(experiment: Experiment) -> AssetsDefinition:
    """Full-resolution maps merged from every tile, normalized, with image scores."""

    @asset(
        key=stage_key(experiment, "merged_maps"),
        partitions_def=category_partitions(experiment),
        deps=[AssetDep(stage_key(experiment, "tile_predictions"), partition_mapping=BY_CATEGORY)],
        automation_condition=CASCADE,
        group_name=experiment.name,
        code_version=code_version(
            "merged_maps", experiment.merge, experiment.evaluation, experiment.setup
        ),
        kinds={"numpy", "parquet"},
        check_specs=merged_check_specs(stage_key(experiment, "merged_maps")),
        description="Merged maps (overlap mean, seam smoothing), scores and thresholds.",
    )
    def merged_maps(context: AssetExecutionContext, storage: StorageResource):
        category = context.partition_key

        def version_of(tile: str):
            folder = storage.partition(experiment.name, "tile_predictions", category, tile)
            return io.current_version(folder, f"tile predictions {category}/{tile}")

        test = gather_split(experiment, "test", version_of)
        holdout = gather_split(experiment, "holdout", version_of)
        merged = merge_category(experiment, test, holdout)
        checks = check_merged(experiment, merged.maps, merged.scores)
        folder = storage.partition(experiment.name, "merged_maps", category)
        version = io.new_version(folder)
        io.save_array(version / "maps.npy", as_float16(merged.maps))
        io.save_array(version / "masks.npy", merged.masks)
        if merged.predicted_masks is not None:
            io.save_array(version / "predicted_masks.npy", merged.predicted_masks)
        io.save_table(version / "scores.parquet", merged.scores)
        io.save_json(version / "stats.json", merged.stats)
        committed = commit_if_passed(context, folder, version, checks, "merged_maps")
        return MaterializeResult(
            check_results=checks,
            metadata={
                "committed": committed,
                "path": MetadataValue.path(str(version)),
                "n_images": len(merged.scores),
                "map_shape": str(tuple(merged.maps.shape[1:])),
                "normalization": experiment.evaluation.normalization,
                "stats_source": experiment.evaluation.stats_source,
                "image_threshold_map_max": float(merged.stats["image_thresholds"]["map_max"]),
                "pixel_threshold": float(merged.stats["pixel_threshold"]),
            },
        )

    return merged_maps


def build_report_asset(experiment: Experiment) -> AssetsDefinition:
    """Image/pixel AUROC, AUPRO and F1 per defect type, a markdown summary and a figure."""

    @asset(
        key=stage_key(experiment, "metric_report"),
        partitions_def=category_partitions(experiment),
        deps=[stage_key(experiment, "merged_maps")],
        automation_condition=CASCADE,
        group_name=experiment.name,
        code_version=code_version("metric_report", experiment.evaluation),
        kinds={"parquet"},
        check_specs=report_check_specs(experiment, stage_key(experiment, "metric_report")),
        description="Metric table (parquet), markdown summary and a figure of the extremes.",
    )
    def metric_report(context: AssetExecutionContext, storage: StorageResource):
        category = context.partition_key
        merged = io.current_version(
            storage.partition(experiment.name, "merged_maps", category), "merged maps"
        )
        predicted = merged / "predicted_masks.npy"
        scores = io.load_table(merged / "scores.parquet")
        report = evaluate_category(
            experiment,
            maps=io.load_array(merged / "maps.npy").astype(np.float32),
            masks=io.load_array(merged / "masks.npy"),
            scores=scores,
            stats=io.load_json(merged / "stats.json"),
            predicted_masks=io.load_array(predicted) if predicted.exists() else None,
            title=f"{experiment.name} / {category}",
        )
        defect_types = set(scores.loc[scores["label"] == 1, "defect_type"])
        checks = check_report(experiment, report.table, defect_types)
        folder = storage.partition(experiment.name, "metric_report", category)
        version = io.new_version(folder)
        io.save_table(version / "metrics.parquet", report.table)
        io.write_bytes(version / "report.md", report.markdown.encode())
        io.write_bytes(version / "figure.png", report.figure_png)
        committed = commit_if_passed(context, folder, version, checks, "metric_report")
        for warning in report.warnings:
            context.log.warning(warning)
        image = base64.b64encode(report.figure_png).decode()
        table = report.table
        overall = table[(table["defect_type"] == "all") & (table["image_score"] == "map_max")]
        overall = overall.iloc[0]
        return MaterializeResult(
            check_results=checks,
            metadata={
                "committed": committed,
                "path": MetadataValue.path(str(version)),
                "summary": MetadataValue.md(report.markdown),
                "figure": MetadataValue.md(f"![anomaly maps](data:image/png;base64,{image})"),
                **{
                    name: MetadataValue.float(round(float(overall[name]), 4))
                    for name in ("image_auroc", "pixel_auroc", "pixel_aupro")
                },
            },
        )

    return metric_report
