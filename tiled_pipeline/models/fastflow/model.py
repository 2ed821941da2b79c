"""FastFlow: normalizing flows on frozen backbone features (Yu et al., 2021, arXiv:2111.07677).

1. A frozen timm backbone gives one feature map per stage (resnet18 layers 1-3 by default).
2. Each map is layer-normalized over (C, h, w) with a learned LayerNorm. Its shape is fixed at
   construction from ``tile_size`` (measured by one forward pass of a blank tile), so a model
   only accepts tiles of that size: the published setups do the same, and the norms' parameters
   grow with the tile (about 0.9 M at 256 x 256 for resnet18).
3. One 2D flow per stage maps the normalized features to latents z, trained by maximum
   likelihood under a standard normal.
4. At test time each stage's map is ``-exp(-0.5 * mean_C(z^2))`` (minus the likelihood of the
   position), bilinearly upsampled to the tile; the stages are averaged and the tile score is
   the map's maximum.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tiled_pipeline.models.backbone import FeatureExtractor
from tiled_pipeline.models.base import (
    AnomalyModel,
    FitReport,
    Prediction,
    Stopwatch,
    check_images,
)
from tiled_pipeline.models.fastflow.flow import Flow2d, negative_log_likelihood
from tiled_pipeline.models.training import check_schedule, seeded, train

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FastflowConfig:
    """FastFlow's architecture and training schedule.

    Training defaults are those of the reference code (gathierry/FastFlow ``constants.py``):
    Adam with lr 1e-3 and weight decay 1e-5, batch size 32, 500 epochs. anomalib caps FastFlow at
    500 epochs too but stops early on a metric of labelled (anomalous) images; here early stopping
    can only use the loss of held-out normal tiles (``val_fraction`` > 0, off by default), so by
    default all 500 epochs run.
    """

    backbone: str = "resnet18"  # timm model name
    layers: tuple[int, ...] = (1, 2, 3)  # timm out_indices, one flow per stage
    weights: str = "timm"  # "timm", "random", "package" or a local file (see backbone.py)
    tile_size: tuple[int, int] = (256, 256)  # (th, tw) the model accepts; fixes the LayerNorms
    flow_steps: int = 8  # coupling blocks per flow
    hidden_ratio: float = 1.0  # subnet hidden channels per conditioning channel
    clamp: float = 2.0  # bound of the couplings' log-scales
    conv3x3_only: bool = False  # True: 3x3 subnets in every block, else alternate 3x3 and 1x1
    lr: float = 1e-3  # Adam learning rate
    weight_decay: float = 1e-5  # Adam weight decay
    epochs: int = 500  # maximum passes over the tiles
    batch_size: int = 32  # tiles per optimizer step
    seed: int = 0  # initialisation, permutations and training
    early_stopping_patience: int = 3  # epochs without a better held-out loss before stopping
    val_fraction: float = 0.0  # share of batches held out for early stopping; 0 = off

    def __post_init__(self) -> None:
        if len(self.tile_size) != 2 or min(self.tile_size) < 1:
            raise ValueError(f"tile_size must be (th, tw) > 0 pixels, got {self.tile_size}")
        if not self.layers:
            raise ValueError("layers must name at least one backbone stage, got ()")
        if self.flow_steps < 1:
            raise ValueError(f"flow_steps must be >= 1, got {self.flow_steps}")
        if self.hidden_ratio <= 0 or self.clamp <= 0:
            raise ValueError(
                f"hidden_ratio and clamp must be > 0, got {self.hidden_ratio} and {self.clamp}"
            )
        check_schedule(
            self.epochs, self.batch_size, self.val_fraction, self.early_stopping_patience
        )


class Fastflow(AnomalyModel):
    """FastFlow on tiles of one fixed size (``config.tile_size``); see the module docstring."""

    name = "fastflow"
    config_class = FastflowConfig

    def __init__(self, config: FastflowConfig) -> None:
        super().__init__(config)
        with seeded(config.seed):
            self.extractor = FeatureExtractor(config.backbone, config.layers, config.weights)
            shapes = self._feature_shapes()
            self.norms = nn.ModuleList(nn.LayerNorm(list(shape)) for shape in shapes)
            generator = torch.Generator().manual_seed(config.seed)
            self.flows = nn.ModuleList(
                Flow2d(
                    channels,
                    config.flow_steps,
                    config.hidden_ratio,
                    config.clamp,
                    config.conv3x3_only,
                    generator,
                )
                for channels, _, _ in shapes
            )

    def _feature_shapes(self) -> list[tuple[int, int, int]]:
        """(C, h, w) of each stage for a tile of ``tile_size``, from one blank forward pass."""
        th, tw = self.config.tile_size
        stride = max(self.extractor.reductions)
        if min(th, tw) < stride:
            raise ValueError(
                f"tile_size={self.config.tile_size} is smaller than the largest stride {stride} "
                f"of {self.config.backbone} layers {self.config.layers}; use tiles of at least "
                f"{stride}x{stride} or earlier layers"
            )
        with torch.no_grad():
            features = self.extractor(torch.zeros(1, 3, th, tw))
        return [tuple(feature.shape[1:]) for feature in features]

    def _latents(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(B, 3, th, tw) -> per stage, latent z (B, C, h, w) and log|det| (B,)."""
        tile = tuple(images.shape[2:])
        if tile != tuple(self.config.tile_size):
            raise ValueError(
                f"this FastFlow was built for tile_size={tuple(self.config.tile_size)} (its "
                f"LayerNorm shapes depend on it), got tiles of {tile[0]}x{tile[1]}; build the "
                f"model with tile_size={tile}"
            )
        features = self.extractor(images)
        return [
            flow(norm(feature))
            for feature, norm, flow in zip(features, self.norms, self.flows, strict=True)
        ]

    def loss(self, images: torch.Tensor) -> torch.Tensor:
        """Mean over stages of the per-sample negative log-likelihood, averaged over the batch."""
        latents = self._latents(images)
        return torch.stack([negative_log_likelihood(z, log_det) for z, log_det in latents]).mean()

    def fit(self, batches: Iterable[torch.Tensor]) -> FitReport:
        """Train the norms and flows on normal tiles; see :func:`training.train`."""
        config = self.config
        trainable = nn.ModuleList([self.norms, self.flows])
        optimizer = torch.optim.Adam(
            trainable.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        with Stopwatch() as watch:
            result = train(
                trainable,
                self.loss,
                batches,
                optimizer,
                epochs=config.epochs,
                batch_size=config.batch_size,
                seed=config.seed,
                device=self.device,
                val_fraction=config.val_fraction,
                patience=config.early_stopping_patience,
                desc="fastflow",
            )
        self.eval()
        return result.report(watch.seconds)

    @torch.inference_mode()
    def predict(self, images: torch.Tensor) -> Prediction:
        """Score (B, 3, th, tw) tiles in [0, 1]; maps (B, th, tw) and scores (B,), float32.

        Maps are in (-1, 0]: minus the mean over stages of each position's likelihood factor, so
        higher is more anomalous. Outputs stay on the model's device.
        """
        self.eval()
        images = check_images(images, "FastFlow").to(self.device)
        stage_maps = [
            -torch.exp(-0.5 * z.pow(2).mean(dim=1, keepdim=True)) for z, _ in self._latents(images)
        ]  # each (B, 1, h, w)
        maps = torch.stack(
            [
                F.interpolate(m, size=images.shape[2:], mode="bilinear", align_corners=False)
                for m in stage_maps
            ]
        ).mean(dim=0)  # S x (B, 1, th, tw) -> (B, 1, th, tw)
        maps = maps.squeeze(1).float()  # (B, 1, th, tw) -> (B, th, tw)
        return Prediction(anomaly_maps=maps, scores=maps.flatten(1).amax(dim=1))
