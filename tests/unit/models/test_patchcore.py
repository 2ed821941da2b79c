"""PatchCore and its coreset on tiny generated data with a random-weight resnet18."""

from __future__ import annotations

import math

import pytest
import torch

from tiled_pipeline.models import build_model, load_model
from tiled_pipeline.models.patchcore import (
    CoresetBank,
    Patchcore,
    PatchcoreConfig,
    greedy_coreset,
    nearest_neighbors,
    reweighted_scores,
)
from tiled_pipeline.models.patchcore import model as patchcore_model

TILE = 64  # side of the tiles that conftest generates
TINY = {"weights": "random", "backbone": "resnet18", "layers": (2, 3)}
PATCHES_PER_TILE = 8 * 8  # resnet18 layer2 has stride 8


@pytest.fixture
def fitted(train_batches: list[torch.Tensor]) -> Patchcore:
    model = build_model("patchcore", TINY)
    model.fit(train_batches)
    return model


def clustered_points(n_clusters: int, per_cluster: int, seed: int) -> torch.Tensor:
    """(n_clusters * per_cluster, 8) points in tight clusters of very different sizes."""
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn(n_clusters, 8, generator=generator) * 10
    sizes = torch.linspace(1, 40, n_clusters).long() * per_cluster // 10
    points = [
        center + 0.1 * torch.randn(int(size), 8, generator=generator)
        for center, size in zip(centers, sizes, strict=True)
    ]
    return torch.cat(points)


def covering_radius(points: torch.Tensor, chosen: torch.Tensor) -> float:
    """Largest distance of any point to its nearest chosen point."""
    return torch.cdist(points, points[chosen]).min(dim=1).values.max().item()


def test_patchcore_defaults_are_the_papers() -> None:
    config = PatchcoreConfig()
    assert (config.backbone, config.layers) == ("wide_resnet50_2", (2, 3))
    assert (config.coreset_ratio, config.n_neighbors, config.blur_sigma) == (0.1, 9, 4.0)


def test_patchcore_fit_predict_returns_tile_maps_and_finite_scores(
    train_batches: list[torch.Tensor], test_tiles: tuple[torch.Tensor, torch.Tensor]
) -> None:
    model = build_model("patchcore", TINY)
    report = model.fit(train_batches)
    prediction = model.predict(test_tiles[0])
    assert report.n_images == 10
    assert model.memory_bank.shape == (math.ceil(0.1 * 10 * PATCHES_PER_TILE), 128 + 256)
    assert prediction.anomaly_maps.shape == (3, TILE, TILE)
    assert prediction.scores.shape == (3,)
    assert torch.isfinite(prediction.anomaly_maps).all() and torch.isfinite(prediction.scores).all()


def test_patchcore_ranks_planted_defect_above_normal(
    fitted: Patchcore, test_tiles: tuple[torch.Tensor, torch.Tensor], defect_region
) -> None:
    normal, defective = test_tiles
    normal_prediction, defect_prediction = fitted.predict(normal), fitted.predict(defective)
    assert defect_prediction.scores.min() > normal_prediction.scores.max()
    inside = defect_prediction.anomaly_maps[:, defect_region[0], defect_region[1]]
    normal_max = normal_prediction.anomaly_maps.flatten(1).max(dim=1).values
    assert (inside.flatten(1).mean(dim=1) > normal_max).all()


def test_patchcore_checkpoint_round_trip_predicts_identically(
    fitted: Patchcore, test_tiles: tuple[torch.Tensor, torch.Tensor], tmp_path
) -> None:
    path = tmp_path / "patchcore.pt"
    torch.save(fitted.checkpoint(), path)
    restored = load_model(torch.load(path, weights_only=True))
    before, after = fitted.predict(test_tiles[1]), restored.predict(test_tiles[1])
    assert torch.equal(restored.memory_bank, fitted.memory_bank)
    assert torch.equal(before.anomaly_maps, after.anomaly_maps)
    assert torch.equal(before.scores, after.scores)


def test_greedy_coreset_covers_better_than_random() -> None:
    points = clustered_points(n_clusters=12, per_cluster=20, seed=0)
    chosen = greedy_coreset(points, 12, torch.Generator().manual_seed(0))
    greedy_radius = covering_radius(points, chosen)
    for seed in range(5):
        random_pick = torch.randperm(len(points), generator=torch.Generator().manual_seed(seed))
        assert greedy_radius <= covering_radius(points, random_pick[:12])
    # One point per cluster: every point lies within its own tight cluster's spread.
    assert greedy_radius < 1.0


def test_greedy_coreset_returns_requested_count_of_distinct_indices() -> None:
    points = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    chosen = greedy_coreset(points, 37, torch.Generator().manual_seed(0))
    assert chosen.shape == (37,) and chosen.unique().numel() == 37
    everything = greedy_coreset(points, 500, torch.Generator())
    assert torch.equal(everything, torch.arange(300))


def test_greedy_coreset_matches_farthest_point_reference() -> None:
    points = torch.randn(50, 3, generator=torch.Generator().manual_seed(2))
    chosen = greedy_coreset(points, 10, torch.Generator().manual_seed(5)).tolist()
    reference = [chosen[0]]  # same start point, then farthest-point steps by plain loops
    while len(reference) < 10:
        distances = torch.cdist(points, points[reference]).min(dim=1).values
        reference.append(int(distances.argmax()))
    assert chosen == reference


def test_coreset_bank_is_exact_below_the_cap() -> None:
    features = torch.randn(400, 32, generator=torch.Generator().manual_seed(0))
    projection = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    bank = CoresetBank(0.1, 400, projection, torch.Generator().manual_seed(3))
    for piece in features.split(64):
        bank.add(piece)
    one_shot = greedy_coreset(features @ projection, 40, torch.Generator().manual_seed(3))
    assert bank.n_reductions == 0
    assert torch.equal(bank.finish(), features[one_shot.sort().values])


def test_coreset_bank_above_the_cap_stays_bounded() -> None:
    features = torch.randn(2000, 16, generator=torch.Generator().manual_seed(0))
    bank = CoresetBank(0.25, 300, None, torch.Generator().manual_seed(0))
    for piece in features.split(50):
        bank.add(piece)
        assert bank.n_held <= 300
    result = bank.finish()
    assert bank.n_reductions > 0
    assert result.shape == (150, 16)  # min(ceil(0.25 * 2000), 300 // 2)
    # Every kept row is one of the input rows.
    assert (result[:, None] == features[None]).all(dim=2).any(dim=1).all()


def test_patchcore_fit_with_small_cap_bounds_the_bank(train_batches: list[torch.Tensor]) -> None:
    model = build_model("patchcore", {**TINY, "coreset_ratio": 0.5, "max_bank_patches": 200})
    report = model.fit(train_batches)
    assert model.memory_bank.shape[0] == 100  # ceil(0.5 * 640) = 320 > 200 // 2
    assert report.extra["seen_patches"] == 10 * PATCHES_PER_TILE


def test_nearest_neighbors_matches_brute_force_across_blocks(monkeypatch) -> None:
    generator = torch.Generator().manual_seed(0)
    query, bank = torch.randn(37, 5, generator=generator), torch.randn(53, 5, generator=generator)
    monkeypatch.setattr(patchcore_model, "_BLOCK_ELEMENTS", 16)  # 16 bank rows x 1 query row
    distances, indices = nearest_neighbors(query, bank, 3)
    expected, expected_indices = torch.cdist(query, bank).topk(3, dim=1, largest=False)
    torch.testing.assert_close(distances, expected)
    assert torch.equal(indices, expected_indices)


def direct_score(test: torch.Tensor, bank: torch.Tensor, n_neighbors: int) -> float:
    """Eq. 7 for one tile's (N, D) patches by plain loops over the (K, D) bank."""

    def distance(a: torch.Tensor, b: torch.Tensor) -> float:
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(a.tolist(), b.tolist(), strict=True)))

    nearest = [min(range(len(bank)), key=lambda j, p=p: distance(p, bank[j])) for p in test]
    patch_scores = [distance(p, bank[j]) for p, j in zip(test, nearest, strict=True)]
    worst = max(range(len(test)), key=lambda i: patch_scores[i])
    s_star, m_star = patch_scores[worst], bank[nearest[worst]]
    support = sorted(range(len(bank)), key=lambda j: distance(m_star, bank[j]))[:n_neighbors]
    denominator = sum(math.exp(distance(test[worst], bank[j])) for j in support)
    return (1 - math.exp(s_star) / denominator) * s_star


def test_reweighted_scores_match_the_formula() -> None:
    generator = torch.Generator().manual_seed(0)
    bank = torch.randn(20, 3, generator=generator)
    patches = torch.randn(2, 6, 3, generator=generator) * 1.5  # (B, N, D)
    distances, nearest = nearest_neighbors(patches.reshape(12, 3), bank, 1)  # (B*N, 1)
    scores = reweighted_scores(patches, distances.view(2, 6), nearest.view(2, 6), bank, 4)
    expected = torch.tensor([direct_score(patches[b], bank, 4) for b in range(2)])
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-5)
    assert (scores < distances.view(2, 6).max(dim=1).values).all()


def test_reweighted_scores_with_one_neighbor_is_the_max_distance() -> None:
    bank = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    patch_scores = torch.tensor([[0.5, 2.0, 1.0]])
    scores = reweighted_scores(
        torch.zeros(1, 3, 2), patch_scores, torch.zeros(1, 3).long(), bank, 1
    )
    assert scores.tolist() == [2.0]


def test_patchcore_predict_before_fit_raises(test_tiles: tuple[torch.Tensor, torch.Tensor]) -> None:
    with pytest.raises(ValueError, match=r"PatchCore.predict was called before fit; call fit"):
        build_model("patchcore", TINY).predict(test_tiles[0])


def test_patchcore_rejects_malformed_images(fitted: Patchcore) -> None:
    with pytest.raises(ValueError, match=r"expects images of shape \(B, 3, H, W\) as floats"):
        fitted.predict(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(TypeError, match=r"expects images as a torch\.Tensor, got list"):
        fitted.predict([torch.zeros(3, 64, 64)])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"coreset_ratio": 0.0}, r"coreset_ratio must be in \(0, 1\], got 0.0"),
        ({"n_neighbors": 0}, "n_neighbors must be >= 1, got 0"),
        ({"max_bank_patches": 1}, "max_bank_patches must be >= 2, got 1"),
    ],
)
def test_patchcore_config_rejects_bad_values(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PatchcoreConfig(**{**TINY, **params})
