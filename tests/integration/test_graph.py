"""The whole asset graph of tiny experiments, run in a temporary Dagster instance."""

import dataclasses

import numpy as np
import pytest
from dagster import AssetKey, DagsterInstance, MultiPartitionKey

from tiled_pipeline import storage as io
from tiled_pipeline.definitions import build_definitions
from tiled_pipeline.defs.jobs import category_job_name, tiles_job_name
from tiled_pipeline.defs.resources import StorageResource
from tiled_pipeline.defs.runner import run_experiment
from tiled_pipeline.experiments import load_config

pytestmark = pytest.mark.slow


@pytest.fixture
def setup(tiny_config_path, tmp_path):
    config = load_config(tiny_config_path)
    storage = StorageResource(root=str(tmp_path / "storage"), downloads=str(tmp_path / "dl"))
    with DagsterInstance.ephemeral() as instance:
        yield config, storage, instance


def current_versions(storage, experiment, stage, category):
    return {
        tile: io.load_json(storage.partition(experiment.name, stage, category, tile) / io.CURRENT)[
            "version"
        ]
        for tile in experiment.tile_keys
    }


def test_graph_ens4_materializes_every_layer_and_skips_fresh_partitions(setup):
    config, storage, instance = setup
    summary = run_experiment(
        "tiny_ens4", ["weave"], config=config, storage=storage, instance=instance, device="cpu"
    )
    assert summary.succeeded, summary.failed
    experiment = config.experiment("tiny_ens4")
    assert experiment.tile_keys == ("g2x2r0c0", "g2x2r0c1", "g2x2r1c0", "g2x2r1c1")
    # 1 dataset run, 4 tile runs, 1 category run, 1 summary run
    assert len(summary.ran) == 7
    table = summary.reports["weave"]
    manifest = io.load_table(storage.dataset("tiny") / "weave" / "manifest.parquet")
    defects = set(manifest.loc[manifest["label"] == 1, "defect_type"])
    assert defects and set(table["defect_type"]) == {"all"} | defects
    for column in ("image_auroc", "pixel_auroc", "pixel_aupro"):
        values = table[column].dropna().to_numpy()
        assert values.size and ((values >= 0) & (values <= 1)).all()
    merged = io.current_version(storage.partition("tiny_ens4", "merged_maps", "weave"), "m")
    maps = io.load_array(merged / "maps.npy")
    assert maps.shape[1:] == (64, 64) and maps.dtype == np.float16
    for tile in experiment.tile_keys:
        key = MultiPartitionKey({"category": "weave", "tile": tile})
        event = instance.get_latest_materialization_event(AssetKey(["tiny_ens4", "tile_model"]))
        assert event is not None
        assert instance.get_materialized_partitions(AssetKey(["tiny_ens4", "tile_model"])) >= {key}
    again = run_experiment(
        "tiny_ens4", ["weave"], config=config, storage=storage, instance=instance, device="cpu"
    )
    assert again.ran == [] and len(again.skipped) == 7


def test_graph_rematerializing_one_tile_leaves_the_others(setup):
    config, storage, instance = setup
    experiment = config.experiment("tiny_ens4")
    assert run_experiment(
        "tiny_ens4", ["weave"], config=config, storage=storage, instance=instance
    ).succeeded
    before = current_versions(storage, experiment, "tile_model", "weave")
    count_before = len(
        instance.fetch_materializations(AssetKey(["tiny_ens4", "tile_model"]), limit=100).records
    )
    defs = build_definitions(config, storage=storage)
    partition = MultiPartitionKey({"category": "weave", "tile": "g2x2r1c0"})
    result = defs.resolve_job_def(tiles_job_name(experiment)).execute_in_process(
        instance=instance, partition_key=partition
    )
    assert result.success
    after = current_versions(storage, experiment, "tile_model", "weave")
    assert after["g2x2r1c0"] != before["g2x2r1c0"]
    assert {k: v for k, v in after.items() if k != "g2x2r1c0"} == {
        k: v for k, v in before.items() if k != "g2x2r1c0"
    }
    records = instance.fetch_materializations(
        AssetKey(["tiny_ens4", "tile_model"]), limit=100
    ).records
    assert len(records) == count_before + 1
    assert records[0].partition_key == partition


def test_graph_shared_model_st9_has_one_tile_partition(setup):
    config, storage, instance = setup
    summary = run_experiment(
        "tiny_st9", ["speckle"], config=config, storage=storage, instance=instance
    )
    assert summary.succeeded, summary.failed
    experiment = config.experiment("tiny_st9")
    assert experiment.tile_keys == ("g3x3all",)
    crops = io.current_version(
        storage.partition("tiny_st9", "tiled_crops", "speckle", "g3x3all"), "crops"
    )
    assert io.load_array(crops / "train.npy").shape[1:] == (9, 32, 32, 3)
    summary_table = io.load_table(io.current_version(storage.summary(), "s") / "summary.parquet")
    assert "tiny_st9" in set(summary_table["experiment"])


def test_graph_failed_blocking_check_keeps_previous_maps_and_blocks_report(setup, monkeypatch):
    config, storage, instance = setup
    assert run_experiment(
        "tiny_ens4", ["weave"], config=config, storage=storage, instance=instance
    ).succeeded
    merged_folder = storage.partition("tiny_ens4", "merged_maps", "weave")
    before = io.current_version(merged_folder, "merged maps")
    reports_before = len(
        instance.fetch_materializations(AssetKey(["tiny_ens4", "metric_report"]), limit=10).records
    )
    import tiled_pipeline.defs.category as category_module

    real = category_module.merge_category

    def broken(*args):
        merged = real(*args)
        return dataclasses.replace(merged, maps=np.full_like(merged.maps, np.nan))

    monkeypatch.setattr(category_module, "merge_category", broken)
    defs = build_definitions(config, storage=storage)
    result = defs.resolve_job_def(
        category_job_name(config.experiment("tiny_ens4"))
    ).execute_in_process(instance=instance, partition_key="weave", raise_on_error=False)
    assert not result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["maps_cover_every_image"] is False
    assert io.current_version(merged_folder, "merged maps") == before
    reports_after = len(
        instance.fetch_materializations(AssetKey(["tiny_ens4", "metric_report"]), limit=10).records
    )
    assert reports_after == reports_before
