"""PaDiM: one Gaussian per patch position over pretrained CNN features.

Defard et al., "PaDiM: a Patch Distribution Modeling Framework for Anomaly Detection and
Localization", ICPR 2021. With the paper's symbols, for a tile and feature position (i, j):

1. Embedding: the feature maps of ``layers`` are upsampled (nearest) to the first layer's
   resolution and concatenated, giving x_ij of D dimensions (448 for resnet18 layers 1-3).
2. Reduction: d = ``n_features`` of the D dimensions are drawn at random once (seeded) and kept.
3. Fitting: over the n normal tiles, mu_ij is the mean of x_ij and
   Sigma_ij = cov(x_ij) + epsilon I, epsilon = ``regularization``. Only running sums of x_ij and
   x_ij x_ij^T are held (float64), so fitting memory does not grow with n.
4. Scoring: M(x_ij) = sqrt((x_ij - mu_ij)^T Sigma_ij^-1 (x_ij - mu_ij)), the Mahalanobis
   distance, forms a (h, w) map per tile.
5. The map is upsampled bilinearly to the tile, blurred with a Gaussian (sigma 4 px), and the
   tile score is the map's maximum.
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

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PadimConfig:
    """PaDiM settings; the defaults are the paper's resnet18 setup."""

    backbone: str = "resnet18"  # timm model name
    layers: tuple[int, ...] = (1, 2, 3)  # timm out_indices; the first sets the map resolution
    weights: str = "timm"  # "random" | "timm" | "package" | path of a local weights file
    n_features: int = 100  # d, the embedding dimensions kept (drawn at random, seeded)
    seed: int = 0  # seeds the draw of the n_features dimensions
    regularization: float = 0.01  # epsilon in Sigma_ij + epsilon I
    blur_sigma: float = 4.0  # Gaussian blur of the tile map, in pixels; 0 disables it

    def __post_init__(self) -> None:
        if len(self.layers) == 0:
            raise ValueError("layers=() is empty; pass at least one timm out_index, e.g. (1, 2, 3)")
        if self.n_features < 1:
            raise ValueError(f"n_features must be >= 1, got {self.n_features}")
        if self.regularization <= 0:
            raise ValueError(
                f"regularization must be > 0 to keep Sigma_ij invertible, got "
                f"{self.regularization}; the paper uses 0.01"
            )
        if self.blur_sigma < 0:
            raise ValueError(f"blur_sigma must be >= 0 pixels, got {self.blur_sigma}")


class RunningGaussian:
    """Running sums of x and x x^T for N independent D-dimensional Gaussians, in float64.

    Memory is (N, D, D) float64 whatever the number of samples; ``mean`` and ``covariance`` turn
    the sums into mu and the unbiased (n - 1) covariance.

    Args:
        n_positions: N, the number of independent Gaussians (feature positions).
        dim: D, the dimension of each Gaussian.
        device: where the sums live; it must support float64.
    """

    def __init__(self, n_positions: int, dim: int, device: torch.device) -> None:
        self.count = 0
        self.sum = torch.zeros(n_positions, dim, dtype=torch.float64, device=device)
        self.sum_outer = torch.zeros(n_positions, dim, dim, dtype=torch.float64, device=device)

    def update(self, x: torch.Tensor) -> None:
        """Add (B, N, D) samples: B samples of each of the N Gaussians."""
        B = x.shape[0]
        x = x.to(self.sum.device, torch.float64).transpose(0, 1)  # (B, N, D) -> (N, B, D)
        self.count += B
        self.sum += x.sum(dim=1)
        self.sum_outer.baddbmm_(x.transpose(1, 2), x)  # += (N, D, B) @ (N, B, D)

    def mean(self) -> torch.Tensor:
        """(N, D) mean of the samples seen."""
        return self.sum / self.count

    def covariance(self, positions: slice = slice(None)) -> torch.Tensor:
        """(N, D, D) unbiased covariance (of ``positions`` only); needs at least two samples."""
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 samples, got {self.count}")
        mean = self.mean()[positions]
        outer = mean.unsqueeze(2) * mean.unsqueeze(1)  # (N, D, 1) * (N, 1, D) -> (N, D, D)
        return (self.sum_outer[positions] - self.count * outer) / (self.count - 1)

    def inverse_covariance(self, regularization: float, chunk: int = 512) -> torch.Tensor:
        """(N, D, D) float32 inverse of the covariance plus ``regularization * I``.

        Computed ``chunk`` positions at a time, so the peak stays near the sums themselves
        rather than holding a float64 covariance and its inverse for every position at once.
        """
        N, D = self.sum.shape
        identity = torch.eye(D, dtype=torch.float64, device=self.sum.device)
        inverse = torch.empty(N, D, D, dtype=torch.float32, device=self.sum.device)
        for start in range(0, N, chunk):
            block = slice(start, start + chunk)
            covariance = self.covariance(block) + regularization * identity
            inverse[block] = torch.linalg.inv(covariance).float()
        return inverse


def mahalanobis(x: torch.Tensor, mean: torch.Tensor, inv_covariance: torch.Tensor) -> torch.Tensor:
    """M(x_ij) for (B, N, D) samples against N Gaussians of (N, D) means and (N, D, D) inverses.

    Returns:
        (B, N) distances, >= 0.
    """
    delta = x - mean  # (B, N, D) - (N, D) -> (B, N, D)
    weighted = torch.einsum("bnd,nde->bne", delta, inv_covariance)  # (B, N, D)
    return (weighted * delta).sum(dim=-1).clamp_min(0).sqrt()  # (B, N, D) -> (B, N)


class Padim(AnomalyModel):
    """PaDiM behind the one model interface; see the module docstring for the algorithm.

    Fitted state (buffers): ``index`` (d,) kept dimensions, ``mean`` (N, d) mu_ij,
    ``inv_covariance`` (N, d, d) Sigma_ij^-1 and ``feature_size`` (h, w) with N = h * w. The
    frozen backbone's weights are part of the state dict too. Images of any float dtype are
    computed in float32 on the model's device.
    """

    name = "padim"
    config_class = PadimConfig

    def __init__(self, config: PadimConfig) -> None:
        super().__init__(config)
        self.extractor = FeatureExtractor(config.backbone, config.layers, config.weights)
        available = sum(self.extractor.channels)
        if config.n_features > available:
            raise ValueError(
                f"n_features={config.n_features} exceeds the {available} feature dimensions of "
                f"{config.backbone} layers {config.layers}; pass n_features <= {available}"
            )
        generator = torch.Generator().manual_seed(config.seed)
        index = torch.randperm(available, generator=generator)[: config.n_features].sort().values
        d = config.n_features
        self.register_buffer("index", index)
        # mean and inv_covariance take their (h * w) leading size from the data; a fresh model
        # holds empty placeholders that the load pre-hook resizes to the incoming state.
        self.register_buffer("mean", torch.zeros(0, d))
        self.register_buffer("inv_covariance", torch.zeros(0, d, d))
        self.register_buffer("feature_size", torch.zeros(2, dtype=torch.long))
        self.register_load_state_dict_pre_hook(_resize_fitted_buffers)

    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` ran (or a fitted state was loaded)."""
        return self.mean.shape[0] > 0

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, th, tw) in [0, 1] -> (B, d, h, w) embeddings x_ij at the first layer's size."""
        features = self.extractor(images)
        size = features[0].shape[-2:]
        upsampled = [features[0]] + [
            F.interpolate(f, size=size, mode="nearest") for f in features[1:]
        ]
        embedding = torch.cat(upsampled, dim=1)  # (B, D, h, w)
        return embedding.index_select(1, self.index)  # (B, D, h, w) -> (B, d, h, w)

    def fit(self, batches: Iterable[torch.Tensor]) -> FitReport:
        """Estimate mu_ij and Sigma_ij^-1 from normal tiles (one pass over ``batches``).

        Raises:
            ValueError: fewer than 2 tiles, tiles of differing sizes, or malformed images.
        """
        with Stopwatch() as watch, torch.no_grad():
            gaussian, feature_size = self._accumulate(batches)
            inverse = gaussian.inverse_covariance(self.config.regularization)  # (N, d, d)
            self.mean = gaussian.mean().to(self.device, torch.float32)
            self.inv_covariance = inverse.to(self.device)
            self.feature_size = torch.tensor(feature_size, device=self.device)
        logger.info(
            "PaDiM fitted %d Gaussians of %d dims on %d tiles in %.1f s",
            gaussian.sum.shape[0],
            gaussian.sum.shape[1],
            gaussian.count,
            watch.seconds,
        )
        return FitReport(n_images=gaussian.count, seconds=watch.seconds)

    def _accumulate(
        self, batches: Iterable[torch.Tensor]
    ) -> tuple[RunningGaussian, tuple[int, int]]:
        """One pass over ``batches``: running sums per position and the (h, w) feature size."""
        # MPS has no float64; the sums then live on the CPU.
        device = torch.device("cpu") if self.device.type == "mps" else self.device
        gaussian: RunningGaussian | None = None
        feature_size = (0, 0)
        for images in tqdm(batches, desc="PaDiM fit", unit="batch"):
            check_images(images, "PaDiM")
            embedding = self.embed(images.to(self.device, torch.float32))
            _, d, h, w = embedding.shape
            if gaussian is None:
                gaussian, feature_size = RunningGaussian(h * w, d, device), (h, w)
            elif (h, w) != feature_size:
                raise ValueError(
                    f"tiles of one fit must share a size: got features of {h}x{w} after "
                    f"{feature_size[0]}x{feature_size[1]}; fit one model per tile size"
                )
            gaussian.update(embedding.flatten(2).transpose(1, 2))  # (B, d, h, w) -> (B, h*w, d)
        if gaussian is None or gaussian.count < 2:
            count = 0 if gaussian is None else gaussian.count
            raise ValueError(f"PaDiM needs at least 2 training tiles to fit, got {count}")
        return gaussian, feature_size

    def predict(self, images: torch.Tensor) -> Prediction:
        """Mahalanobis maps (B, th, tw) and max-of-map scores (B,) for a (B, 3, th, tw) batch."""
        if not self.is_fitted:
            raise ValueError(
                "PaDiM.predict was called before fit; call fit(batches) or load a fitted state"
            )
        check_images(images, "PaDiM")
        with torch.inference_mode():
            images = images.to(self.device, torch.float32)
            embedding = self.embed(images)
            B, _, h, w = embedding.shape
            self._check_feature_size(h, w)
            x = embedding.flatten(2).transpose(1, 2)  # (B, d, h, w) -> (B, h*w, d)
            distances = mahalanobis(x, self.mean, self.inv_covariance)  # (B, h*w)
            patch_scores = distances.view(B, h, w)  # (B, h*w) -> (B, h, w)
            maps = patch_scores_to_maps(
                patch_scores, tuple(images.shape[-2:]), self.config.blur_sigma
            )
            scores = maps.flatten(1).amax(dim=1)  # (B, th, tw) -> (B,)
        return Prediction(anomaly_maps=maps.float(), scores=scores.float())

    def _check_feature_size(self, h: int, w: int) -> None:
        fitted = tuple(self.feature_size.tolist())
        if (h, w) != fitted:
            raise ValueError(
                f"PaDiM was fitted on tiles giving {fitted[0]}x{fitted[1]} features, got {h}x{w}; "
                "predict on tiles of the training size"
            )


def _resize_fitted_buffers(
    module: Padim, state_dict: Mapping[str, torch.Tensor], prefix: str, *_: Any
) -> None:
    """Load pre-hook: give the data-shaped buffers the incoming shapes so strict loading works."""
    for name in ("mean", "inv_covariance"):
        incoming = state_dict.get(prefix + name)
        current = getattr(module, name)
        if isinstance(incoming, torch.Tensor) and incoming.shape != current.shape:
            setattr(module, name, current.new_zeros(incoming.shape))
