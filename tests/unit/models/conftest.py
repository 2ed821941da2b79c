"""Tiny generated tiles for the model tests: a smooth texture, optionally with a bright square."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

TILE = 64
DEFECT = (slice(36, 48), slice(12, 24))  # rows, columns of the planted square


def smooth_texture(n: int, seed: int, size: int = TILE) -> torch.Tensor:
    """(n, 3, size, size) images in [0, 1]: low-frequency stripes with random phases."""
    generator = torch.Generator().manual_seed(seed)
    coordinates = torch.arange(size, dtype=torch.float32) / size
    rows, cols = torch.meshgrid(coordinates, coordinates, indexing="ij")  # (size, size) each
    phases = torch.rand(n, 2, generator=generator) * 2 * math.pi
    wave = torch.sin(2 * math.pi * 2 * rows + phases[:, :1, None]) + torch.sin(
        2 * math.pi * 3 * cols + phases[:, 1:, None]
    )  # (n, size, size)
    noise = 0.02 * torch.randn(n, size, size, generator=generator)
    gray = 0.4 + 0.1 * wave + noise
    return gray.unsqueeze(1).expand(n, 3, size, size).clamp(0, 1).contiguous()


def plant_square(images: torch.Tensor) -> torch.Tensor:
    """A copy of (B, 3, H, W) ``images`` with a white square at ``DEFECT``."""
    defective = images.clone()
    defective[:, :, DEFECT[0], DEFECT[1]] = 1.0
    return defective


@pytest.fixture
def train_batches() -> list[torch.Tensor]:
    """Three batches of normal tiles (4, 4 and 2 tiles)."""
    images = smooth_texture(10, seed=0)
    return [images[:4], images[4:8], images[8:]]


@pytest.fixture
def test_tiles() -> tuple[torch.Tensor, torch.Tensor]:
    """(normal, defective): 3 unseen normal tiles and the same tiles with a planted square."""
    normal = smooth_texture(3, seed=1)
    return normal, plant_square(normal)


@pytest.fixture
def defect_region() -> tuple[slice, slice]:
    """Rows and columns of the square that ``test_tiles`` plants."""
    return DEFECT


@pytest.fixture
def texture() -> Callable[..., torch.Tensor]:
    """The smooth_texture generator, for tests that need other sizes or counts."""
    return smooth_texture
