"""FastFlow: 2D normalizing flows on frozen backbone features."""

from tiled_pipeline.models.fastflow.model import Fastflow, FastflowConfig

__all__ = ["Fastflow", "FastflowConfig"]
