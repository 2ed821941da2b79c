"""Code versions: a stage's own version plus a fingerprint of the settings it depends on.

Dagster compares these with the versions recorded at the last materialization, so changing a
model's code (bump its stage version) or an experiment parameter marks exactly the assets that
depend on it stale.
"""

from __future__ import annotations

import hashlib

# Bump a stage's number when its code changes what it writes.
STAGE_VERSIONS = {
    "category_images": "1",
    "tiled_crops": "1",
    "tile_model": "1",
    "tile_predictions": "1",
    "merged_maps": "1",
    "metric_report": "1",
    "benchmark_summary": "1",
}


def fingerprint(*parts: object) -> str:
    """A short, stable digest of the ``repr`` of ``parts`` (frozen dataclasses and tuples)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def code_version(stage: str, *settings: object) -> str:
    """``<stage version>-<fingerprint of settings>``."""
    return f"{STAGE_VERSIONS[stage]}-{fingerprint(*settings)}"
