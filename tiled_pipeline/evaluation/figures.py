"""A light PNG of the most and least anomalous test images of a category, for the event log.

Drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas attached inside the function:
no pyplot, no global backend switch, nothing left open afterwards. The PNG is
``4 * PANEL_PIXELS`` = 800 pixels wide and ``rows * PANEL_PIXELS + TITLE_PIXELS`` high whatever
the image size, so its byte size grows with the number of rows only, not with the resolution."""

from __future__ import annotations

import io

import numpy as np

from tiled_pipeline.evaluation._validation import check_maps, check_masks, check_scores

PANEL_PIXELS = 200
TITLE_PIXELS = 48
_DPI = 80
_COLUMNS = ("image", "ground truth", "anomaly map", "predicted (map >= threshold)")


def anomaly_figure(
    images: np.ndarray,
    masks: np.ndarray,
    maps: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    k: int = 3,
    title: str = "",
) -> bytes:
    """PNG of the ``k`` highest- and ``k`` lowest-scoring images, one row each.

    Columns: the image, its ground-truth mask, the anomaly map over the image (one colour scale
    for all rows, from the lowest to the highest value shown), the predicted mask
    ``map >= threshold``. Rows run from the highest score down, then the lowest ``k`` from the
    lowest up; with fewer than ``2 k`` images every image appears once.

    Args:
        images: (N, H, W, 3) uint8 RGB images.
        masks: (N, H, W) bool ground truth.
        maps: (N, H, W) anomaly maps at the images' resolution.
        scores: (N,) image scores that rank the images.
        threshold: pixel threshold in map units.
        k: rows from each end, at least 1.
        title: figure title, e.g. the experiment and category.

    Returns:
        PNG bytes, 800 pixels wide (see the module docstring for the height).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be (N, H, W, 3) uint8 RGB, got shape {images.shape} and dtype "
            f"{images.dtype}; convert with np.clip(x * 255, 0, 255).astype(np.uint8)"
        )
    maps = check_maps(maps)
    if maps.shape != images.shape[:3]:
        raise ValueError(f"maps must have shape {images.shape[:3]} like images, got {maps.shape}")
    masks = check_masks(masks, maps.shape)
    values = check_scores(scores, maps.shape[0])
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    rows = _chosen_rows(values, k)
    return _render(images, masks, maps, values, rows, float(threshold), title)


def _chosen_rows(scores: np.ndarray, k: int) -> list[int]:
    """The ``k`` highest scores (descending), then the ``k`` lowest not already chosen."""
    order = np.argsort(-scores, kind="stable")
    top = order[:k].tolist()
    bottom = [int(i) for i in order[::-1][:k] if i not in top]
    return top + bottom


def _render(
    images: np.ndarray,
    masks: np.ndarray,
    maps: np.ndarray,
    scores: np.ndarray,
    rows: list[int],
    threshold: float,
    title: str,
) -> bytes:
    """Draw the chosen rows on an Agg canvas and encode them as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = len(_COLUMNS) * PANEL_PIXELS, len(rows) * PANEL_PIXELS + TITLE_PIXELS
    figure = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
    FigureCanvasAgg(figure)
    top = 1 - TITLE_PIXELS / height
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=top, wspace=0.04, hspace=0.1)
    low, high = float(maps[rows].min()), float(maps[rows].max())
    scale = f"map scale {low:.3g} to {high:.3g}, threshold {threshold:.3g}"
    text = f"{title}  ({scale})" if title else scale
    figure.suptitle(text, y=1 - 4 / height, va="top", fontsize=9)
    axes = figure.subplots(len(rows), len(_COLUMNS), squeeze=False)
    for column, name in enumerate(_COLUMNS):
        axes[0, column].set_title(name, fontsize=8)
    for r, i in enumerate(rows):
        _draw_row(axes[r], images[i], masks[i], maps[i], threshold, (low, high))
        kind = "defect" if masks[i].any() else "good"
        axes[r, 0].text(
            2,
            2,
            f"#{i} {kind} {scores[i]:.3g}",
            fontsize=7,
            va="top",
            color="white",
            backgroundcolor="black",
        )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def _draw_row(
    axes: np.ndarray,
    image: np.ndarray,
    mask: np.ndarray,
    anomaly_map: np.ndarray,
    threshold: float,
    scale: tuple[float, float],
) -> None:
    """Image, ground truth, map overlay and predicted mask of one image on four axes."""
    for ax in axes:
        ax.set_axis_off()
    axes[0].imshow(image)
    axes[1].imshow(mask, cmap="gray", vmin=0, vmax=1)
    axes[2].imshow(image)
    axes[2].imshow(anomaly_map, cmap="jet", alpha=0.5, vmin=scale[0], vmax=scale[1])
    axes[3].imshow(anomaly_map >= threshold, cmap="gray", vmin=0, vmax=1)
