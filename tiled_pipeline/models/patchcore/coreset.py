"""Greedy k-center coreset selection for PatchCore's memory bank, exact or memory-bounded.

PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", CVPR 2022,
Algorithm 1) keeps a subset M_C of the patch features M that covers M: each step adds the patch
farthest from everything chosen so far. Distances are taken on a Johnson-Lindenstrauss random
projection psi of the features to ``projection_dim`` dimensions, which preserves them
approximately while making every step cheap. Each step updates one (N,) vector of minimum
distances; no (N, N) matrix is ever formed.
"""

from __future__ import annotations

import logging
import math

import torch
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


def random_projection(dim_in: int, dim_out: int, generator: torch.Generator) -> torch.Tensor:
    """A (dim_in, dim_out) Gaussian JL matrix with N(0, 1 / dim_out) entries (on the CPU).

    ``x @ matrix`` keeps squared distances in expectation.
    """
    matrix = torch.randn(dim_in, dim_out, generator=generator)
    return matrix / math.sqrt(dim_out)


def greedy_coreset(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``k`` of the (N, D) ``points`` chosen by greedy k-center selection.

    1. Start from one random point c_0 (drawn with ``generator``).
    2. Keep d_n = min over the chosen c of ||p_n - c||^2 for every point n.
    3. Choose c = argmax_n d_n, lower d by the distances to c, repeat until k are chosen.

    Args:
        points: (N, D) float points, usually projected features.
        k: number to choose, >= 1; ``k >= N`` returns all N indices in order.
        generator: CPU generator for the start point.

    Returns:
        (k,) long indices on ``points.device``, distinct unless fewer than k points are distinct.
    """
    N = points.shape[0]
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k >= N:
        return torch.arange(N, device=points.device)
    squared_norms = points.pow(2).sum(dim=1)  # (N, D) -> (N,)
    chosen = torch.empty(k, dtype=torch.long, device=points.device)
    # Indices stay as one-element device tensors so that the loop never waits for the device.
    current = torch.randint(N, (1,), generator=generator).to(points.device)
    chosen[0:1] = current
    min_distances = _squared_distances_to(points, squared_norms, current)
    for step in tqdm(range(1, k), desc="coreset", unit="patch", leave=False, mininterval=1.0):
        current = min_distances.argmax().view(1)
        chosen[step : step + 1] = current
        min_distances = torch.minimum(
            min_distances, _squared_distances_to(points, squared_norms, current)
        )
        # Rounding in the expanded form can leave a chosen point slightly above 0.
        min_distances.index_fill_(0, current, 0.0)
    return chosen


def _squared_distances_to(
    points: torch.Tensor, squared_norms: torch.Tensor, index: torch.Tensor
) -> torch.Tensor:
    """(N,) squared distances of the (N, D) points to the point at the one-element ``index``."""
    center = points.index_select(0, index)  # (N, D) -> (1, D)
    products = points @ center.squeeze(0)  # (N, D) @ (D,) -> (N,)
    return squared_norms - 2 * products + squared_norms.index_select(0, index)


class CoresetBank:
    """Collects patch features while fitting and reduces them to a coreset, in bounded memory.

    With N the number of patches added and K = ceil(``ratio`` * N):

    - N <= ``max_patches``: every patch is held and ``finish`` runs the one-shot greedy coreset
      on all of them. This is exactly PatchCore's selection.
    - N > ``max_patches``: whenever adding a batch would pass the cap, the held set (the coreset
      so far plus the raw patches since) is reduced by the greedy coreset to
      ceil(ratio * patches seen), at most ``max_patches // 2`` so that each reduction frees room.
      This merge-and-reduce scheme approximates the one-shot coreset: later points are chosen
      against the earlier coreset rather than against all earlier patches. The final bank then
      holds min(K, ``max_patches // 2``) patches.

    Held memory is at most ``max_patches`` patches plus one batch, and their projections.

    Args:
        ratio: coreset fraction in (0, 1].
        max_patches: the most patch features held at once, >= 2.
        projection: (D, d) JL matrix applied before the distance computations, or None to use
            the features themselves.
        generator: CPU generator for the start points of the greedy selections.
    """

    def __init__(
        self,
        ratio: float,
        max_patches: int,
        projection: torch.Tensor | None,
        generator: torch.Generator,
    ) -> None:
        self.ratio = ratio
        self.max_patches = max_patches
        self.projection = projection
        self.generator = generator
        self.n_seen = 0
        self.n_reductions = 0
        self._features: list[torch.Tensor] = []
        self._projected: list[torch.Tensor] = []

    @property
    def n_held(self) -> int:
        """Patches held now."""
        return sum(piece.shape[0] for piece in self._features)

    def add(self, features: torch.Tensor) -> None:
        """Add (N, D) patch features, first reducing the held set if they would pass the cap."""
        if self._features and self.n_held + features.shape[0] > self.max_patches:
            self._reduce(min(self._target(), self.max_patches // 2))
            self.n_reductions += 1
        self._features.append(features)
        self._projected.append(features if self.projection is None else features @ self.projection)
        self.n_seen += features.shape[0]

    def finish(self) -> torch.Tensor:
        """The (K, D) memory bank M_C; see the class docstring for K."""
        if self.n_seen == 0:
            raise ValueError("no patch features were added; fit on at least one tile")
        target = self._target()
        if self.n_reductions:
            target = min(target, self.max_patches // 2)
        self._reduce(target)
        return torch.cat(self._features)

    def _target(self) -> int:
        return max(1, math.ceil(self.ratio * self.n_seen))

    def _reduce(self, k: int) -> None:
        """Replace the held patches by the k chosen by greedy_coreset on their projections."""
        if self.n_held <= k:
            return
        projected = torch.cat(self._projected)  # pieces of (n_i, d) -> (sum n_i, d)
        chosen = greedy_coreset(projected, k, self.generator).sort().values
        del projected
        self._features = [_gather(self._features, chosen)]
        self._projected = [
            self._features[0] if self.projection is None else _gather(self._projected, chosen)
        ]
        logger.debug("coreset kept %d patches of %d seen", k, self.n_seen)


def _gather(pieces: list[torch.Tensor], sorted_index: torch.Tensor) -> torch.Tensor:
    """Rows ``sorted_index`` of the concatenation of ``pieces``, without concatenating them."""
    rows, start = [], 0
    for piece in pieces:
        stop = start + piece.shape[0]
        inside = sorted_index[(sorted_index >= start) & (sorted_index < stop)]
        rows.append(piece.index_select(0, inside - start))
        start = stop
    return torch.cat(rows)
