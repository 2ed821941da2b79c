"""Resources: where artifacts live (any fsspec URL) and which device runs the models."""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
import torch
from dagster import ConfigurableResource
from pydantic import Field
from upath import UPath

STORAGE_ENV = "TILED_PIPELINE_STORAGE"


def default_storage_root() -> str:
    """The storage root: ``$TILED_PIPELINE_STORAGE``, else ``$DAGSTER_HOME/storage``."""
    if os.environ.get(STORAGE_ENV):
        return os.environ[STORAGE_ENV]
    home = os.environ.get("DAGSTER_HOME") or str(Path(".dagster_home").resolve())
    return str(Path(home) / "storage")


class StorageResource(ConfigurableResource):
    """Where every artifact is stored: a local folder or any fsspec URL (``s3://bucket/prefix``).

    Credentials come from the usual environment (``AWS_ACCESS_KEY_ID``, profiles, ...).
    """

    root: str = Field(default="", description="Local path or fsspec URL; empty for the default.")
    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint override (MinIO, other stores)."
    )
    downloads: str = Field(
        default="",
        description="Local folder caching dataset archives; empty for <root>/../downloads.",
    )

    def base(self) -> UPath:
        """The storage root as a ``UPath`` with the endpoint override applied."""
        root = self.root or default_storage_root()
        if self.endpoint_url and root.startswith(("s3://", "s3a://")):
            # Manifests and tables hold plain s3:// strings that are opened later without this
            # resource, so the endpoint goes into fsspec's defaults for the s3 protocol.
            fsspec.config.conf.setdefault("s3", {})["endpoint_url"] = self.endpoint_url
        return UPath(root)

    def downloads_dir(self) -> Path:
        """Local folder for dataset archives (downloads stream to local disk, then extract)."""
        if self.downloads:
            return Path(self.downloads)
        root = self.root or default_storage_root()
        if "://" in root:
            return Path(os.environ.get("DAGSTER_HOME", ".dagster_home")).resolve() / "downloads"
        return Path(root).resolve().parent / "downloads"

    def dataset(self, dataset_name: str) -> UPath:
        """Folder holding one dataset's categories."""
        return self.base() / "datasets" / dataset_name

    def partition(
        self, experiment: str, stage: str, category: str, tile: str | None = None
    ) -> UPath:
        """Folder of one stage's partition, holding its versions and ``_CURRENT.json``."""
        folder = self.base() / "experiments" / experiment / stage / category
        return folder / tile if tile else folder

    def summary(self) -> UPath:
        """Folder of the benchmark summary."""
        return self.base() / "summary"


class DeviceResource(ConfigurableResource):
    """The torch device of every model step: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    ``auto`` takes CUDA when present, else the CPU. Nothing touches CUDA until a step asks.
    """

    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")

    def torch_device(self) -> torch.device:
        """Resolve the setting inside the step, where the device is used."""
        name = self.device
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if name == "cpu":
            return torch.device("cpu")
        if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
            if not torch.cuda.is_available():
                raise ValueError(f"device={name!r} but CUDA is not available; use 'auto' or 'cpu'")
            index = int(name[5:]) if ":" in name else 0
            if index >= torch.cuda.device_count():
                raise ValueError(
                    f"device={name!r} but only {torch.cuda.device_count()} GPU(s) exist; "
                    "pick an index below that or 'auto'"
                )
            return torch.device(name)
        raise ValueError(f"device={name!r} is not accepted; use auto, cpu, cuda or cuda:N")
