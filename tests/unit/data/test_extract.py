"""Safe tar extraction: plain and compressed archives, filters, and refused entries."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from upath import UPath

from tiled_pipeline.data.errors import DatasetError, UnsafeArchiveError
from tiled_pipeline.data.extract import safe_extract

FILES = {"a/one.txt": b"one", "a/b/two.txt": b"two", "c.txt": b"three"}


def _tar_with(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tar.xz"])
def test_safe_extract_writes_all_files(make_tar, tmp_path: Path, suffix: str) -> None:
    archive = make_tar(tmp_path / f"files{suffix}", FILES)

    names = safe_extract(archive, tmp_path / "out")

    assert names == list(FILES)
    for name, data in FILES.items():
        assert (tmp_path / "out" / name).read_bytes() == data


def test_safe_extract_members_filter_selects_entries(make_tar, tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "files.tar", {f"./{k}": v for k, v in FILES.items()})

    names = safe_extract(archive, tmp_path / "out", lambda name: name.startswith("a/"))

    assert names == ["a/one.txt", "a/b/two.txt"]  # "./" prefixes are normalised
    assert not (tmp_path / "out" / "c.txt").exists()


def test_safe_extract_into_fsspec_target(make_tar, tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "files.tar", FILES)

    safe_extract(archive, "memory://extract-test/out")

    assert UPath("memory://extract-test/out/a/b/two.txt").read_bytes() == b"two"


@pytest.mark.parametrize(
    "member",
    [
        (tarfile.TarInfo("../escaped.txt"), b"x"),
        (tarfile.TarInfo("a/../../escaped.txt"), b"x"),
        (tarfile.TarInfo("/tmp/absolute.txt"), b"x"),
        (_link("a/link", "../../escaped.txt", tarfile.SYMTYPE), None),
        (_link("a/link", "/etc/passwd", tarfile.SYMTYPE), None),
        (_link("a/hard", "../escaped.txt", tarfile.LNKTYPE), None),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink-out", "symlink-absolute", "hardlink-out"],
)
def test_safe_extract_refuses_path_traversal(tmp_path: Path, member) -> None:
    archive = _tar_with(tmp_path / "evil.tar", [member])

    with pytest.raises(UnsafeArchiveError, match="points outside the extraction folder"):
        safe_extract(archive, tmp_path / "out" / "inner")

    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "out" / "escaped.txt").exists()


def test_safe_extract_refuses_unselected_unsafe_entry(tmp_path: Path) -> None:
    archive = _tar_with(tmp_path / "evil.tar", [(tarfile.TarInfo("../x"), b"x")])

    with pytest.raises(UnsafeArchiveError, match=r"'\.\./x'"):
        safe_extract(archive, tmp_path / "out", lambda name: False)


def test_safe_extract_refuses_device_entry(tmp_path: Path) -> None:
    device = tarfile.TarInfo("dev/null")
    device.type = tarfile.CHRTYPE
    archive = _tar_with(tmp_path / "dev.tar", [(device, None)])

    with pytest.raises(UnsafeArchiveError, match="device or FIFO"):
        safe_extract(archive, tmp_path / "out")


def test_safe_extract_copies_links_inside_target(tmp_path: Path) -> None:
    archive = _tar_with(
        tmp_path / "links.tar",
        [
            (tarfile.TarInfo("data/real.txt"), b"content"),
            (_link("data/sym.txt", "real.txt", tarfile.SYMTYPE), None),
            (_link("data/hard.txt", "data/real.txt", tarfile.LNKTYPE), None),
        ],
    )

    safe_extract(archive, tmp_path / "out")

    for name in ("sym.txt", "hard.txt"):
        path = tmp_path / "out" / "data" / name
        assert not path.is_symlink()
        assert path.read_bytes() == b"content"


def test_safe_extract_corrupt_archive_names_file(tmp_path: Path) -> None:
    archive = tmp_path / "broken.tar.xz"
    archive.write_bytes(b"not an archive at all" * 10)

    with pytest.raises(DatasetError, match=r"cannot read archive .*broken\.tar\.xz"):
        safe_extract(archive, tmp_path / "out")


def test_safe_extract_truncated_archive_names_file(make_tar, tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "files.tar.gz", {"big.bin": bytes(range(256)) * 4000})
    archive.write_bytes(archive.read_bytes()[:-200])

    with pytest.raises(DatasetError, match=r"files\.tar\.gz.*download it again"):
        safe_extract(archive, tmp_path / "out")
