"""Download an archive over HTTP(S) with resume and SHA-256 verification.

The transfer streams into ``<dest>.part``; only a file whose digest matches is renamed to
``dest``. An interrupted transfer keeps the ``.part`` file and the next call resumes it with an
HTTP Range request. A lock file serialises concurrent downloads of the same archive (several
category partitions may start at once).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm.auto import tqdm

from tiled_pipeline.data.errors import ChecksumError, DownloadError, IncompleteDownloadError

try:  # POSIX only; elsewhere concurrent downloads of one archive are not serialised.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

logger = logging.getLogger(__name__)

_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
_HTTP_RANGE_NOT_SATISFIABLE = 416


def download(
    url: str, dest: Path, sha256: str, *, chunk_size: int = 1 << 20, timeout: float = 60
) -> Path:
    """Download ``url`` to ``dest`` and verify its SHA-256 digest.

    An existing ``dest`` is verified again; when its digest is wrong it is deleted and downloaded
    afresh. An existing ``<dest>.part`` is resumed (a server that ignores Range restarts it).

    Args:
        url: http(s) URL of the file.
        dest: Local path of the verified file; its folder is created.
        sha256: Expected digest, 64 hex characters (case-insensitive).
        chunk_size: Bytes per read, > 0.
        timeout: Seconds to wait for the connection and for each read, > 0.

    Returns:
        ``dest``.

    Raises:
        ChecksumError: the downloaded bytes have another digest; the file is deleted.
        IncompleteDownloadError: the connection ended early; ``<dest>.part`` is kept for resume.
        DownloadError: the server answered with an HTTP error or could not be reached.
    """
    expected = _check_arguments(sha256, chunk_size, timeout)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _locked(dest.with_name(dest.name + ".lock")):
        if dest.exists() and _verified_cache(dest, expected, chunk_size):
            return dest
        part = dest.with_name(dest.name + ".part")
        actual = _fetch(url, part, dest.name, chunk_size, timeout)
        if actual != expected:
            part.unlink()
            raise ChecksumError(_mismatch_message(url, expected, actual))
        part.replace(dest)
    logger.info("downloaded and verified %s (%d bytes)", dest, dest.stat().st_size)
    return dest


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 hex digest of a local file, read in chunks of ``chunk_size`` bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _check_arguments(sha256: str, chunk_size: int, timeout: float) -> str:
    expected = str(sha256).strip().lower()
    if not _SHA256_PATTERN.fullmatch(expected):
        raise ValueError(
            f"sha256 must be 64 hexadecimal characters, got {sha256!r}; pass the archive's "
            "published SHA-256 digest"
        )
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0 bytes, got {chunk_size}")
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    return expected


def _verified_cache(dest: Path, expected: str, chunk_size: int) -> bool:
    """Check an archive already on disk; a wrong one is deleted so that it is fetched again."""
    actual = file_sha256(dest, chunk_size)
    if actual == expected:
        logger.info("using cached archive %s (SHA-256 verified)", dest)
        return True
    logger.warning(
        "cached archive %s has SHA-256 %s, expected %s; deleting it and downloading again",
        dest,
        actual,
        expected,
    )
    dest.unlink()
    return False


def _fetch(url: str, part: Path, label: str, chunk_size: int, timeout: float) -> str:
    """Stream ``url`` into ``part``, resuming what it holds; return the whole file's digest."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as error:
        if error.code == _HTTP_RANGE_NOT_SATISFIABLE and offset:
            logger.info("%s: server has no bytes past %d; verifying the partial file", url, offset)
            return file_sha256(part, chunk_size)
        raise DownloadError(
            f"download of {url} failed with HTTP {error.code} {error.reason}; check the URL, "
            "or pass DatasetSpec(url=..., sha256=...) for a mirror"
        ) from error
    except (URLError, OSError) as error:
        raise DownloadError(
            f"cannot reach {url}: {error}; check the network or pass a reachable mirror URL"
        ) from error
    with response:
        offset = _resume_offset(response, url, offset)
        return _stream(response, url, part, label, offset, chunk_size)


def _resume_offset(response: http.client.HTTPResponse, url: str, offset: int) -> int:
    """Bytes of ``.part`` that the response continues: ``offset``, or 0 when restarting."""
    if not offset:
        return 0
    if response.status != http.client.PARTIAL_CONTENT:
        logger.info("%s: server ignored the Range request; restarting from byte 0", url)
        return 0
    content_range = response.headers.get("Content-Range", "")
    match = re.match(r"bytes (\d+)-", content_range)
    if match is None or int(match.group(1)) != offset:
        raise DownloadError(
            f"{url} answered a request for bytes {offset}- with Content-Range "
            f"{content_range!r}; delete the .part file and download again"
        )
    return offset


def _stream(
    response: http.client.HTTPResponse,
    url: str,
    part: Path,
    label: str,
    offset: int,
    chunk_size: int,
) -> str:
    """Append the response body to ``part`` (kept from byte ``offset``); return the digest."""
    length = response.headers.get("Content-Length")
    total = offset + int(length) if length is not None else None
    digest = hashlib.sha256()
    _read_prefix(part, offset, chunk_size, digest.update)
    with (
        part.open("r+b" if offset else "wb") as sink,
        tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=label) as bar,
    ):
        sink.seek(offset)
        sink.truncate()
        try:
            while chunk := response.read(chunk_size):
                sink.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as error:
            raise _incomplete(url, part, sink.tell(), total, error) from error
        received = sink.tell()
    if total is not None and received < total:
        raise _incomplete(url, part, received, total, None)
    return digest.hexdigest()


def _read_prefix(path: Path, length: int, chunk_size: int, sink: Callable[[bytes], object]) -> None:
    """Feed the first ``length`` bytes of ``path`` to ``sink`` (to hash a resumed file)."""
    if not length:
        return
    with path.open("rb") as stream:
        remaining = length
        while remaining and (chunk := stream.read(min(chunk_size, remaining))):
            sink(chunk)
            remaining -= len(chunk)


def _incomplete(
    url: str, part: Path, received: int, total: int | None, error: Exception | None
) -> IncompleteDownloadError:
    expected = f"of {total} " if total is not None else ""
    reason = f" ({error})" if error is not None else ""
    return IncompleteDownloadError(
        f"download of {url} stopped after {received} bytes {expected}{reason}; the partial file "
        f"{part} is kept, run again to resume it"
    )


def _mismatch_message(url: str, expected: str, actual: str) -> str:
    return (
        f"SHA-256 mismatch for {url}: expected {expected}, got {actual}; the file was deleted. "
        "Run again to download it afresh; if the mismatch repeats the server holds another file: "
        "pass its matching url and sha256 (DatasetSpec(url=..., sha256=...))"
    )


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (the file is left in place for later callers)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
