"""The benchmark summary: every experiment and category in one table, beside the paper."""

import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from tiled_pipeline import storage as io
from tiled_pipeline.defs.conditions import CASCADE
from tiled_pipeline.defs.resources import StorageResource
from tiled_pipeline.defs.tiles import stage_key
from tiled_pipeline.defs.versions import code_version
from tiled_pipeline.experiments import ProjectConfig
from tiled_pipeline.pipeline.scoring import summarize

SUMMARY_KEY = AssetKey("benchmark_summary")


def collect_reports(config: ProjectConfig, storage: StorageResource) -> pd.DataFrame:
    """The overall rows of every materialized metric report, with experiment columns."""
    frames = []
    for experiment in config.experiments:
        for category in experiment.categories:
            folder = storage.partition(experiment.name, "metric_report", category)
            if not io.has_version(folder):
                continue
            table = io.load_table(io.current_version(folder, "metric report") / "metrics.parquet")
            table.insert(0, "category", category)
            table.insert(0, "setup", experiment.setup.name)
            table.insert(0, "model", experiment.model)
            table.insert(0, "dataset", experiment.dataset.kind)
            table.insert(0, "experiment", experiment.name)
            frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def build_summary_asset(config: ProjectConfig) -> AssetsDefinition:
    """Unpartitioned table over every experiment's reports, with the published numbers."""

    @asset(
        key=SUMMARY_KEY,
        deps=[AssetDep(stage_key(e, "metric_report")) for e in config.experiments],
        automation_condition=CASCADE,
        group_name="summary",
        code_version=code_version("benchmark_summary", tuple(e.name for e in config.experiments)),
        kinds={"parquet"},
        description="All experiments and categories, ours beside the paper's numbers.",
    )
    def benchmark_summary(context: AssetExecutionContext, storage: StorageResource):
        reports = collect_reports(config, storage)
        if reports.empty:
            raise ValueError(
                "no metric report is materialized yet; materialize at least one category's "
                "metric_report before the benchmark summary"
            )
        table, markdown = summarize(reports)
        folder = storage.summary()
        version = io.new_version(folder)
        io.save_table(version / "summary.parquet", table)
        io.write_bytes(version / "summary.md", markdown.encode())
        io.commit_version(folder, version)
        return MaterializeResult(
            metadata={
                "path": MetadataValue.path(str(version)),
                "n_rows": len(table),
                "summary": MetadataValue.md(markdown),
            }
        )

    return benchmark_summary
