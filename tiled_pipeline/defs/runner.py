"""Run an experiment's whole graph partition by partition in the current Dagster instance."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from dagster import AssetKey, DagsterInstance, Definitions, MultiPartitionKey
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime

from tiled_pipeline import storage as io
from tiled_pipeline.defs.datasets import dataset_key
from tiled_pipeline.defs.jobs import (
    CATEGORY_STAGES,
    SUMMARY_JOB,
    TILE_STAGES,
    category_job_name,
    dataset_job_name,
    tiles_job_name,
)
from tiled_pipeline.defs.resources import DeviceResource, StorageResource
from tiled_pipeline.defs.tiles import stage_key
from tiled_pipeline.experiments import Experiment, ProjectConfig, load_config

logger = logging.getLogger(__name__)

# Step events are DEBUG; the console shows what the assets log (INFO and up). The UI has it all.
SHOWN_METRICS = ("image_auroc", "pixel_auroc", "pixel_aupro", "image_f1", "pixel_f1")
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


@dataclass
class RunSummary:
    """What a run of the graph did and where its results are."""

    experiment: Experiment
    storage: StorageResource
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    reports: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return not self.failed

    def render(self, home: Path, seconds: float) -> str:
        """A plain-text summary: the metric table and where everything is."""
        lines = [
            f"experiment {self.experiment.name}: {len(self.ran)} runs, {len(self.skipped)} "
            f"partitions already fresh, {len(self.failed)} failed, {seconds:.0f} s",
        ]
        lines += [f"FAILED: {name}" for name in self.failed]
        for category, table in self.reports.items():
            columns = ["defect_type", "image_score", *SHOWN_METRICS, "n_images"]
            shown = table[columns].to_string(index=False, float_format="%.3f")
            lines.append(f"\n{self.experiment.name} / {category}:\n{shown}")
            folder = self.storage.partition(self.experiment.name, "metric_report", category)
            lines.append(f"report: {io.current_version(folder, 'metric report')}")
        lines.append(
            f"\nDagster home: {home}  (open the UI: dagster dev, then http://127.0.0.1:3000)"
        )
        return "\n".join(lines)


class GraphRunner:
    """Executes jobs in process, one partition per run, skipping partitions that are fresh."""

    def __init__(self, defs: Definitions, instance: DagsterInstance, force: bool) -> None:
        self.defs = defs
        self.instance = instance
        self.force = force
        self.graph = defs.resolve_asset_graph()

    def is_fresh(self, keys: Sequence[AssetKey], partition: str | None) -> bool:
        """Every asset in ``keys`` is materialized for ``partition`` and not stale."""
        if self.force:
            return False
        view = AssetGraphView(
            temporal_context=TemporalContext(
                effective_dt=get_current_datetime(), last_event_id=None
            ),
            instance=self.instance,
            asset_graph=self.graph,
        )
        resolver = CachingStaleStatusResolver(self.instance, self.graph, loading_context=view)
        return all(resolver.get_status(key, partition) == StaleStatus.FRESH for key in keys)

    def run(self, job: str, keys: Sequence[AssetKey], partition: str | None, summary: RunSummary):
        label = f"{job}[{partition}]" if partition else job
        if self.is_fresh(keys, partition):
            summary.skipped.append(label)
            return
        logger.info("running %s", label)
        result = self.defs.resolve_job_def(job).execute_in_process(
            instance=self.instance,
            partition_key=partition,
            raise_on_error=False,
            run_config=QUIET_CONSOLE,
        )
        (summary.ran if result.success else summary.failed).append(label)


def run_experiment(
    experiment_name: str | None = None,
    categories: Sequence[str] | None = None,
    force: bool = False,
    device: str = "auto",
    config: ProjectConfig | None = None,
    storage: StorageResource | None = None,
    instance: DagsterInstance | None = None,
) -> RunSummary:
    """Materialize dataset, tiles, categories and summary of one experiment, in order."""
    from tiled_pipeline.definitions import build_definitions

    config = config or load_config()
    experiment = config.experiment(experiment_name) if experiment_name else config.experiments[0]
    storage = storage or StorageResource()
    defs = build_definitions(config, storage=storage, device=DeviceResource(device=device))
    runner = GraphRunner(defs, instance or DagsterInstance.get(), force)
    summary = RunSummary(experiment=experiment, storage=storage)
    for category in select_categories(experiment, categories):
        run_category(runner, experiment, category, summary)
    if summary.succeeded:
        runner.run(SUMMARY_JOB, [AssetKey("benchmark_summary")], None, summary)
    return summary


def select_categories(experiment: Experiment, categories: Sequence[str] | None) -> list[str]:
    """The requested categories (``["all"]`` for every one), checked against the experiment's."""
    if list(categories or ()) == ["all"]:
        return list(experiment.categories)
    unknown = sorted(set(categories or ()) - set(experiment.categories))
    if unknown:
        raise ValueError(
            f"categories {unknown} are not in {experiment.name}; choose from "
            f"{list(experiment.categories)} or 'all'"
        )
    return list(categories or experiment.categories[:1])


def list_experiments(config: ProjectConfig | None = None) -> str:
    """One line per configured experiment: name, model, setup, grid, categories."""
    config = config or load_config()
    lines = []
    for e in config.experiments:
        grid = "x".join(map(str, e.plan.grid))
        lines.append(
            f"{e.name}: {e.model} {e.setup.name} (image {e.setup.image_size}, grid {grid}, "
            f"{len(e.tile_keys)} tile model(s)) on {e.dataset_name}: {', '.join(e.categories)}"
        )
    return "\n".join(lines)


def run_category(runner: GraphRunner, experiment: Experiment, category: str, summary: RunSummary):
    """The dataset partition, every tile partition, then the category layer."""
    name = experiment.dataset_name
    runner.run(dataset_job_name(name), [dataset_key(name)], category, summary)
    tile_keys = [stage_key(experiment, stage) for stage in TILE_STAGES]
    for tile in experiment.tile_keys:
        partition = MultiPartitionKey({"category": category, "tile": tile})
        runner.run(tiles_job_name(experiment), tile_keys, partition, summary)
    category_keys = [stage_key(experiment, stage) for stage in CATEGORY_STAGES]
    runner.run(category_job_name(experiment), category_keys, category, summary)
    if summary.succeeded:
        folder = summary.storage.partition(experiment.name, "metric_report", category)
        summary.reports[category] = io.load_table(
            io.current_version(folder, "metric report") / "metrics.parquet"
        )
