"""Pixel AUPRO: area under the per-region-overlap curve up to a false-positive-rate limit.

For a threshold t, with pixels predicted anomalous where ``map >= t``:

1. FPR(t) = normal pixels at or above t / all normal pixels (over all images).
2. PRO(t) = mean over the R defect regions of all images of the fraction of the region's pixels
   at or above t (regions as in :mod:`tiled_pipeline.evaluation.pixels`).
3. The curve joins the points (FPR(t), PRO(t)) of every distinct score t, from the highest score
   down, starting at (0, 0), by straight lines.
4. AUPRO = area under that curve for FPR in [0, limit], divided by ``limit`` so that a perfect
   detector scores 1. PRO at the limit is interpolated linearly between the two points around it.

Constant maps give the diagonal from (0, 0) to (1, 1): AUPRO = limit / 2 (0.15 at 0.3).

Efficiency: :class:`PixelScores` holds the normal and the defect scores sorted once. PRO only
changes at defect-pixel scores, so the curve is fixed by two points per distinct defect score,
each found by binary search into the sorted scores: no loop over thresholds or images, and
memory in the number of defect pixels, not of all pixels.
"""

from __future__ import annotations

import numpy as np

from tiled_pipeline.evaluation._validation import undefined
from tiled_pipeline.evaluation.pixels import PixelScores

DEFAULT_FPR_LIMIT = 0.3


def pixel_aupro(pixels: PixelScores, fpr_limit: float = DEFAULT_FPR_LIMIT) -> float:
    """Normalized area under the PRO curve for FPR in [0, ``fpr_limit``].

    Args:
        pixels: the sorted pixel scores and regions of the evaluated images.
        fpr_limit: upper FPR bound of the integral, in (0, 1].

    Returns:
        AUPRO in [0, 1]; NaN with a warning when the masks hold no defect region or no normal
        pixel (FPR undefined).

    Raises:
        ValueError: if ``fpr_limit`` is outside (0, 1].
    """
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit!r}; the usual value is 0.3")
    if pixels.n_regions == 0:
        return undefined("pixel AUPRO", "no defect regions in the masks")
    if pixels.n_negative == 0:
        return undefined("pixel AUPRO", "no normal pixels, so the FPR is undefined")
    fpr, pro = pro_curve(pixels)
    return float(_area_up_to(fpr, pro, fpr_limit) / fpr_limit)


def pro_curve(pixels: PixelScores) -> tuple[np.ndarray, np.ndarray]:
    """The corner points of the (FPR, PRO) curve, exact, from the highest threshold down.

    PRO changes only at defect-pixel scores; between two of them the curve runs flat (only
    normal pixels join). So for each distinct defect score t, from the highest down, two points
    fix the curve: the one just before t is reached (normals above t, PRO of the higher
    thresholds) and the one at t. The curve starts at (0, 0) and ends at (1, PRO of the lowest
    defect score) = (1, 1). Needs at least one defect and one normal pixel.

    Returns:
        (fpr, pro), float64 arrays of length 2 U + 2 for U distinct defect scores, both
        non-decreasing.
    """
    thresholds = np.unique(pixels.positives)[::-1]  # descending
    negatives, n_negative = pixels.negatives, pixels.n_negative
    normals_above = n_negative - np.searchsorted(negatives, thresholds, side="right")
    normals_at_or_above = n_negative - np.searchsorted(negatives, thresholds, side="left")

    overlap_before = np.concatenate([[0.0], np.cumsum(pixels.inverse_region_sizes)])
    start = np.searchsorted(pixels.positives, thresholds, side="left")
    overlap_sum = overlap_before[-1] - overlap_before[start]  # sum of region overlap fractions
    pro_at = np.minimum(overlap_sum / pixels.n_regions, 1.0)  # rounding may overshoot 1
    pro_before = np.concatenate([[0.0], pro_at[:-1]])

    corners = np.stack([normals_above, normals_at_or_above], axis=1)  # (U, 2)
    fpr = corners.ravel() / n_negative  # (U, 2) -> (2U,)
    pro = np.stack([pro_before, pro_at], axis=1).ravel()  # (U, 2) -> (2U,)
    return np.concatenate([[0.0], fpr, [1.0]]), np.concatenate([[0.0], pro, [pro_at[-1]]])


def _area_up_to(fpr: np.ndarray, pro: np.ndarray, limit: float) -> float:
    """Trapezoid area under a non-decreasing (fpr, pro) curve for fpr in [0, limit]."""
    inside = int(np.searchsorted(fpr, limit, side="right"))  # points with fpr <= limit
    x, y = fpr[:inside], pro[:inside]
    if inside < fpr.size:
        x0, x1, y0, y1 = fpr[inside - 1], fpr[inside], pro[inside - 1], pro[inside]
        y_limit = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
        x, y = np.append(x, limit), np.append(y, y_limit)
    return float(np.trapezoid(y, x))
