"""The project as a user runs it: ``dagster dev`` on loopback, driven over GraphQL, and the CLI."""

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance

from tiled_pipeline import storage as io
from tiled_pipeline.defs.resources import StorageResource

from ..conftest import TINY_CONFIG
from .dagster_server import DagsterDev, processes_with_env, run_command, wait_for

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOCATION = "tiled_pipeline"
DATASET = ["datasets", "tiny", "category_images"]
STAGES = ("tiled_crops", "tile_model", "tile_predictions", "merged_maps", "metric_report")
CATEGORIES = ["weave", "speckle"]
ENS4_TILES = ["g2x2r0c0", "g2x2r0c1", "g2x2r1c0", "g2x2r1c1"]
BACKFILL_ASSETS = [DATASET, *(["tiny_ens4", stage] for stage in STAGES)]
# One process per run instead of one per step: the runs of a backfill start together on two
# CPU cores, and every process imports torch.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}

ASSETS_QUERY = """
query {
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        location { name }
        jobs { name }
        sensors { name sensorState { status } }
        schedules { name scheduleState { status } }
      }
    }
    ... on PythonError { message }
  }
  assetNodes {
    assetKey { path }
    partitionKeys
    partitionKeysByDimension { name partitionKeys }
    assetChecksOrError {
      __typename
      ... on AssetChecks { checks { name blocking } }
    }
  }
}
"""

LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on InvalidSubsetError { message }
  }
}
"""

BACKFILL_QUERY = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      status
      error { message }
      assetBackfillData {
        assetBackfillStatuses {
          ... on AssetPartitionsStatusCounts {
            assetKey { path }
            numPartitionsTargeted
            numPartitionsMaterialized
            numPartitionsFailed
          }
        }
      }
    }
    ... on PythonError { message }
  }
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
    ... on Runs { results { runId status tags { key value } assetSelection { path } } }
  }
}
"""

CHECKS_QUERY = """
query($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    assetChecksOrError {
      ... on AssetChecks {
        checks { name executionForLatestMaterialization { status runId } }
      }
    }
  }
}
"""


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory) -> Iterator[DagsterDev]:
    """``dagster dev`` over the project's workspace, with the tiny experiments and fresh storage."""
    root = tmp_path_factory.mktemp("dagster_dev")
    home = root / "home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    config = root / "experiments.toml"
    config.write_text(TINY_CONFIG)
    env = {
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "TILED_PIPELINE_EXPERIMENTS": str(config),
        "TILED_PIPELINE_STORAGE": str(root / "storage"),
    }
    server = DagsterDev(PROJECT_ROOT / "workspace.yaml", home, env)
    try:
        server.start()
        server.wait_for_location(LOCATION, timeout=120)
        yield server
    finally:
        server.stop()  # raises if any of its processes outlives it


@pytest.fixture(scope="module")
def graph(dagster_dev) -> dict[str, Any]:
    return dagster_dev.query(ASSETS_QUERY)


def nodes_by_key(graph: dict[str, Any]) -> dict[tuple[str, ...], dict[str, Any]]:
    return {tuple(node["assetKey"]["path"]): node for node in graph["assetNodes"]}


def test_webserver_code_location_loads_every_asset(dagster_dev, graph):
    entry = dagster_dev.wait_for_location(LOCATION, timeout=1)
    assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
    (repository,) = graph["repositoriesOrError"]["nodes"]
    assert repository["location"]["name"] == LOCATION
    expected = {tuple(DATASET), ("benchmark_summary",)}
    expected |= {(name, stage) for name in ("tiny_ens4", "tiny_st9") for stage in STAGES}
    assert set(nodes_by_key(graph)) == expected
    jobs = {job["name"] for job in repository["jobs"]}
    assert {"tiny__dataset", "tiny_ens4__tiles", "tiny_ens4__category"} <= jobs
    assert {"tiny_st9__tiles", "tiny_st9__category", "benchmark_summary_job"} <= jobs


def test_webserver_partitions_are_category_and_category_by_tile(graph):
    nodes = nodes_by_key(graph)
    for stage in ("tiled_crops", "tile_model", "tile_predictions"):
        node = nodes[("tiny_ens4", stage)]
        dimensions = {d["name"]: d["partitionKeys"] for d in node["partitionKeysByDimension"]}
        assert dimensions == {"category": CATEGORIES, "tile": ENS4_TILES}
        assert node["partitionKeys"] == [f"{c}|{t}" for c in CATEGORIES for t in ENS4_TILES]
    shared = nodes[("tiny_st9", "tile_model")]["partitionKeys"]
    assert shared == ["weave|g3x3all", "speckle|g3x3all"]
    for key in (tuple(DATASET), ("tiny_ens4", "merged_maps"), ("tiny_ens4", "metric_report")):
        assert nodes[key]["partitionKeys"] == CATEGORIES
    assert nodes[("benchmark_summary",)]["partitionKeys"] == []


def test_webserver_category_assets_carry_blocking_checks(graph):
    nodes = nodes_by_key(graph)
    expected = {
        "merged_maps": {"maps_cover_every_image", "maps_in_range"},
        "metric_report": {"metrics_in_range", "every_defect_type_reported"},
    }
    for experiment in ("tiny_ens4", "tiny_st9"):
        for stage, names in expected.items():
            checks = nodes[(experiment, stage)]["assetChecksOrError"]["checks"]
            assert {c["name"] for c in checks} == names
            assert all(c["blocking"] for c in checks)
    checked = {key for key, node in nodes.items() if node["assetChecksOrError"]["checks"]}
    assert checked == {(e, s) for e in ("tiny_ens4", "tiny_st9") for s in expected}


def test_webserver_automation_waits_to_be_turned_on(graph):
    (repository,) = graph["repositoriesOrError"]["nodes"]
    states = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
    states |= {s["name"]: s["scheduleState"]["status"] for s in repository["schedules"]}
    declared = {"tiny__new_images", "tiny_ens4__weekly_retrain", "tiny_st9__weekly_retrain"}
    assert declared <= set(states)
    # Nothing starts on its own (the default automation sensor included) until a user turns it on.
    assert set(states.values()) == {"STOPPED"}, states


def launch_category_backfill(server: DagsterDev, category: str) -> str:
    """An asset backfill of ``category`` from the dataset to the metric report of tiny_ens4.

    Only the root (the dataset) names the partition; the partition mappings carry it to every
    ``<category>|<tile>`` partition of the tile layer and to ``<category>`` of the category layer.
    """
    params = {
        "assetSelection": [{"path": key} for key in BACKFILL_ASSETS],
        "partitionNames": [category],
        "title": f"tiny_ens4 {category}",
        "runConfigData": IN_PROCESS,
    }
    answer = server.query(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert answer["__typename"] == "LaunchBackfillSuccess", answer
    return answer["backfillId"]


def wait_for_backfill(server: DagsterDev, backfill_id: str, timeout: float) -> dict[str, Any]:
    """Poll until the backfill leaves the requested state; returns its last answer."""
    last: list[dict[str, Any]] = []

    def probe() -> dict[str, Any] | None:
        answer = server.query(BACKFILL_QUERY, {"id": backfill_id})
        last[:] = [answer]
        status = answer["partitionBackfillOrError"].get("status")
        return answer if status not in ("REQUESTED", "CANCELING") else None

    try:
        return wait_for(probe, timeout, 5.0, f"backfill {backfill_id} done", server.log)
    except TimeoutError as error:
        raise TimeoutError(f"{error}\nlast state: {last}") from None


def test_webserver_backfill_of_one_category_runs_every_layer(dagster_dev):
    backfill_id = launch_category_backfill(dagster_dev, "weave")
    answer = wait_for_backfill(dagster_dev, backfill_id, timeout=420)
    backfill = answer["partitionBackfillOrError"]
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill

    # Every targeted partition materialized: 1 dataset, 4 x 3 tile and 2 category partitions.
    counts = {
        tuple(s["assetKey"]["path"]): (s["numPartitionsTargeted"], s["numPartitionsMaterialized"])
        for s in backfill["assetBackfillData"]["assetBackfillStatuses"]
    }
    targeted = {tuple(DATASET): 1}
    targeted |= {("tiny_ens4", stage): len(ENS4_TILES) for stage in STAGES[:3]}
    targeted |= {("tiny_ens4", stage): 1 for stage in STAGES[3:]}
    assert counts == {key: (n, n) for key, n in targeted.items()}

    # The daemon's runs all succeeded and touched only weave's partitions.
    runs = answer["runsOrError"]["results"]
    assert runs and {r["status"] for r in runs} == {"SUCCESS"}, runs
    partitions = {t["value"] for r in runs for t in r["tags"] if t["key"] == "dagster/partition"}
    assert partitions == {"weave", *(f"weave|{tile}" for tile in ENS4_TILES)}

    # The blocking checks ran in the category run and passed.
    keys = [{"path": ["tiny_ens4", s]} for s in ("merged_maps", "metric_report")]
    for node in dagster_dev.query(CHECKS_QUERY, {"keys": keys})["assetNodes"]:
        for check in node["assetChecksOrError"]["checks"]:
            assert check["executionForLatestMaterialization"]["status"] == "SUCCEEDED", check

    # On storage: weave's report is committed, speckle was never touched.
    storage = StorageResource(root=dagster_dev.env["TILED_PIPELINE_STORAGE"])
    report = io.current_version(storage.partition("tiny_ens4", "metric_report", "weave"), "r")
    table = io.load_table(report / "metrics.parquet")
    assert "all" in set(table["defect_type"]) and table["image_auroc"].between(0, 1).all()
    assert not io.has_version(storage.partition("tiny_ens4", "metric_report", "speckle"))
    assert not (storage.dataset("tiny") / "speckle").exists()


def test_dagster_cli_materializes_one_category_of_the_dataset(
    tiny_config_path, tmp_path, monkeypatch
):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "TILED_PIPELINE_EXPERIMENTS": str(tiny_config_path),
        "TILED_PIPELINE_STORAGE": str(tmp_path / "storage"),
    }
    command = "dagster asset materialize -m tiled_pipeline.definitions"
    command += " --select datasets/tiny/category_images --partition weave"
    output = run_command(command.split(), env, cwd=tmp_path, timeout=240)
    assert "RUN_SUCCESS" in output, output[-4000:]
    storage = StorageResource(root=env["TILED_PIPELINE_STORAGE"])
    manifest = io.load_table(storage.dataset("tiny") / "weave" / "manifest.parquet")
    assert len(manifest) and set(manifest["split"]) == {"train", "test"}
    assert not (storage.dataset("tiny") / "speckle").exists()
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # dagster.yaml reads it
    with DagsterInstance.get() as instance:
        assert instance.get_materialized_partitions(AssetKey(DATASET)) == {"weave"}
    assert processes_with_env("DAGSTER_HOME", str(home)) == []
