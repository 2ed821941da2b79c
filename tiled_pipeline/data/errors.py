"""Exceptions raised by the data layer.

All of them subclass ``ValueError`` so that callers that only know "bad input" can catch one type;
the subclasses let callers (and tests) tell a corrupt download from a malformed folder.
"""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset, category, folder tree or file does not have the content or layout expected."""


class LayoutError(DatasetError):
    """A category folder does not follow the MVTec layout, or holds no training image."""


class ImageReadError(DatasetError):
    """An image or mask file cannot be decoded (missing, truncated, not an image, wrong size)."""


class DownloadError(DatasetError):
    """A download did not produce a complete, verified archive."""


class ChecksumError(DownloadError):
    """The SHA-256 digest of a downloaded or cached archive is not the expected one."""


class IncompleteDownloadError(DownloadError):
    """The connection ended before all bytes arrived; the partial file is kept for resuming."""


class UnsafeArchiveError(DatasetError):
    """An archive entry would be written outside the extraction folder."""
