"""Small helpers over ``upath.UPath`` so that local disk and object stores behave the same.

Paths are kept as ``UPath`` objects (they carry the fsspec storage options, e.g. an S3 endpoint);
``str(path)`` is the absolute URI written into manifests (a plain absolute path for local disk).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable

from upath import UPath

logger = logging.getLogger(__name__)

_LOCAL_PROTOCOLS = ("", "file", "local")


def as_upath(path: str | os.PathLike[str]) -> UPath:
    """Return ``path`` as a ``UPath``; local relative paths become absolute.

    A ``UPath`` passed in is kept as is (with its storage options).
    """
    upath = path if isinstance(path, UPath) else UPath(path)
    if upath.protocol in _LOCAL_PROTOCOLS and not upath.is_absolute():
        upath = upath.absolute()
    return upath


def list_files(root: UPath) -> dict[str, int]:
    """List every file below ``root``, recursively.

    Args:
        root: Folder to list (local or any fsspec URL).

    Returns:
        Mapping of the path relative to ``root`` (``/``-separated) to its size in bytes, sorted by
        path. Empty when ``root`` does not exist. Directory placeholder objects are skipped.
    """
    base = root.path.rstrip("/")
    found = root.fs.find(base, detail=True)
    files = {}
    for name, info in found.items():
        if info.get("type") == "directory" or name.endswith("/"):
            continue
        relative = name[len(base) :].lstrip("/")
        if relative:
            files[relative] = int(info.get("size") or 0)
    return dict(sorted(files.items()))


def make_dirs(folders: Iterable[UPath]) -> None:
    """Create each distinct folder once (a no-op on object stores that have no folders)."""
    for folder in {str(f): f for f in folders}.values():
        folder.mkdir(parents=True, exist_ok=True)


def remove_tree(path: UPath) -> None:
    """Delete ``path`` and everything below it; nothing happens when it does not exist."""
    if path.exists():
        logger.info("removing %s", path)
        path.fs.rm(path.path, recursive=True)


def write_bytes_atomic(path: UPath, data: bytes) -> None:
    """Write ``data`` to ``path`` under a temporary sibling name, then rename it into place.

    Readers therefore see either no file or the whole file. On object stores the rename is a copy
    and a delete, so callers write such a marker file last.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    temporary.write_bytes(data)
    try:
        temporary.rename(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
