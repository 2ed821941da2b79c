"""The packaged Definitions load, and Dagster's own validation accepts the workspace."""

import os
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey

from tiled_pipeline.definitions import defs
from tiled_pipeline.experiments import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_load_every_experiment_group():
    config = load_config()
    graph = defs.resolve_asset_graph()
    keys = set(graph.get_all_asset_keys())
    for experiment in config.experiments:
        for stage in (
            "tiled_crops",
            "tile_model",
            "tile_predictions",
            "merged_maps",
            "metric_report",
        ):
            assert AssetKey([experiment.name, stage]) in keys
        tiles = graph.get(AssetKey([experiment.name, "tile_model"])).partitions_def
        dimensions = {d.name: d.partitions_def for d in tiles.partitions_defs}
        assert set(dimensions["tile"].get_partition_keys()) == set(experiment.tile_keys)
        assert set(dimensions["category"].get_partition_keys()) == set(experiment.categories)
    assert AssetKey(["datasets", "synthetic", "category_images"]) in keys
    assert AssetKey("benchmark_summary") in keys
    checks = {key.name for key in graph.asset_check_keys}
    assert {"maps_cover_every_image", "metrics_in_range"} <= checks
    assert defs.resolve_job_def("padim_ens9__tiles") is not None


def test_definitions_validate_with_the_dagster_cli(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "DAGSTER_DISABLE_TELEMETRY": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr
