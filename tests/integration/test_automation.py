"""Schedules, sensors, declarative automation and staleness, through Dagster's own evaluation."""

import dataclasses
import datetime
import json

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    MultiPartitionKey,
    build_schedule_context,
    build_sensor_context,
    evaluate_automation_conditions,
)

from tiled_pipeline.definitions import build_definitions
from tiled_pipeline.defs.resources import StorageResource
from tiled_pipeline.defs.runner import run_experiment
from tiled_pipeline.experiments import load_config, parse_config

pytestmark = pytest.mark.slow


@pytest.fixture
def config(tiny_config_path):
    return load_config(tiny_config_path)


def test_automation_weekly_schedule_requests_every_tile_partition(config):
    defs = build_definitions(config)
    schedule = defs.resolve_schedule_def("tiny_ens4__weekly_retrain")
    assert schedule.cron_schedule == "0 3 * * 0"
    with DagsterInstance.ephemeral() as instance:
        tick = datetime.datetime(2026, 12, 6, 3, tzinfo=datetime.UTC)
        context = build_schedule_context(
            instance=instance,
            scheduled_execution_time=tick,
            repository_def=defs.get_repository_def(),
        )
        requests = schedule.evaluate_tick(context).run_requests
    keys = {r.partition_key for r in requests}
    expected = {
        MultiPartitionKey({"category": c, "tile": t})
        for c in ("weave", "speckle")
        for t in ("g2x2r0c0", "g2x2r0c1", "g2x2r1c0", "g2x2r1c1")
    }
    assert keys == expected
    assert all(r.job_name in (None, "tiny_ens4__tiles") for r in requests)
    assert len({r.run_key for r in requests}) == len(requests)


def test_automation_sensor_requests_only_changed_categories(tmp_path):
    root = tmp_path / "tree"
    for category in ("bolt", "nut"):
        (root / category / "train" / "good").mkdir(parents=True)
        (root / category / "test" / "good").mkdir(parents=True)
    raw = {
        "datasets": {"mine": {"kind": "folder", "root": str(root)}},
        "experiments": [{"name": "e", "dataset": "mine", "model": "padim"}],
    }
    config = parse_config(raw)
    defs = build_definitions(config)
    sensor = defs.resolve_sensor_def("mine__new_images")
    repo = defs.get_repository_def()
    with DagsterInstance.ephemeral() as instance:

        def tick(cursor=None):
            context = build_sensor_context(instance=instance, cursor=cursor, repository_def=repo)
            return sensor.evaluate_tick(context)

        first = tick()
        assert {r.partition_key for r in first.run_requests} == {"bolt", "nut"}
        cursor = first.cursor
        quiet = tick(cursor)
        assert quiet.run_requests == [] and quiet.skip_message
        (root / "nut" / "train" / "good" / "new.png").write_bytes(b"x" * 10)
        changed = tick(cursor)
        assert [r.partition_key for r in changed.run_requests] == ["nut"]
        assert json.loads(changed.cursor)["bolt"] == json.loads(cursor)["bolt"]


def test_automation_category_layer_follows_updated_tiles(config, tmp_path):
    storage = StorageResource(root=str(tmp_path / "storage"))
    defs = build_definitions(config, storage=storage)
    with DagsterInstance.ephemeral() as instance:
        assert run_experiment(
            "tiny_ens4", ["weave"], config=config, storage=storage, instance=instance
        ).succeeded
        result = evaluate_automation_conditions(defs=defs, instance=instance)
        cursor = result.cursor
        merged = AssetKey(["tiny_ens4", "merged_maps"])
        assert result.get_requested_partitions(merged) == set()
        job = defs.resolve_job_def("tiny_ens4__tiles")
        for tile in ("g2x2r0c0", "g2x2r0c1", "g2x2r1c0", "g2x2r1c1"):
            key = MultiPartitionKey({"category": "weave", "tile": tile})
            assert job.execute_in_process(instance=instance, partition_key=key).success
        result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        # speckle's tiles are missing, so only weave's category layer follows, in one run
        assert result.get_requested_partitions(merged) == {"weave"}
        report = AssetKey(["tiny_ens4", "metric_report"])
        assert result.get_requested_partitions(report) == {"weave"}
        crops = AssetKey(["tiny_ens4", "tiled_crops"])
        assert result.get_requested_partitions(crops) == set()


def changed(config, **params):
    experiment = config.experiment("tiny_ens4")
    changes = {}
    if "n_features" in params:
        model = dict(experiment.model_params) | params
        changes["model_params"] = tuple(sorted(model.items()))
    if "seam_sigma" in params:
        changes["merge"] = dataclasses.replace(experiment.merge, seam_sigma=params["seam_sigma"])
    new = dataclasses.replace(experiment, **changes)
    return dataclasses.replace(config, experiments=(new, *config.experiments[1:]))


@pytest.mark.parametrize(
    ("params", "reruns"),
    [
        ({"n_features": 12}, {"tiny_ens4__tiles": 4, "tiny_ens4__category": 1}),
        ({"seam_sigma": 3.0}, {"tiny_ens4__category": 1}),
    ],
)
def test_automation_changed_parameter_reruns_only_affected_partitions(
    config, tmp_path, params, reruns
):
    storage = StorageResource(root=str(tmp_path / "storage"))
    with DagsterInstance.ephemeral() as instance:
        assert run_experiment(
            "tiny_ens4", ["weave"], config=config, storage=storage, instance=instance
        ).succeeded
        again = run_experiment(
            "tiny_ens4",
            ["weave"],
            config=changed(config, **params),
            storage=storage,
            instance=instance,
        )
    assert again.succeeded
    ran = {}
    for label in again.ran:
        job = label.split("[")[0]
        ran[job] = ran.get(job, 0) + 1
    ran.pop("benchmark_summary_job", None)
    assert ran == reruns
    assert not any(label.startswith("tiny__dataset") for label in again.ran)
