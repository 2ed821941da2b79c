"""materialize_category end to end: synthetic, MVTec AD and VisA over loopback HTTP, folders."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from upath import UPath

from tiled_pipeline.data import materialize as materialize_module
from tiled_pipeline.data.catalog import DatasetSpec
from tiled_pipeline.data.errors import (
    ChecksumError,
    DatasetError,
    IncompleteDownloadError,
    LayoutError,
)
from tiled_pipeline.data.imageio import read_image, read_mask
from tiled_pipeline.data.manifest import MANIFEST_COLUMNS, read_manifest
from tiled_pipeline.data.materialize import materialize_category
from tiled_pipeline.data.paths import list_files

SYNTHETIC = DatasetSpec(image_size=128, n_train=3, n_test_good=1, n_test_defect=3)


def _forbid(monkeypatch: pytest.MonkeyPatch, target: object, name: str) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{name} must not be called")

    monkeypatch.setattr(target, name, fail)


def _check_readable(manifest: pd.DataFrame) -> None:
    for row in manifest.itertuples():
        image = read_image(row.image_path)
        assert image.shape == (row.height, row.width, 3)
        if row.mask_path:
            assert read_mask(row.mask_path, image.shape[:2]).any()


def test_materialize_synthetic_writes_images_and_manifest(tmp_path: Path) -> None:
    storage = UPath(tmp_path / "storage")

    manifest = materialize_category(SYNTHETIC, "wood", storage, tmp_path / "dl")

    assert tuple(manifest.columns) == MANIFEST_COLUMNS
    assert len(manifest) == 7
    assert set(manifest["defect_type"]) == {"good", "scratch", "spot", "patch"}
    pd.testing.assert_frame_equal(read_manifest(storage / "wood" / "manifest.parquet"), manifest)
    assert all(p.startswith(str(storage / "wood") + "/") for p in manifest["image_path"])
    _check_readable(manifest)


def test_materialize_synthetic_rerun_reuses_stored_category(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = materialize_category(SYNTHETIC, "wood", tmp_path, tmp_path / "dl")
    _forbid(monkeypatch, materialize_module, "write_synthetic_category")

    again = materialize_category(SYNTHETIC, "wood", tmp_path, tmp_path / "dl")

    pd.testing.assert_frame_equal(again, first)


def test_materialize_synthetic_rebuilds_after_settings_change(tmp_path: Path) -> None:
    materialize_category(SYNTHETIC, "wood", tmp_path, tmp_path / "dl")
    before = (tmp_path / "wood" / "train" / "good" / "000.png").read_bytes()
    fewer = DatasetSpec(image_size=128, seed=1, n_train=2, n_test_good=1, n_test_defect=1)

    manifest = materialize_category(fewer, "wood", tmp_path, tmp_path / "dl")

    assert len(manifest) == 4
    assert (tmp_path / "wood" / "train" / "good" / "000.png").read_bytes() != before
    assert not (tmp_path / "wood" / "train" / "good" / "002.png").exists()  # stale file removed


def test_materialize_synthetic_rebuilds_when_a_file_is_missing(tmp_path: Path) -> None:
    manifest = materialize_category(SYNTHETIC, "speckle", tmp_path, tmp_path / "dl")
    Path(manifest["image_path"].iloc[-1]).unlink()

    rebuilt = materialize_category(SYNTHETIC, "speckle", tmp_path, tmp_path / "dl")

    pd.testing.assert_frame_equal(rebuilt, manifest)
    assert Path(manifest["image_path"].iloc[-1]).is_file()


def test_materialize_synthetic_on_fsspec_storage(tmp_path: Path) -> None:
    storage = UPath("memory://materialize-test/datasets")

    manifest = materialize_category(SYNTHETIC, "weave", storage, tmp_path / "dl")

    assert manifest["image_path"].str.startswith("memory://materialize-test/datasets/weave/").all()
    assert (storage / "weave" / "manifest.parquet").exists()
    _check_readable(manifest.head(2))


def test_materialize_unknown_category_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="'marble' is not in the synthetic dataset"):
        materialize_category(SYNTHETIC, "marble", tmp_path / "storage", tmp_path / "dl")

    assert not (tmp_path / "storage").exists()


def _archive_spec(server, archive: Path, kind: str, categories: tuple[str, ...]) -> DatasetSpec:
    server.files[f"/{archive.name}"] = archive.read_bytes()
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    return DatasetSpec(
        kind=kind, categories=categories, url=server.url(f"/{archive.name}"), sha256=digest
    )


def test_materialize_mvtec_end_to_end_and_no_rework(
    http_server, mvtec_archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _archive_spec(http_server, mvtec_archive(), "mvtec_ad", ("bottle", "cable"))
    storage, downloads = UPath(tmp_path / "storage"), tmp_path / "dl"

    manifest = materialize_category(spec, "bottle", storage, downloads)

    assert manifest.groupby(["split", "defect_type"]).size().to_dict() == {
        ("test", "crack"): 2,
        ("test", "good"): 2,
        ("test", "hole"): 1,
        ("train", "good"): 3,
    }
    assert not (tmp_path / "storage" / "cable").exists()  # only the requested category
    _check_readable(manifest)
    assert len(http_server.requests) == 1

    _forbid(monkeypatch, tarfile, "open")
    again = materialize_category(spec, "bottle", storage, downloads)

    pd.testing.assert_frame_equal(again, manifest)
    assert len(http_server.requests) == 1  # no download, and no extraction (tarfile unused)


def test_materialize_mvtec_second_category_reuses_archive(
    http_server, mvtec_archive, tmp_path: Path
) -> None:
    spec = _archive_spec(http_server, mvtec_archive(), "mvtec_ad", ())

    materialize_category(spec, "bottle", tmp_path / "storage", tmp_path / "dl")
    cable = materialize_category(spec, "cable", tmp_path / "storage", tmp_path / "dl")

    assert len(cable) == 8
    assert len(http_server.requests) == 1


def test_materialize_visa_end_to_end_and_no_rework(
    http_server, visa_archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _archive_spec(http_server, visa_archive(), "visa", ("candle",))
    storage, downloads = UPath(tmp_path / "storage"), tmp_path / "dl"

    manifest = materialize_category(spec, "candle", storage, downloads)

    assert manifest.groupby(["split", "defect_type"]).size().to_dict() == {
        ("test", "bad"): 2,
        ("test", "good"): 2,
        ("train", "good"): 2,
    }
    assert manifest["image_path"].str.endswith(".JPG").all()
    _check_readable(manifest)

    _forbid(monkeypatch, tarfile, "open")
    again = materialize_category(spec, "candle", storage, downloads)

    pd.testing.assert_frame_equal(again, manifest)
    assert len(http_server.requests) == 1


def test_materialize_checksum_mismatch_keeps_earlier_results(
    http_server, mvtec_archive, tmp_path: Path
) -> None:
    spec = _archive_spec(http_server, mvtec_archive(), "mvtec_ad", ("bottle",))
    storage, downloads = UPath(tmp_path / "storage"), tmp_path / "dl"
    manifest = materialize_category(spec, "bottle", storage, downloads)
    wrong = DatasetSpec(kind="mvtec_ad", categories=("bottle",), url=spec.url, sha256="f" * 64)

    with pytest.raises(ChecksumError, match=rf"{spec.url}: expected f{{64}}, got {spec.sha256}"):
        materialize_category(wrong, "bottle", storage, downloads)

    pd.testing.assert_frame_equal(read_manifest(storage / "bottle" / "manifest.parquet"), manifest)
    _check_readable(manifest)
    assert len(list(downloads.rglob("*.tar.xz"))) == 1  # the good archive is still cached


def test_materialize_interrupted_download_resumes(
    http_server, mvtec_archive, tmp_path: Path
) -> None:
    spec = _archive_spec(http_server, mvtec_archive(), "mvtec_ad", ("bottle",))
    http_server.drops = 1

    with pytest.raises(IncompleteDownloadError, match="run again to resume"):
        materialize_category(spec, "bottle", tmp_path / "storage", tmp_path / "dl")
    assert not (tmp_path / "storage" / "bottle" / "manifest.parquet").exists()

    manifest = materialize_category(spec, "bottle", tmp_path / "storage", tmp_path / "dl")

    assert len(manifest) == 8
    assert http_server.requests[-1][1] is not None  # resumed with a Range request


def test_materialize_folder_in_place(folder_tree, tmp_path: Path) -> None:
    root = folder_tree(("widget",))
    spec = DatasetSpec(kind="folder", root=str(root))
    storage = tmp_path / "storage"

    manifest = materialize_category(spec, "widget", storage, tmp_path / "dl")

    assert manifest["image_path"].str.startswith(str(root / "widget") + "/").all()
    assert list(list_files(UPath(storage))) == ["widget/manifest.parquet"]  # nothing copied
    _check_readable(manifest)


def test_materialize_folder_rebuilds_when_tree_changes(
    folder_tree, make_image, tmp_path: Path
) -> None:
    root = folder_tree(("widget",))
    spec = DatasetSpec(kind="folder", root=str(root))
    first = materialize_category(spec, "widget", tmp_path / "storage", tmp_path / "dl")
    (root / "widget" / "train" / "good" / "new.png").write_bytes(make_image(999))

    second = materialize_category(spec, "widget", tmp_path / "storage", tmp_path / "dl")

    assert len(second) == len(first) + 1


def test_materialize_folder_manifest_inside_user_tree_is_reused(
    folder_tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = folder_tree(("widget",))
    spec = DatasetSpec(kind="folder", root=str(root))
    first = materialize_category(spec, "widget", root, tmp_path / "dl")
    _forbid(monkeypatch, materialize_module, "manifest_from_files")

    again = materialize_category(spec, "widget", root, tmp_path / "dl")

    pd.testing.assert_frame_equal(again, first)
    assert (root / "widget" / "manifest.parquet").is_file()


def test_materialize_folder_on_fsspec_url(folder_tree, tmp_path: Path) -> None:
    local = folder_tree(("widget",))
    remote = UPath("memory://folder-test/user_data")
    for name, _size in list_files(UPath(local)).items():
        (remote / name).write_bytes((local / name).read_bytes())
    spec = DatasetSpec(kind="folder", root=str(remote))

    assert spec.all_categories() == ("widget",)
    manifest = materialize_category(spec, "widget", UPath("memory://folder-test/out"), tmp_path)

    assert manifest["image_path"].str.startswith("memory://folder-test/user_data/widget/").all()
    _check_readable(manifest.tail(2))


def test_materialize_folder_missing_mask_writes_no_manifest(folder_tree, tmp_path: Path) -> None:
    root = folder_tree(("widget",))
    (root / "widget" / "ground_truth" / "hole" / "000_mask.png").unlink()
    spec = DatasetSpec(kind="folder", root=str(root))

    with pytest.raises(LayoutError, match=r"mask missing .*test/hole/000\.png"):
        materialize_category(spec, "widget", tmp_path / "storage", tmp_path / "dl")

    assert not (tmp_path / "storage" / "widget" / "manifest.parquet").exists()


def test_materialize_folder_not_following_layout(make_image, tmp_path: Path) -> None:
    root = tmp_path / "user_data"
    (root / "widget" / "train" / "good").mkdir(parents=True)
    (root / "widget" / "images").mkdir()
    (root / "widget" / "images" / "a.png").write_bytes(make_image(1))
    spec = DatasetSpec(kind="folder", root=str(root))

    with pytest.raises(LayoutError, match="empty train set"):
        materialize_category(spec, "widget", tmp_path / "storage", tmp_path / "dl")


def test_materialize_synthetic_on_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = "http://{}:{}".format(*server.get_host_and_port())
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="datasets")
        storage = UPath("s3://datasets/synthetic", endpoint_url=endpoint)

        manifest = materialize_category(SYNTHETIC, "wood", storage, tmp_path / "dl")
        again = materialize_category(SYNTHETIC, "wood", storage, tmp_path / "dl")

        assert manifest["image_path"].str.startswith("s3://datasets/synthetic/wood/").all()
        pd.testing.assert_frame_equal(again, manifest)
        image = read_image(UPath(manifest["image_path"].iloc[0], endpoint_url=endpoint))
        assert image.shape == (128, 128, 3)
        assert not [p for p in storage.fs.find("datasets/synthetic") if ".tmp-" in p]
    finally:
        server.stop()
