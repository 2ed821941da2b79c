"""One category on an S3-compatible store (moto on loopback), and a write that fails midway."""

import json
import logging
import urllib.request
import uuid
from collections.abc import Iterator

import boto3
import fsspec
import pandas as pd
import pytest
import s3fs
from dagster import DagsterInstance, MultiPartitionKey
from dagster._utils.error import SerializableErrorInfo
from moto.server import ThreadedMotoServer

from tiled_pipeline import storage as io
from tiled_pipeline.definitions import build_definitions
from tiled_pipeline.defs.jobs import dataset_job_name, tiles_job_name
from tiled_pipeline.defs.resources import StorageResource
from tiled_pipeline.defs.runner import run_experiment
from tiled_pipeline.experiments import load_config

pytestmark = pytest.mark.slow

PREFIX = "runs/tiny"
# The files of one committed version of each stage's partition.
TILE_FILES = {
    "tiled_crops": {
        "index.parquet",
        *("train.npy", "train_masks.npy", "holdout.npy", "holdout_masks.npy"),
        *("test.npy", "test_masks.npy"),
    },
    "tile_model": {"model.pt"},
    "tile_predictions": {"scores.parquet", "test_maps.npy", "holdout_maps.npy"},
}
CATEGORY_FILES = {
    "merged_maps": {"maps.npy", "masks.npy", "scores.parquet", "stats.json"},
    "metric_report": {"metrics.parquet", "figure.png", "report.md"},
}
# botocore's client config: one attempt per request, so a refused connection fails at once.
ONE_ATTEMPT = {"retries": {"total_max_attempts": 1}}


class MotoS3:
    """moto's S3 server on 127.0.0.1; it can be stopped and started again on the same port.

    moto keeps its buckets in this process, so objects survive a stop and a start.
    """

    def __init__(self) -> None:
        self.port = 0
        self.server: ThreadedMotoServer | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.port = self.server.get_host_and_port()[1]

    def stop(self) -> None:
        """Stop serving and close the socket, so that clients are refused, not left hanging."""
        if self.server is None:
            return
        self.server.stop()
        self.server._server.server_close()  # stop() alone leaves the port listening
        self.server = None

    def reset(self) -> None:
        """Drop every bucket (moto's state is global to the process)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=30)


@pytest.fixture
def moto(monkeypatch, caplog) -> Iterator[MotoS3]:
    """A moto server with dummy credentials, and fsspec's s3 defaults restored afterwards."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "NO_PROXY": "127.0.0.1,localhost",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # StorageResource writes its endpoint into fsspec's s3 defaults; a fresh dict keeps that
    # from leaking into other tests, and a cleared cache keeps their filesystems apart.
    monkeypatch.setitem(fsspec.config.conf, "s3", {})
    s3fs.S3FileSystem.clear_instance_cache()
    caplog.set_level(logging.WARNING, logger="werkzeug")  # one log line per request otherwise
    server = MotoS3()
    server.start()
    yield server
    if server.server is None:
        server.start()
    server.reset()
    server.stop()
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def bucket(moto) -> str:
    name = f"tiled-{uuid.uuid4().hex[:8]}"
    client(moto).create_bucket(Bucket=name)
    return name


@pytest.fixture
def setup(tiny_config_path, moto, bucket, tmp_path):
    config = load_config(tiny_config_path)
    storage = StorageResource(
        root=f"s3://{bucket}/{PREFIX}", endpoint_url=moto.endpoint, downloads=str(tmp_path / "dl")
    )
    with DagsterInstance.ephemeral() as instance:
        yield config, storage, instance


def client(moto: MotoS3):
    return boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1")


def list_keys(moto: MotoS3, bucket: str, prefix: str = PREFIX) -> list[str]:
    """Keys below ``prefix``, relative to it."""
    pages = client(moto).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"][len(prefix) + 1 :] for page in pages for o in page.get("Contents", [])]


def files_of(keys: list[str], folder: str) -> tuple[str, set[str]]:
    """The one version folder below partition ``folder`` and its file names.

    Fails unless ``folder`` has a pointer and exactly one version (older ones are dropped).
    """
    versions = {k[len(folder) + 1 :].split("/")[0] for k in keys if k.startswith(f"{folder}/v")}
    assert f"{folder}/{io.CURRENT}" in keys, f"no pointer in {folder}"
    assert len(versions) == 1, f"{folder} keeps {sorted(versions)}; older versions should go"
    version = versions.pop()
    names = {k.rsplit("/", 1)[1] for k in keys if k.startswith(f"{folder}/{version}/")}
    return version, names


def pointer(moto: MotoS3, bucket: str, folder: str) -> str:
    body = client(moto).get_object(Bucket=bucket, Key=f"{PREFIX}/{folder}/{io.CURRENT}")["Body"]
    return json.loads(body.read())["version"]


def test_s3_one_category_writes_every_artifact_to_the_bucket(setup, moto, bucket):
    config, storage, instance = setup
    summary = run_experiment(
        "tiny_ens4", ["weave"], config=config, storage=storage, instance=instance, device="cpu"
    )
    assert summary.succeeded, summary.failed
    keys = list_keys(moto, bucket)
    assert not [k for k in keys if ".tmp" in k], "temporary names left behind"
    assert not [k for k in keys if "speckle" in k]

    # The dataset: every image and mask the manifest lists, and the manifest itself.
    manifest = io.load_table(storage.dataset("tiny") / "weave" / "manifest.parquet")
    listed = {*manifest["image_path"], *(p for p in manifest["mask_path"] if p)}
    stored = {f"s3://{bucket}/{PREFIX}/{k}" for k in keys}
    assert manifest["label"].sum() > 0 and listed <= stored
    assert "datasets/tiny/weave/manifest.parquet" in keys

    # Each stage's partition: one committed version holding that stage's files.
    experiment = config.experiment("tiny_ens4")
    for stage, expected in TILE_FILES.items():
        for tile in experiment.tile_keys:
            folder = f"experiments/tiny_ens4/{stage}/weave/{tile}"
            version, names = files_of(keys, folder)
            assert names == expected, folder
            assert pointer(moto, bucket, folder) == version
    for stage, expected in CATEGORY_FILES.items():
        assert files_of(keys, f"experiments/tiny_ens4/{stage}/weave")[1] >= expected
    assert files_of(keys, "summary")[1] == {"summary.parquet", "summary.md"}

    # The metric table and figure read back through independent clients.
    report_version = pointer(moto, bucket, "experiments/tiny_ens4/metric_report/weave")
    report = f"{PREFIX}/experiments/tiny_ens4/metric_report/weave/{report_version}"
    table = pd.read_parquet(
        f"s3://{bucket}/{report}/metrics.parquet", storage_options={"endpoint_url": moto.endpoint}
    )
    pd.testing.assert_frame_equal(table, summary.reports["weave"])
    defects = set(manifest.loc[manifest["label"] == 1, "defect_type"])
    assert set(table["defect_type"]) == {"all"} | defects
    assert table["image_auroc"].between(0, 1).all()
    figure = client(moto).get_object(Bucket=bucket, Key=f"{report}/figure.png")["Body"].read()
    assert figure.startswith(b"\x89PNG\r\n\x1a\n")


def test_s3_write_failing_midway_keeps_the_previous_version_current(
    setup, moto, bucket, monkeypatch
):
    config, storage, instance = setup
    experiment = config.experiment("tiny_ens4")
    tile = experiment.tile_keys[0]
    partition = MultiPartitionKey({"category": "weave", "tile": tile})
    defs = build_definitions(config, storage=storage)
    tiles_job = defs.resolve_job_def(tiles_job_name(experiment))
    dataset_job = defs.resolve_job_def(dataset_job_name("tiny"))
    assert dataset_job.execute_in_process(instance=instance, partition_key="weave").success
    assert tiles_job.execute_in_process(instance=instance, partition_key=partition).success
    folders = {stage: f"experiments/tiny_ens4/{stage}/weave/{tile}" for stage in TILE_FILES}
    before = {stage: pointer(moto, bucket, f) for stage, f in folders.items()}

    # The store goes away after two of the seven files of the new crops version are written.
    crops = storage.partition("tiny_ens4", "tiled_crops", "weave", tile)
    real_write = io.write_bytes
    written = []

    def write_until_the_store_stops(path, data):
        if path.path.startswith(f"{crops.path}/v"):
            if len(written) == 2:
                moto.stop()
            written.append(path.name)
        real_write(path, data)

    with monkeypatch.context() as patch:
        patch.setitem(fsspec.config.conf["s3"], "config_kwargs", ONE_ATTEMPT)
        patch.setattr(io, "write_bytes", write_until_the_store_stops)
        failed = tiles_job.execute_in_process(
            instance=instance, partition_key=partition, raise_on_error=False
        )
    assert not failed.success
    assert [e.step_key for e in failed.get_step_failure_events()] == ["tiny_ens4__tiled_crops"]
    assert failed.get_step_success_events() == []
    error = error_text(failed.get_step_failure_events()[0].step_failure_data.error)
    assert f"127.0.0.1:{moto.port}" in error and "connect" in error.lower(), error

    # Back online: every pointer still names the earlier, complete version.
    moto.start()
    keys = list_keys(moto, bucket)
    assert {stage: pointer(moto, bucket, f) for stage, f in folders.items()} == before
    crops_keys = [k for k in keys if k.startswith(f"{folders['tiled_crops']}/v")]
    by_version: dict[str, set[str]] = {}
    for key in crops_keys:
        version, name = key[len(folders["tiled_crops"]) + 1 :].split("/")
        by_version.setdefault(version, set()).add(name)
    assert by_version.pop(before["tiled_crops"]) == TILE_FILES["tiled_crops"]
    assert list(by_version.values()) == [set(written[:2])]  # unreferenced, never read
    current = io.current_version(crops, "tiled crops")
    assert io.load_array(current / "train.npy").dtype == "uint8"

    # A later run commits a new complete version and drops the half-written one.
    assert tiles_job.execute_in_process(instance=instance, partition_key=partition).success
    keys = list_keys(moto, bucket)
    for stage, folder in folders.items():
        version, names = files_of(keys, folder)
        assert version != before[stage] and names == TILE_FILES[stage]


def error_text(error: SerializableErrorInfo | None) -> str:
    """The messages of a serialized error and of every error it was raised from or during."""
    parts, pending = [], [error]
    while pending:
        error = pending.pop()
        if error is not None:
            parts.append(error.message)
            pending += [error.cause, error.context]
    return "\n".join(parts)
