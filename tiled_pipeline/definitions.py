"""The project's one ``Definitions`` object, built from the experiments configuration."""

from __future__ import annotations

from dagster import AssetsDefinition, Definitions

from tiled_pipeline.defs.automation import build_new_images_sensor, build_retrain_schedule
from tiled_pipeline.defs.category import build_merged_asset, build_report_asset
from tiled_pipeline.defs.datasets import build_dataset_asset
from tiled_pipeline.defs.jobs import build_jobs
from tiled_pipeline.defs.resources import DeviceResource, StorageResource
from tiled_pipeline.defs.summary import build_summary_asset
from tiled_pipeline.defs.tiles import build_crops_asset, build_model_asset, build_predictions_asset
from tiled_pipeline.experiments import Experiment, ProjectConfig, load_config


def experiment_assets(experiment: Experiment) -> list[AssetsDefinition]:
    """The asset group of one experiment, prefixed by its name."""
    return [
        build_crops_asset(experiment),
        build_model_asset(experiment),
        build_predictions_asset(experiment),
        build_merged_asset(experiment),
        build_report_asset(experiment),
    ]


def build_definitions(
    config: ProjectConfig,
    storage: StorageResource | None = None,
    device: DeviceResource | None = None,
) -> Definitions:
    """Assets, jobs and resources for every dataset and experiment of ``config``."""
    assets = [build_dataset_asset(name, spec) for name, spec in config.datasets.items()]
    for experiment in config.experiments:
        assets += experiment_assets(experiment)
    assets.append(build_summary_asset(config))
    return Definitions(
        assets=assets,
        jobs=build_jobs(config),
        schedules=[build_retrain_schedule(e) for e in config.experiments],
        sensors=[build_new_images_sensor(n, s) for n, s in config.datasets.items()],
        resources={
            "storage": storage or StorageResource(),
            "device": device or DeviceResource(),
        },
    )


defs = build_definitions(load_config())
