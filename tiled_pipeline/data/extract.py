"""Extract tar archives (.tar, .tar.gz, .tar.xz) into a local or fsspec folder, safely.

Every entry is checked before anything is written for it: absolute names, names that climb out
with ``..`` and links whose target lies outside the folder are refused. Links inside the folder
are written as copies of their target, so extraction works the same on object stores that have no
links, and the folder never holds a link that a later entry could be written through.
"""

from __future__ import annotations

import gzip
import logging
import lzma
import os
import posixpath
import re
import shutil
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm
from upath import UPath

from tiled_pipeline.data.errors import DatasetError, UnsafeArchiveError
from tiled_pipeline.data.paths import as_upath

logger = logging.getLogger(__name__)

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_COPY_BUFFER = 1 << 20
# What a truncated or corrupt .tar / .tar.gz / .tar.xz raises while it is read.
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, gzip.BadGzipFile)


def safe_extract(
    archive: Path,
    target: str | os.PathLike[str],
    members: Callable[[str], bool] | None = None,
) -> list[str]:
    """Extract the regular files of a tar archive below ``target``.

    Entries are streamed in archive order, so a large compressed archive is read once. Every
    entry's name is checked, selected or not; an unsafe entry stops the extraction with an error
    (entries before it may already be written, all of them inside ``target``). Folder entries are
    not written: folders appear as the files inside them are written.

    Args:
        archive: Local tar file, optionally gzip/bzip2/xz compressed.
        target: Destination folder: local path, fsspec URL or ``UPath``.
        members: Predicate on the normalised entry name (``/``-separated, no leading ``./``);
            only entries for which it returns True are written. ``None`` writes all.

    Returns:
        Normalised names of the files written, in archive order.

    Raises:
        UnsafeArchiveError: an entry would land outside ``target``, or is a device or FIFO.
        DatasetError: the archive cannot be read (not a tar file, truncated, corrupt).
    """
    root = as_upath(target)
    written: list[str] = []
    folders: set[str] = set()
    try:
        with (
            tarfile.open(archive, "r:*") as tar,
            tqdm(desc=f"extract {Path(archive).name}", unit="file") as bar,
        ):
            for member in tar:
                name = checked_member_name(member, archive)
                if name is None or member.isdir():
                    continue
                if members is not None and not members(name):
                    continue
                _write_member(tar, member, root / name, archive, folders)
                written.append(name)
                bar.update()
    except _ARCHIVE_ERRORS as error:
        raise DatasetError(
            f"cannot read archive {archive}: {error}; it is not a tar file or it is corrupt, "
            "delete it and download it again"
        ) from error
    logger.info("extracted %d files from %s to %s", len(written), archive, root)
    return written


def checked_member_name(member: tarfile.TarInfo, archive: Path) -> str | None:
    """Normalised name of a safe entry, ``None`` for the archive root entry (``.``).

    Raises:
        UnsafeArchiveError: absolute name, a name or link target outside the archive root, or a
            device/FIFO entry.
    """
    name = _inside_name(member.name, member.name, archive)
    if member.issym():
        _inside_name(posixpath.join(posixpath.dirname(name), member.linkname), member.name, archive)
    elif member.islnk():
        _inside_name(member.linkname, member.name, archive)
    elif not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(
            f"archive {archive} entry {member.name!r} is a device or FIFO, which is never "
            "extracted; use an archive that holds only files, folders and links"
        )
    return None if name == "." else name


def _inside_name(path: str, entry: str, archive: Path) -> str:
    """Normalise ``path`` and refuse it when it is absolute or climbs above the root."""
    normalised = posixpath.normpath(path.replace("\\", "/"))
    if (
        normalised.startswith("/")
        or _WINDOWS_DRIVE.match(normalised)
        or normalised == ".."
        or normalised.startswith("../")
    ):
        raise UnsafeArchiveError(
            f"archive {archive} entry {entry!r} points outside the extraction folder "
            f"({path!r}); refusing to extract it. Use a trusted archive (check its SHA-256)"
        )
    return normalised


def _write_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, dest: UPath, archive: Path, folders: set[str]
) -> None:
    """Copy one file entry (or the file a link entry points at) to ``dest``.

    ``folders`` holds the folders already created, so each is made once.
    """
    try:
        source = tar.extractfile(member)
    except KeyError as error:
        raise DatasetError(
            f"archive {archive} entry {member.name!r} links to {member.linkname!r}, which is not "
            "an earlier entry of the archive; use an archive without such links"
        ) from error
    if source is None:  # pragma: no cover - only for entry types refused above
        return
    if str(dest.parent) not in folders:
        dest.parent.mkdir(parents=True, exist_ok=True)
        folders.add(str(dest.parent))
    with source, dest.open("wb") as sink:
        shutil.copyfileobj(source, sink, _COPY_BUFFER)
