"""Which images the normalization and threshold statistics are fitted on.

- ``test``: the test set itself, as the reference implementation does, so numbers compare with
  the paper; the statistics see the labels they are evaluated on (optimistic F1).
- ``heldout_test``: a seeded, stratified share of the test set fits the statistics; metrics are
  computed on the rest only.
- ``heldout_normal``: a seeded share of the normal training images is held out from model fitting
  and fits the statistics; metrics use the whole test set. With no anomalous images there, the
  thresholds fall back to the highest held-out score (see ``thresholds``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

StatsSource = Literal["test", "heldout_test", "heldout_normal"]


@dataclass(frozen=True)
class StatsSplit:
    """Index arrays (int64, ascending) of one statistics split.

    Attributes:
        source: the statistics source the split was made for.
        fit_indices: images the statistics are fitted on; into the test set for ``test`` and
            ``heldout_test``, into the training set for ``heldout_normal``.
        eval_indices: test images the metrics are computed on.
        train_indices: training images the models are fitted on.
    """

    source: StatsSource
    fit_indices: np.ndarray
    eval_indices: np.ndarray
    train_indices: np.ndarray


def split_for_stats(
    source: StatsSource,
    n_test: int,
    n_train: int,
    *,
    fraction: float = 0.2,
    seed: int = 0,
    strata: np.ndarray | None = None,
) -> StatsSplit:
    """Split test or training images for the statistics.

    Args:
        source: ``test``, ``heldout_test`` or ``heldout_normal``.
        n_test: number of test images.
        n_train: number of (normal) training images.
        fraction: share held out, in (0, 1). ``heldout_test`` holds out ``round(fraction * k)``
            of each stratum of k images, at least 1 and at most k - 1 (a stratum of one image
            stays in the evaluation); ``heldout_normal`` likewise over the training images.
        seed: seed of the random choice; equal seeds give equal splits.
        strata: (n_test,) groups kept in proportion by ``heldout_test``, e.g. defect types;
            default one group.

    Raises:
        ValueError: on an unknown source, no test image, a fraction outside (0, 1), strata of
            the wrong length, or fewer than 2 training images for ``heldout_normal``.
    """
    if source not in get_args(StatsSource):
        raise ValueError(f"source must be one of {get_args(StatsSource)}, got {source!r}")
    if n_test < 1 or n_train < 0:
        raise ValueError(f"need n_test >= 1 and n_train >= 0, got {n_test} and {n_train}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    test, train = np.arange(n_test), np.arange(n_train)
    rng = np.random.default_rng(seed)
    if source == "test":
        return StatsSplit(source, test, test, train)
    if source == "heldout_test":
        groups = np.zeros(n_test, dtype=int) if strata is None else np.asarray(strata)
        if groups.shape != (n_test,):
            raise ValueError(f"strata must have shape ({n_test},), got {groups.shape}")
        held = np.concatenate(
            [_hold_out(np.flatnonzero(groups == g), fraction, rng) for g in np.unique(groups)]
        )
        return StatsSplit(source, np.sort(held), np.setdiff1d(test, held), train)
    if n_train < 2:
        raise ValueError(f"heldout_normal needs at least 2 training images, got n_train={n_train}")
    held = _hold_out(train, fraction, rng)
    return StatsSplit(source, np.sort(held), test, np.setdiff1d(train, held))


def _hold_out(indices: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A random ``round(fraction * k)`` of k indices, clamped to [1, k - 1] (none when k < 2)."""
    k = indices.size
    n_held = min(max(round(fraction * k), 1), k - 1) if k >= 2 else 0
    return rng.choice(indices, size=n_held, replace=False).astype(np.int64)
