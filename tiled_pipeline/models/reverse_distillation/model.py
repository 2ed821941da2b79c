"""Reverse Distillation (Deng and Li, CVPR 2022, "Anomaly Detection via Reverse Distillation from
One-Class Embedding").

1. A frozen teacher encoder E gives three stage maps f_E^1..3 (wide_resnet50_2 layers 1-3).
2. A trainable one-class bottleneck (OCBE) fuses them into a compact embedding.
3. A trainable student decoder D expands the embedding back into f_D^1..3. Training minimises,
   per stage k, ``1 - cos(vec(f_E^k), vec(f_D^k))`` (each sample's map flattened, as in the
   reference code), averaged over the batch and over the stages. The reference sums the stages;
   the mean only scales the loss by 1/3.
4. Anomaly map: per stage ``1 - cos(f_E^k, f_D^k)`` over channels at each position, bilinearly
   upsampled to the tile, summed over stages and blurred with a Gaussian (sigma 4 px); the tile
   score is the map's maximum.
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
from tiled_pipeline.models.blur import gaussian_blur_maps
from tiled_pipeline.models.reverse_distillation.blocks import residual_spec
from tiled_pipeline.models.reverse_distillation.bottleneck import OneClassBottleneck
from tiled_pipeline.models.reverse_distillation.decoder import Decoder
from tiled_pipeline.models.training import check_schedule, seeded, train

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReverseDistillationConfig:
    """Reverse Distillation's architecture and training schedule.

    Defaults follow the reference code (hq-deng/RD4AD ``main.py``): 200 epochs, batch size 16,
    Adam with lr 0.005; betas (0.5, 0.99) as in anomalib (the reference uses (0.5, 0.999)).
    Neither stops early on normal data; set ``val_fraction`` > 0 to stop on the loss of
    held-out normal tiles.
    """

    backbone: str = "wide_resnet50_2"  # timm model name (the frozen teacher)
    layers: tuple[int, ...] = (1, 2, 3)  # three timm out_indices, each of twice the stride
    weights: str = "timm"  # "timm", "random", "package" or a local file (see backbone.py)
    lr: float = 0.005  # Adam learning rate
    betas: tuple[float, float] = (0.5, 0.99)  # Adam betas
    epochs: int = 200  # maximum passes over the tiles
    batch_size: int = 16  # tiles per optimizer step
    seed: int = 0  # initialisation and training
    blur_sigma: float = 4.0  # Gaussian smoothing of the anomaly map, pixels; 0 = none
    early_stopping_patience: int = 3  # epochs without a better held-out loss before stopping
    val_fraction: float = 0.0  # share of batches held out for early stopping; 0 = off

    def __post_init__(self) -> None:
        if len(self.layers) != 3:
            raise ValueError(
                f"layers must name three backbone stages, got {self.layers}; e.g. (1, 2, 3)"
            )
        if len(self.betas) != 2 or not all(0 <= beta < 1 for beta in self.betas):
            raise ValueError(f"betas must be two values in [0, 1), got {self.betas}")
        if self.blur_sigma < 0:
            raise ValueError(f"blur_sigma must be >= 0 pixels, got {self.blur_sigma}")
        check_schedule(
            self.epochs, self.batch_size, self.val_fraction, self.early_stopping_patience
        )


class ReverseDistillation(AnomalyModel):
    """Reverse Distillation on tiles whose sides are multiples of the bottleneck's stride.

    With ResNet layers (1, 2, 3) the bottleneck's stride is 32, so tiles must be 32, 64, ... px
    on each side (256 in the published setups).
    """

    name = "reverse_distillation"
    config_class = ReverseDistillationConfig

    def __init__(self, config: ReverseDistillationConfig) -> None:
        super().__init__(config)
        with seeded(config.seed):
            self.extractor = FeatureExtractor(config.backbone, config.layers, config.weights)
            self._check_strides()
            channels = tuple(self.extractor.channels)
            spec = residual_spec(self.extractor)
            self.bottleneck = OneClassBottleneck(channels, spec)
            self.decoder = Decoder(self.bottleneck.out_channels, channels, spec)
        # The embedding is one stride-2 step below the deepest stage.
        self.tile_multiple = 2 * max(self.extractor.reductions)

    def _check_strides(self) -> None:
        """The decoder doubles resolution per stage, so the stages must double in stride."""
        r1, r2, r3 = self.extractor.reductions
        if (r2, r3) != (2 * r1, 4 * r1):
            raise ValueError(
                f"layers={self.config.layers} of {self.config.backbone} have strides "
                f"{(r1, r2, r3)}; reverse distillation needs three stages that each double the "
                "stride, e.g. ResNet layers (1, 2, 3)"
            )

    def _check_tile(self, images: torch.Tensor) -> None:
        """Raise unless the tile's sides are positive multiples of ``tile_multiple``."""
        th, tw = images.shape[2:]
        multiple = self.tile_multiple
        if th % multiple or tw % multiple:
            fit_h, fit_w = (max(multiple, side // multiple * multiple) for side in (th, tw))
            raise ValueError(
                f"tiles of {th}x{tw} do not fit reverse distillation with {self.config.backbone} "
                f"layers {self.config.layers}: height and width must be multiples of {multiple} "
                f"(minimum {multiple}x{multiple}); resize or re-tile, e.g. to {fit_h}x{fit_w}"
            )

    def _features(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(B, 3, th, tw) -> encoder and decoder stage maps, each [(B, C_i, h_i, w_i)] x 3."""
        self._check_tile(images)
        encoded = self.extractor(images)
        return encoded, self.decoder(self.bottleneck(encoded))

    def loss(self, images: torch.Tensor) -> torch.Tensor:
        """Mean over stages of ``1 - cos`` between flattened encoder and decoder maps."""
        encoded, decoded = self._features(images)
        losses = [
            1 - F.cosine_similarity(e.flatten(1), d.flatten(1), dim=1)  # (B, C*h*w) -> (B,)
            for e, d in zip(encoded, decoded, strict=True)
        ]
        return torch.stack(losses).mean()

    def fit(self, batches: Iterable[torch.Tensor]) -> FitReport:
        """Train the bottleneck and decoder on normal tiles; see :func:`training.train`."""
        config = self.config
        trainable = nn.ModuleList([self.bottleneck, self.decoder])
        optimizer = torch.optim.Adam(trainable.parameters(), lr=config.lr, betas=config.betas)
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
                desc="reverse_distillation",
            )
        self.eval()
        return result.report(watch.seconds)

    @torch.inference_mode()
    def predict(self, images: torch.Tensor) -> Prediction:
        """Score (B, 3, th, tw) tiles in [0, 1]; maps (B, th, tw) and scores (B,), float32.

        Map values lie in [0, 6] before blurring (three stages of ``1 - cos`` each in [0, 2]).
        Outputs stay on the model's device.
        """
        self.eval()
        images = check_images(images, "Reverse Distillation").to(self.device)
        encoded, decoded = self._features(images)
        maps = sum(
            F.interpolate(
                (1 - F.cosine_similarity(e, d, dim=1)).unsqueeze(1),  # (B, h, w) -> (B, 1, h, w)
                size=images.shape[2:],
                mode="bilinear",
                align_corners=True,
            )
            for e, d in zip(encoded, decoded, strict=True)
        )  # (B, 1, th, tw)
        maps = gaussian_blur_maps(maps.squeeze(1).float(), self.config.blur_sigma)
        return Prediction(anomaly_maps=maps, scores=maps.flatten(1).amax(dim=1))
