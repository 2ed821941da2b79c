"""PaDiM: a Gaussian per patch position over pretrained CNN features (Defard et al., 2021)."""

from tiled_pipeline.models.padim.model import Padim, PadimConfig, RunningGaussian, mahalanobis

__all__ = ["Padim", "PadimConfig", "RunningGaussian", "mahalanobis"]
