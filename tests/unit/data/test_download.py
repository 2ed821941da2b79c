"""Download, resume and verification against a loopback HTTP server."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tiled_pipeline.data.download import download, file_sha256
from tiled_pipeline.data.errors import ChecksumError, DownloadError, IncompleteDownloadError

PAYLOAD = os.urandom(300_000)
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def served(http_server):
    http_server.files["/archive.tar"] = PAYLOAD
    return http_server


def test_download_writes_verified_file(served, tmp_path: Path) -> None:
    dest = download(served.url("/archive.tar"), tmp_path / "dl" / "archive.tar", DIGEST)

    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name("archive.tar.part").exists()
    assert served.requests == [("/archive.tar", None)]


def test_download_truncated_transfer_keeps_part_and_resumes(served, tmp_path: Path) -> None:
    dest = tmp_path / "archive.tar"
    served.drops = 1

    with pytest.raises(IncompleteDownloadError, match=r"stopped after \d+ bytes of 300000.*resume"):
        download(served.url("/archive.tar"), dest, DIGEST, chunk_size=4096)
    part = dest.with_name("archive.tar.part")
    kept = part.stat().st_size
    assert 0 < kept < len(PAYLOAD)
    assert not dest.exists()

    download(served.url("/archive.tar"), dest, DIGEST, chunk_size=4096)

    assert dest.read_bytes() == PAYLOAD
    assert served.requests[-1] == ("/archive.tar", f"bytes={kept}-")
    assert not part.exists()


def test_download_restarts_when_server_ignores_range(served, tmp_path: Path) -> None:
    dest = tmp_path / "archive.tar"
    dest.with_name("archive.tar.part").write_bytes(b"stale bytes that are not a prefix")
    served.ignore_range = True

    download(served.url("/archive.tar"), dest, DIGEST)

    assert dest.read_bytes() == PAYLOAD
    assert served.requests[0][1] is not None  # a Range request was sent, and ignored


def test_download_checksum_mismatch_deletes_file(served, tmp_path: Path) -> None:
    dest = tmp_path / "archive.tar"
    wrong = "0" * 64

    with pytest.raises(ChecksumError, match=rf"archive\.tar: expected {wrong}, got {DIGEST}"):
        download(served.url("/archive.tar"), dest, wrong)

    assert not dest.exists()
    assert not dest.with_name("archive.tar.part").exists()


def test_download_cached_file_is_verified_without_request(served, tmp_path: Path) -> None:
    dest = tmp_path / "archive.tar"
    dest.write_bytes(PAYLOAD)

    assert download(served.url("/archive.tar"), dest, DIGEST) == dest
    assert served.requests == []


def test_download_corrupt_cached_file_is_fetched_again(served, tmp_path: Path) -> None:
    dest = tmp_path / "archive.tar"
    dest.write_bytes(PAYLOAD[:-1] + b"x")

    download(served.url("/archive.tar"), dest, DIGEST)

    assert file_sha256(dest) == DIGEST
    assert len(served.requests) == 1


def test_download_complete_part_file_is_verified(served, tmp_path: Path) -> None:
    dest = tmp_path / "archive.tar"
    dest.with_name("archive.tar.part").write_bytes(PAYLOAD)

    download(served.url("/archive.tar"), dest, DIGEST)

    assert dest.read_bytes() == PAYLOAD
    assert served.requests == [("/archive.tar", f"bytes={len(PAYLOAD)}-")]


def test_download_http_error_names_url(served, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"missing\.tar failed with HTTP 404"):
        download(served.url("/missing.tar"), tmp_path / "missing.tar", DIGEST)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sha256": "abc"}, "sha256 must be 64 hexadecimal"),
        ({"chunk_size": 0}, "chunk_size must be > 0"),
        ({"timeout": 0}, "timeout must be > 0"),
    ],
)
def test_download_rejects_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    arguments = {"sha256": DIGEST, **kwargs}
    with pytest.raises(ValueError, match=message):
        download("http://127.0.0.1:9/x", tmp_path / "x", **arguments)
