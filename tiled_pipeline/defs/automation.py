"""Scheduled retraining, new-data sensors and the conditions that cascade their results.

How a change flows through the graph:

1. ``<experiment>__weekly_retrain`` (a schedule on the tile job, weekly by default) requests one
   run per (category, tile) partition: crops, model and predictions of every tile retrain.
2. ``<dataset>__new_images`` (a sensor) fingerprints each category's source on every tick and
   requests the dataset partition of a category whose source changed (new, removed or resized
   files in a folder dataset; other generator settings or another archive checksum).
3. Everything downstream of the dataset carries ``AutomationCondition.eager()``: a partition is
   requested once its parents have been updated and none of them is still missing or in
   progress, so the tile layer follows a new dataset partition and ``merged_maps`` /
   ``metric_report`` follow the updated tiles of a category. A scheduled retrain queues every
   tile run of a category at once, and queued runs count as in progress, so the category layer
   runs once, after the last tile.

A schedule starts the retraining because the tile layer has no parent that changes on a calendar;
declarative automation carries the cascade because it follows partition mappings (category x
tile -> category) that a schedule or a job cannot express.
"""

import json

from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    MultiPartitionKey,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    schedule,
    sensor,
)

from tiled_pipeline.data import DatasetSpec, source_fingerprint
from tiled_pipeline.defs.jobs import dataset_job_name, tiles_job_name
from tiled_pipeline.experiments import Experiment

WEEKLY = "0 3 * * 0"  # Sundays at 03:00


def build_retrain_schedule(experiment: Experiment, cron: str = WEEKLY) -> ScheduleDefinition:
    """One run per (category, tile) partition of ``experiment`` on every tick of ``cron``."""

    @schedule(
        name=f"{experiment.name}__weekly_retrain",
        cron_schedule=cron,
        job_name=tiles_job_name(experiment),
        default_status=DefaultScheduleStatus.STOPPED,
        description="Retrain every tile model; merged maps and reports follow by automation.",
    )
    def retrain(context: ScheduleEvaluationContext):
        tick = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
        for category in experiment.categories:
            for tile in experiment.tile_keys:
                key = MultiPartitionKey({"category": category, "tile": tile})
                yield RunRequest(
                    run_key=f"{tick}-{key}",
                    partition_key=key,
                    tags={"tiled_pipeline/trigger": "weekly_retrain"},
                )

    return retrain


def build_new_images_sensor(
    dataset_name: str, spec: DatasetSpec, interval_seconds: int = 300
) -> SensorDefinition:
    """Requests a category's dataset partition whenever its source fingerprint changes."""

    @sensor(
        name=f"{dataset_name}__new_images",
        job_name=dataset_job_name(dataset_name),
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.STOPPED,
        description="Watches each category's source for new or changed images.",
    )
    def new_images(context: SensorEvaluationContext):
        seen = json.loads(context.cursor) if context.cursor else {}
        current = {c: source_fingerprint(spec, c) for c in spec.selected_categories()}
        changed = [c for c, digest in current.items() if seen.get(c) != digest]
        if not changed:
            return SkipReason(f"no change in {len(current)} categories of {dataset_name}")
        context.log.info(f"{dataset_name}: source changed for {changed}")
        return SensorResult(
            run_requests=[
                RunRequest(run_key=f"{c}-{current[c]}", partition_key=c) for c in changed
            ],
            cursor=json.dumps(current, sort_keys=True),
        )

    return new_images
