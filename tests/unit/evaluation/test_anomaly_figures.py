"""The report figure: a PNG of bounded size that PIL decodes, drawn without pyplot."""

from __future__ import annotations

import io
import sys

import matplotlib
import numpy as np
import pytest
from PIL import Image

from tiled_pipeline.evaluation import anomaly_figure
from tiled_pipeline.evaluation.figures import PANEL_PIXELS, TITLE_PIXELS


def _images(n: int, size: int = 48) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    masks = np.zeros((n, size, size), dtype=bool)
    masks[: n // 2, 10:20, 10:20] = True
    maps = rng.random(masks.shape).astype(np.float32) + masks
    return images, masks, maps, maps.reshape(n, -1).max(axis=1)


@pytest.mark.parametrize(("n", "k", "rows"), [(8, 3, 6), (4, 3, 4), (5, 1, 2)])
def test_anomaly_figure_is_a_png_of_the_expected_size(n: int, k: int, rows: int) -> None:
    images, masks, maps, scores = _images(n)
    png = anomaly_figure(images, masks, maps, scores, threshold=1.0, k=k, title="padim / carpet")
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        assert image.size == (4 * PANEL_PIXELS, rows * PANEL_PIXELS + TITLE_PIXELS)
    assert image.size[0] <= 1200


def test_anomaly_figure_leaves_no_global_matplotlib_state() -> None:
    backend = matplotlib.get_backend()
    pyplot = sys.modules.get("matplotlib.pyplot")
    figures_before = pyplot.get_fignums() if pyplot else []
    anomaly_figure(*_images(4), threshold=0.5)
    assert matplotlib.get_backend() == backend
    if pyplot:
        assert pyplot.get_fignums() == figures_before
    else:
        assert "matplotlib.pyplot" not in sys.modules


def test_anomaly_figure_rejects_float_images_and_bad_k() -> None:
    images, masks, maps, scores = _images(4)
    with pytest.raises(ValueError, match=r"images must be \(N, H, W, 3\) uint8 RGB"):
        anomaly_figure(images / 255.0, masks, maps, scores, threshold=0.5)
    with pytest.raises(ValueError, match="k must be at least 1, got 0"):
        anomaly_figure(images, masks, maps, scores, threshold=0.5, k=0)
