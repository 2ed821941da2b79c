"""Jobs over the asset graph: one per layer that shares a partitioning."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from tiled_pipeline.defs.datasets import dataset_key
from tiled_pipeline.defs.tiles import stage_key
from tiled_pipeline.experiments import Experiment, ProjectConfig

TILE_STAGES = ("tiled_crops", "tile_model", "tile_predictions")
CATEGORY_STAGES = ("merged_maps", "metric_report")
SUMMARY_JOB = "benchmark_summary_job"


def dataset_job_name(dataset_name: str) -> str:
    return f"{dataset_name}__dataset"


def tiles_job_name(experiment: Experiment) -> str:
    return f"{experiment.name}__tiles"


def category_job_name(experiment: Experiment) -> str:
    return f"{experiment.name}__category"


def build_jobs(config: ProjectConfig) -> list[UnresolvedAssetJobDefinition]:
    """Per dataset: its download or generation; per experiment: the tile and category layers."""
    jobs = [
        define_asset_job(
            dataset_job_name(name),
            selection=AssetSelection.assets(dataset_key(name)),
            description=f"Download or generate the {spec.kind} dataset, one category per run.",
        )
        for name, spec in config.datasets.items()
    ]
    for experiment in config.experiments:
        jobs.append(
            define_asset_job(
                tiles_job_name(experiment),
                selection=AssetSelection.assets(*(stage_key(experiment, s) for s in TILE_STAGES)),
                description="Crops, model and predictions of one (category, tile) partition.",
            )
        )
        jobs.append(
            define_asset_job(
                category_job_name(experiment),
                selection=AssetSelection.assets(
                    *(stage_key(experiment, s) for s in CATEGORY_STAGES)
                ),
                description="Merged maps and metric report of one category.",
            )
        )
    jobs.append(
        define_asset_job(
            SUMMARY_JOB,
            selection=AssetSelection.assets("benchmark_summary"),
            description="Gather every materialized metric report beside the paper's numbers.",
        )
    )
    return jobs
