"""The one model interface: fit on a stream of tile batches, predict maps and scores.

Every model takes images as float tensors in [0, 1] of shape (B, 3, th, tw); the model applies its
backbone's own normalization. Maps come back at tile resolution, one score per tile.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass(frozen=True)
class Prediction:
    """What a model says about a batch of tiles.

    Attributes:
        anomaly_maps: (B, th, tw) float32, higher is more anomalous, unnormalized.
        scores: (B,) float32 image-level (tile-level) anomaly scores.
    """

    anomaly_maps: torch.Tensor
    scores: torch.Tensor


@dataclass(frozen=True)
class FitReport:
    """What fitting did: image count, seconds, and the loss per epoch for trained models."""

    n_images: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)


class AnomalyModel(nn.Module, ABC):
    """Base class of every anomaly model.

    Subclasses are built from one frozen config dataclass (``config_class``) and nothing else, so
    that ``config_class(**saved_config)`` rebuilds the same architecture and ``load_state_dict``
    restores the fitted state.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]

    def __init__(self, config: Any) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__} expects a {self.config_class.__name__}, "
                f"got {type(config).__name__}"
            )
        self.config = config

    @abstractmethod
    def fit(self, batches: Iterable[torch.Tensor]) -> FitReport:
        """Fit on normal tiles.

        Args:
            batches: a re-iterable stream of (B, 3, th, tw) float tensors in [0, 1]. Models that
                train for several epochs iterate it once per epoch. Batches are moved to the
                model's device inside.
        """

    @abstractmethod
    def predict(self, images: torch.Tensor) -> Prediction:
        """Score a (B, 3, th, tw) batch; returns maps (B, th, tw) and scores (B,)."""

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters and buffers (CPU when it has none)."""
        for tensor in (*self.parameters(), *self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def config_dict(self) -> dict[str, Any]:
        """The constructor arguments as plain data, for saving beside the state dict."""
        return asdict(self.config)

    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to rebuild the fitted model: name, config and state dict (on CPU)."""
        state = {key: value.detach().cpu() for key, value in self.state_dict().items()}
        return {"model": self.name, "config": self.config_dict(), "state": state}


def check_images(images: Any, owner: str = "the model") -> torch.Tensor:
    """Return ``images`` if it is a (B, 3, H, W) floating tensor, else raise naming ``owner``.

    Values are expected in [0, 1] but not checked (that would cost a pass over every batch).
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{owner} expects images as a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(
            f"{owner} expects images of shape (B, 3, H, W) as floats in [0, 1], got shape "
            f"{tuple(images.shape)} of {images.dtype}; convert uint8 (B, H, W, 3) crops with "
            "images.permute(0, 3, 1, 2).float() / 255"
        )
    return images


class Stopwatch:
    """Measures wall seconds of a block: ``with Stopwatch() as sw: ...; sw.seconds``."""

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
