"""PatchCore: nearest-neighbour distance to a coreset memory bank of locally aware patches.

Roth et al., "Towards Total Recall in Industrial Anomaly Detection", CVPR 2022. With the paper's
symbols:

1. Patch features: the feature maps of ``layers`` (layer2 and layer3 of a wide ResNet-50) are
   averaged over each 3x3 neighbourhood (stride 1, padding 1), the deeper maps are upsampled
   bilinearly to the first map's size and all are concatenated: one D-dimensional patch
   feature per position (1536 for wide_resnet50_2). The channels are not pooled to a smaller
   dimension, as in the anomalib implementation the tiled-ensemble paper used.
2. Memory bank: M holds the patch features of all normal tiles; greedy k-center selection on a
   JL projection (``coreset.py``) keeps M_C with ``coreset_ratio`` |M| patches.
3. Patch score: s(m_test) = min over m in M_C of ||m_test - m||_2; the (h, w) grid of patch
   scores is upsampled bilinearly to the tile and blurred (sigma 4 px) to give the map.
4. Tile score (eq. 7): with m_test* the patch of the largest score s* and m* its nearest bank
   element, s = (1 - exp(s*) / sum_{m in N_b(m*)} exp(||m_test* - m||)) * s*, where N_b(m*) are
   the ``n_neighbors`` bank elements nearest to m* (m* included).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tiled_pipeline.models.backbone import FeatureExtractor
from tiled_pipeline.models.base import (
    AnomalyModel,
    FitReport,
    Prediction,
    Stopwatch,
    check_images,
)
from tiled_pipeline.models.blur import patch_scores_to_maps
from tiled_pipeline.models.patchcore.coreset import CoresetBank, random_projection

logger = logging.getLogger(__name__)

# Distances computed at once by nearest_neighbors: 2**24 float32 values, 64 MiB.
_BLOCK_ELEMENTS = 2**24


@dataclass(frozen=True)
class PatchcoreConfig:
    """PatchCore settings; the defaults are the paper's wide_resnet50_2 setup."""

    backbone: str = "wide_resnet50_2"  # timm model name
    layers: tuple[int, ...] = (2, 3)  # timm out_indices; the first sets the patch grid
    weights: str = "timm"  # "random" | "timm" | "package" | path of a local weights file
    coreset_ratio: float = 0.1  # |M_C| / |M|, in (0, 1]
    projection_dim: int = 128  # JL projection for the coreset; >= D uses the features as they are
    n_neighbors: int = 9  # |N_b(m*)| in the tile-score reweighting; 1 disables the reweighting
    seed: int = 0  # seeds the JL projection and the coreset start points
    blur_sigma: float = 4.0  # Gaussian blur of the tile map, in pixels; 0 disables it
    # The most patch features held while fitting (500k x 1536 float32 = 3.1 GB); at or below it
    # the coreset is exact, above it is reduced in chunks (see CoresetBank).
    max_bank_patches: int = 500_000

    def __post_init__(self) -> None:
        if len(self.layers) == 0:
            raise ValueError("layers=() is empty; pass at least one timm out_index, e.g. (2, 3)")
        if not 0 < self.coreset_ratio <= 1:
            raise ValueError(f"coreset_ratio must be in (0, 1], got {self.coreset_ratio}")
        for name in ("projection_dim", "n_neighbors"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_bank_patches < 2:
            raise ValueError(f"max_bank_patches must be >= 2, got {self.max_bank_patches}")
        if self.blur_sigma < 0:
            raise ValueError(f"blur_sigma must be >= 0 pixels, got {self.blur_sigma}")


def nearest_neighbors(
    query: torch.Tensor, bank: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest rows of ``bank`` to each row of ``query`` (Euclidean), in blocks.

    Distances are computed with ``torch.cdist`` on blocks of at most ``_BLOCK_ELEMENTS`` pairs,
    so memory stays bounded whatever the sizes; the running best k are merged across bank blocks.

    Args:
        query: (M, D) points.
        bank: (K, D) points, K >= k.
        k: neighbours per query point.

    Returns:
        distances (M, k) ascending and their (M, k) long bank indices.
    """
    bank_block = min(bank.shape[0], _BLOCK_ELEMENTS)
    query_block = max(1, _BLOCK_ELEMENTS // bank_block)
    results = [_nearest_in_blocks(block, bank, k, bank_block) for block in query.split(query_block)]
    if not results:
        return query.new_empty(0, k), torch.empty(0, k, dtype=torch.long, device=query.device)
    distances, indices = zip(*results, strict=True)
    return torch.cat(distances), torch.cat(indices)


def _nearest_in_blocks(
    query: torch.Tensor, bank: torch.Tensor, k: int, bank_block: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """k nearest of (m, D) ``query`` in (K, D) ``bank``, merging the best k of each bank block."""
    best = query.new_empty(query.shape[0], 0)  # (m, 0), grows to (m, k)
    best_index = torch.empty(query.shape[0], 0, dtype=torch.long, device=query.device)
    for start in range(0, bank.shape[0], bank_block):
        pairwise = torch.cdist(query, bank[start : start + bank_block])  # (m, b)
        block_best, block_index = pairwise.topk(min(k, pairwise.shape[1]), largest=False)
        best = torch.cat([best, block_best], dim=1)  # (m, <= 2k)
        best_index = torch.cat([best_index, block_index + start], dim=1)
        best, position = best.topk(min(k, best.shape[1]), dim=1, largest=False)
        best_index = best_index.gather(1, position)
    return best, best_index


def reweighted_scores(
    patches: torch.Tensor,
    patch_scores: torch.Tensor,
    nearest: torch.Tensor,
    bank: torch.Tensor,
    n_neighbors: int,
) -> torch.Tensor:
    """Tile scores s of eq. 7 from the patch scores.

    Args:
        patches: (B, N, D) test patch features.
        patch_scores: (B, N) nearest-neighbour distances s(m_test).
        nearest: (B, N) bank index of each patch's nearest neighbour.
        bank: (K, D) memory bank M_C.
        n_neighbors: |N_b(m*)|, capped at K; 1 returns s* unweighted (the weight would be 0).

    Returns:
        (B,) scores, 0 <= s <= s*.
    """
    s_star, worst = patch_scores.max(dim=1)  # (B, N) -> (B,)
    k = min(n_neighbors, bank.shape[0])
    if k == 1:
        return s_star
    batch = torch.arange(patches.shape[0], device=patches.device)
    m_test_star = patches[batch, worst]  # (B, N, D) -> (B, D)
    m_star = bank[nearest[batch, worst]]  # (B, D)
    _, support = nearest_neighbors(m_star, bank, k)  # (B, k) indices of N_b(m*)
    support_distances = torch.linalg.vector_norm(
        m_test_star.unsqueeze(1) - bank[support], dim=-1
    )  # (B, 1, D) - (B, k, D) -> (B, k)
    # exp(s*) / sum exp(d) computed as exp(s* - logsumexp(d)) to avoid overflow.
    weight = 1 - torch.exp(s_star - torch.logsumexp(support_distances, dim=1))
    return weight * s_star


class Patchcore(AnomalyModel):
    """PatchCore behind the one model interface; see the module docstring for the algorithm.

    Fitted state (buffer): ``memory_bank`` (K, D), the coreset M_C. The frozen backbone's weights
    are part of the state dict too. Tiles of any size can be scored once fitted. Images of any
    float dtype are computed in float32 on the model's device.
    """

    name = "patchcore"
    config_class = PatchcoreConfig

    def __init__(self, config: PatchcoreConfig) -> None:
        super().__init__(config)
        self.extractor = FeatureExtractor(config.backbone, config.layers, config.weights)
        self.feature_dim = sum(self.extractor.channels)
        # The bank's length comes from the data; a fresh model holds an empty placeholder that
        # the load pre-hook resizes to the incoming state.
        self.register_buffer("memory_bank", torch.zeros(0, self.feature_dim))
        self.register_load_state_dict_pre_hook(_resize_memory_bank)

    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` ran (or a fitted state was loaded)."""
        return self.memory_bank.shape[0] > 0

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, th, tw) in [0, 1] -> (B, D, h, w) locally aware patch features."""
        features = [F.avg_pool2d(f, 3, stride=1, padding=1) for f in self.extractor(images)]
        size = features[0].shape[-2:]
        upsampled = [features[0]] + [
            F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in features[1:]
        ]
        return torch.cat(upsampled, dim=1)  # (B, D, h, w)

    def fit(self, batches: Iterable[torch.Tensor]) -> FitReport:
        """Build the coreset memory bank M_C from normal tiles (one pass over ``batches``).

        Raises:
            ValueError: no tiles, or malformed images.
        """
        bank = self._new_coreset_bank()
        n_images = 0
        with Stopwatch() as watch, torch.no_grad():
            for images in tqdm(batches, desc="PatchCore fit", unit="batch"):
                check_images(images, "PatchCore")
                embedding = self.embed(images.to(self.device, torch.float32))
                B, D, _, _ = embedding.shape
                bank.add(embedding.permute(0, 2, 3, 1).reshape(-1, D))  # -> (B*h*w, D)
                n_images += B
            if n_images == 0:
                raise ValueError("PatchCore needs at least 1 training tile to fit, got 0")
            self.memory_bank = bank.finish()
        K = self.memory_bank.shape[0]
        logger.info(
            "PatchCore kept %d of %d patches from %d tiles (%d chunked reductions) in %.1f s",
            K,
            bank.n_seen,
            n_images,
            bank.n_reductions,
            watch.seconds,
        )
        extra = {
            "bank_patches": float(K),
            "seen_patches": float(bank.n_seen),
            "coreset_reductions": float(bank.n_reductions),
        }
        return FitReport(n_images=n_images, seconds=watch.seconds, extra=extra)

    def _new_coreset_bank(self) -> CoresetBank:
        """An empty CoresetBank with the seeded JL projection (none if it would not reduce D)."""
        generator = torch.Generator().manual_seed(self.config.seed)
        projection = None
        if self.config.projection_dim < self.feature_dim:
            matrix = random_projection(self.feature_dim, self.config.projection_dim, generator)
            projection = matrix.to(self.device)
        return CoresetBank(
            self.config.coreset_ratio, self.config.max_bank_patches, projection, generator
        )

    def predict(self, images: torch.Tensor) -> Prediction:
        """Nearest-neighbour maps (B, th, tw) and eq. 7 scores (B,) for a (B, 3, th, tw) batch."""
        if not self.is_fitted:
            raise ValueError(
                "PatchCore.predict was called before fit; call fit(batches) or load a fitted state"
            )
        check_images(images, "PatchCore")
        with torch.inference_mode():
            images = images.to(self.device, torch.float32)
            patch_scores, scores = self.score_patches(self.embed(images))
            maps = patch_scores_to_maps(
                patch_scores, tuple(images.shape[-2:]), self.config.blur_sigma
            )  # (B, h, w) -> (B, th, tw)
        return Prediction(anomaly_maps=maps.float(), scores=scores.float())

    def score_patches(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D, h, w) patch features -> (B, h, w) patch scores s(m_test) and (B,) scores s."""
        B, D, h, w = embedding.shape
        flat = embedding.permute(0, 2, 3, 1).reshape(B * h * w, D)  # (B, D, h, w) -> (B*N, D)
        distances, nearest = nearest_neighbors(flat, self.memory_bank, 1)  # (B*N, 1) each
        patch_scores = distances.view(B, h * w)  # (B*N, 1) -> (B, N)
        scores = reweighted_scores(
            flat.view(B, h * w, D),  # (B*N, D) -> (B, N, D)
            patch_scores,
            nearest.view(B, h * w),  # (B*N, 1) -> (B, N)
            self.memory_bank,
            self.config.n_neighbors,
        )
        return patch_scores.view(B, h, w), scores  # (B, N) -> (B, h, w)


def _resize_memory_bank(
    module: Patchcore, state_dict: Mapping[str, torch.Tensor], prefix: str, *_: Any
) -> None:
    """Load pre-hook: give ``memory_bank`` the incoming shape so strict loading works."""
    incoming = state_dict.get(prefix + "memory_bank")
    if isinstance(incoming, torch.Tensor) and incoming.shape != module.memory_bank.shape:
        module.memory_bank = module.memory_bank.new_zeros(incoming.shape)
