"""Fit one tile model on its crops and score crops with it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from tiled_pipeline.models import AnomalyModel, FitReport, build_model

logger = logging.getLogger(__name__)


class CropBatches:
    """A re-iterable stream of (B, 3, th, tw) float batches in [0, 1] over uint8 crops.

    Args:
        crops: (N, P, th, tw, 3) uint8; the N*P crops of every position are streamed, so a model
            shared by all positions (ST setups) sees the tiles of all positions.
        batch_size: crops per batch; the last batch may be smaller.
    """

    def __init__(self, crops: np.ndarray, batch_size: int) -> None:
        if crops.ndim != 5 or crops.shape[-1] != 3:
            raise ValueError(f"crops must be (N, P, th, tw, 3), got shape {crops.shape}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        N, P, th, tw, _ = crops.shape
        self.crops = crops.reshape(N * P, th, tw, 3)  # (N, P, th, tw, 3) -> (N*P, th, tw, 3)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.crops) // self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for start in range(0, len(self.crops), self.batch_size):
            batch = torch.from_numpy(self.crops[start : start + self.batch_size])
            yield batch.permute(0, 3, 1, 2).float() / 255  # (B, th, tw, 3) -> (B, 3, th, tw)


def fit_tile_model(
    model_name: str, params: dict, crops: np.ndarray, batch_size: int, device: torch.device
) -> tuple[AnomalyModel, FitReport]:
    """Build model ``model_name`` with ``params``, move it to ``device`` and fit it on ``crops``."""
    if len(crops) == 0:
        raise ValueError("no train crops to fit on; the category needs train/good images")
    model = build_model(model_name, params).to(device)
    report = model.fit(CropBatches(crops, batch_size))
    logger.info("fitted %s on %d crops in %.1f s", model_name, report.n_images, report.seconds)
    return model, report


@dataclass(frozen=True)
class TileScores:
    """Predictions for the crops of one tile key.

    Attributes:
        maps: (N, P, th, tw) float16 anomaly maps, unnormalized.
        scores: (N, P) float32 tile scores.
    """

    maps: np.ndarray
    scores: np.ndarray


def predict_crops(model: AnomalyModel, crops: np.ndarray, batch_size: int) -> TileScores:
    """Score (N, P, th, tw, 3) uint8 crops; returns maps (N, P, th, tw) and scores (N, P)."""
    N, P, th, tw, _ = crops.shape
    maps, scores = [], []
    model.eval()
    for batch in CropBatches(crops, batch_size):
        prediction = model.predict(batch)
        maps.append(prediction.anomaly_maps.float().cpu().numpy())
        scores.append(prediction.scores.float().cpu().numpy())
    if not maps:
        empty = np.zeros((0, P, th, tw), dtype=np.float16)
        return TileScores(maps=empty, scores=np.zeros((0, P), dtype=np.float32))
    all_maps = np.concatenate(maps).reshape(N, P, th, tw)  # (N*P, th, tw) -> (N, P, th, tw)
    all_scores = np.concatenate(scores).reshape(N, P)  # (N*P,) -> (N, P)
    if not np.isfinite(all_maps).all():
        raise ValueError("the model produced non-finite anomaly maps; check its fitted state")
    # float16 halves storage; maps outside its range stay float32 rather than overflow to inf.
    in_range = np.abs(all_maps).max(initial=0.0) < np.finfo(np.float16).max
    dtype = np.float16 if in_range else np.float32
    return TileScores(maps=all_maps.astype(dtype), scores=all_scores.astype(np.float32))
