"""Reverse Distillation: a student decoder reconstructs a frozen teacher's features."""

from tiled_pipeline.models.reverse_distillation.model import (
    ReverseDistillation,
    ReverseDistillationConfig,
)

__all__ = ["ReverseDistillation", "ReverseDistillationConfig"]
