"""High-resolution industrial anomaly detection with a tiled ensemble, run as Dagster assets."""

__version__ = "0.1.0"
