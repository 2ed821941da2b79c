"""PatchCore: nearest-neighbour distance to a coreset memory bank (Roth et al., 2022)."""

from tiled_pipeline.models.patchcore.coreset import CoresetBank, greedy_coreset
from tiled_pipeline.models.patchcore.model import (
    Patchcore,
    PatchcoreConfig,
    nearest_neighbors,
    reweighted_scores,
)

__all__ = [
    "CoresetBank",
    "Patchcore",
    "PatchcoreConfig",
    "greedy_coreset",
    "nearest_neighbors",
    "reweighted_scores",
]
