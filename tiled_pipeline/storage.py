"""One IO layer over universal-pathlib: local disk or any fsspec URL, atomic writes.

Formats fit the data: parquet (pyarrow) for tables, ``.npy`` for arrays, torch files for model
checkpoints, PNG bytes for figures. Every write goes to a temporary sibling name first and is then
moved into place, so a crash never leaves a half-written file under its final name. Object stores
(S3) have no atomic rename of folders, so a partition is written into a fresh version folder and
then committed by one small pointer file (``_CURRENT.json``): a reader follows the pointer only, so
a write that fails midway leaves the earlier version in force and nothing that looks complete.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from upath import UPath

logger = logging.getLogger(__name__)

CURRENT = "_CURRENT.json"


def as_path(url: str | UPath, storage_options: Mapping[str, Any] | None = None) -> UPath:
    """A ``UPath`` for a local path or fsspec URL, with fsspec ``storage_options``."""
    if isinstance(url, UPath):
        return url
    return UPath(url, **dict(storage_options or {}))


def write_bytes(path: UPath, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("wb") as handle:
            handle.write(data)
        tmp.rename(path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def read_bytes(path: UPath) -> bytes:
    """The bytes of ``path``; a missing file names the stage that should have written it."""
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist; materialize the upstream asset (or partition) that writes it"
        )
    with path.open("rb") as handle:
        return handle.read()


def save_array(path: UPath, array: np.ndarray) -> None:
    """Save one array as ``.npy`` (no pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    write_bytes(path, buffer.getvalue())


def load_array(path: UPath) -> np.ndarray:
    """Load an ``.npy`` array written by ``save_array``."""
    return np.load(io.BytesIO(read_bytes(path)), allow_pickle=False)


def save_table(path: UPath, table: pd.DataFrame) -> None:
    """Save a table as parquet (pyarrow)."""
    buffer = io.BytesIO()
    table.to_parquet(buffer, engine="pyarrow", index=False)
    write_bytes(path, buffer.getvalue())


def load_table(path: UPath) -> pd.DataFrame:
    """Load a parquet table written by ``save_table``."""
    return pd.read_parquet(io.BytesIO(read_bytes(path)), engine="pyarrow")


def local_path(path: UPath) -> str | None:
    """The operating-system path of ``path`` when it is on local disk, else None."""
    return path.path if path.protocol in ("", "file", "local") else None


def save_checkpoint(path: UPath, checkpoint: Mapping[str, Any]) -> None:
    """Save a model checkpoint (plain state dict plus config) with ``torch.save``.

    The checkpoint streams to a file (a sibling on local disk, a local temporary file uploaded
    under a temporary name elsewhere) rather than through memory: a large PaDiM or PatchCore
    state would otherwise need a second copy of itself in RAM.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if local_path(path) is not None:
            torch.save(dict(checkpoint), local_path(tmp))
        else:
            with tempfile.TemporaryDirectory() as folder:
                staged = os.path.join(folder, path.name)
                torch.save(dict(checkpoint), staged)
                tmp.fs.put_file(staged, tmp.path)
        tmp.rename(path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def load_checkpoint(path: UPath) -> dict[str, Any]:
    """Load a checkpoint onto the CPU; only tensors and plain data are accepted."""
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist; materialize the upstream asset (or partition) that writes it"
        )
    if local_path(path) is not None:
        return torch.load(local_path(path), map_location="cpu", weights_only=True)
    with tempfile.TemporaryDirectory() as folder:
        staged = os.path.join(folder, path.name)
        path.fs.get_file(path.path, staged)
        return torch.load(staged, map_location="cpu", weights_only=True)


def save_json(path: UPath, value: Any) -> None:
    """Save plain data as indented JSON."""
    write_bytes(path, json.dumps(value, indent=2, sort_keys=True).encode())


def load_json(path: UPath) -> Any:
    """Load JSON written by ``save_json``."""
    return json.loads(read_bytes(path))


def new_version(folder: UPath) -> UPath:
    """A fresh, empty version folder inside a partition folder, for one materialization."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return folder / f"v{stamp}-{uuid.uuid4().hex[:8]}"


def commit_version(folder: UPath, version: UPath, info: Mapping[str, Any] | None = None) -> None:
    """Point the partition at ``version`` (one atomic write), then drop older versions.

    Readers only ever follow the pointer, so a materialization that fails midway leaves the
    previous version in force and its half-written folder unreferenced.
    """
    save_json(folder / CURRENT, {"version": version.name, **dict(info or {})})
    for child in folder.iterdir():
        if child.name.startswith("v") and child.name != version.name and child.is_dir():
            _remove_tree(child)


def current_version(folder: UPath, what: str) -> UPath:
    """The committed version folder of a partition; a clear error when there is none."""
    pointer = folder / CURRENT
    if not pointer.exists():
        raise FileNotFoundError(
            f"{what} at {folder} has not been materialized (no {CURRENT}); "
            "materialize that upstream partition first"
        )
    return folder / load_json(pointer)["version"]


def has_version(folder: UPath) -> bool:
    """Whether the partition folder has a committed version."""
    return (folder / CURRENT).exists()


def _remove_tree(folder: UPath) -> None:
    try:
        folder.fs.rm(folder.path, recursive=True)
    except FileNotFoundError:
        pass
    except OSError as error:  # a stale version is only wasted space, never read again
        logger.warning("could not remove old version %s: %s", folder, error)
