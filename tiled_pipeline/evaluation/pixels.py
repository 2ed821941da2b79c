"""Pixel scores prepared once for every pixel-level metric: sorted scores and defect regions.

Pixel AUROC, AUPRO, pixel F1 and the adaptive pixel threshold all reduce to counting the normal
and the defect pixels whose score is at or above a threshold. :class:`PixelScores` sorts the
normal pixels' scores and the defect pixels' scores once (float32, exact, no subsampling), so any
such count is one binary search. Memory: about 4 bytes per pixel for the sorted scores plus 12
bytes per defect pixel, on top of the caller's maps.

Defect regions are the connected components of each image's ground-truth mask
(``scipy.ndimage.label``), 8-connected by default (diagonal neighbours join a region) or
4-connected. Defects that touch form one region; regions never span two images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from tiled_pipeline.evaluation._validation import check_maps, check_masks

Connectivity = Literal[4, 8]

_STRUCTURES: dict[int, np.ndarray] = {
    4: ndimage.generate_binary_structure(2, 1),
    8: ndimage.generate_binary_structure(2, 2),
}


@dataclass(frozen=True)
class PixelScores:
    """The pixel scores of a set of images, split by ground truth and sorted.

    P_neg and P_pos count the normal and the defect pixels of all images together.

    Attributes:
        negatives: (P_neg,) float32 scores of the normal pixels, ascending.
        positives: (P_pos,) float32 scores of the defect pixels, ascending.
        inverse_region_sizes: (P_pos,) float64, aligned with ``positives``: 1 / the pixel count
            of the defect region each defect pixel belongs to. Summed over the pixels at or
            above a threshold, it gives the sum over regions of their overlap fraction.
        n_regions: connected defect regions over all images.
    """

    negatives: np.ndarray
    positives: np.ndarray
    inverse_region_sizes: np.ndarray
    n_regions: int

    @classmethod
    def from_maps(
        cls,
        maps: np.ndarray,
        masks: np.ndarray,
        connectivity: Connectivity = 8,
        indices: np.ndarray | None = None,
    ) -> PixelScores:
        """Split, label and sort the pixels of ``maps`` by ``masks``.

        Args:
            maps: (N, H, W) float anomaly maps (any float dtype; scores are compared as float32).
            masks: (N, H, W) bool (or 0/1) ground truth, True = defect pixel.
            connectivity: 8 or 4, the neighbourhood that joins defect pixels into one region.
            indices: images to use (default all), so a subset needs no copy of the maps.

        Raises:
            ValueError: on shapes that differ, non-finite maps or an unknown connectivity.
        """
        if connectivity not in _STRUCTURES:
            raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
        maps = check_maps(maps)
        masks = check_masks(masks, maps.shape)
        chosen = np.arange(maps.shape[0]) if indices is None else np.asarray(indices)
        n_defect = sum(np.count_nonzero(masks[i]) for i in chosen)
        negatives = np.empty(chosen.size * maps[0].size - n_defect, dtype=np.float32)
        positives, inverse_sizes = [], []
        n_regions = filled = 0
        for i in chosen:
            scores = maps[i].astype(np.float32, copy=False)
            normal = scores[~masks[i]]
            negatives[filled : filled + normal.size] = normal
            filled += normal.size
            positives.append(scores[masks[i]])
            weights, n_found = _inverse_region_sizes(masks[i], connectivity)
            inverse_sizes.append(weights)
            n_regions += n_found
        negatives.sort()
        positives_flat = np.concatenate([np.zeros(0, np.float32), *positives])
        order = np.argsort(positives_flat)
        return cls(
            negatives=negatives,
            positives=positives_flat[order],
            inverse_region_sizes=np.concatenate([np.zeros(0), *inverse_sizes])[order],
            n_regions=n_regions,
        )

    @property
    def n_negative(self) -> int:
        """Number of normal pixels."""
        return int(self.negatives.size)

    @property
    def n_positive(self) -> int:
        """Number of defect pixels."""
        return int(self.positives.size)

    def counts_at_or_above(self, thresholds: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Normal and defect pixels scoring at or above each threshold.

        Args:
            thresholds: a float or an array of any shape, compared as float32.

        Returns:
            (false positives, true positives), int64 arrays of the thresholds' shape.
        """
        values = np.asarray(thresholds, dtype=np.float32)
        n_fp = self.n_negative - np.searchsorted(self.negatives, values, side="left")
        n_tp = self.n_positive - np.searchsorted(self.positives, values, side="left")
        return n_fp.astype(np.int64, copy=False), n_tp.astype(np.int64, copy=False)


def _inverse_region_sizes(mask: np.ndarray, connectivity: Connectivity) -> tuple[np.ndarray, int]:
    """For each defect pixel of one (H, W) mask, in row-major order: 1 / its region's size.

    Returns:
        (weights (P_pos_i,) float64, number of regions in the mask).
    """
    regions, n_found = ndimage.label(mask, structure=_STRUCTURES[connectivity])
    region_of_pixel = regions[mask]  # (P_pos_i,) region ids 1..n_found
    sizes = np.bincount(region_of_pixel, minlength=n_found + 1)
    return 1.0 / sizes[region_of_pixel], int(n_found)
