"""PaDiM on tiny generated tiles with a random-weight resnet18."""

from __future__ import annotations

import pytest
import torch

from tiled_pipeline.models import build_model, load_model
from tiled_pipeline.models.padim import Padim, PadimConfig, RunningGaussian, mahalanobis

TILE = 64  # side of the tiles that conftest generates
TINY = {"weights": "random", "layers": (1, 2), "n_features": 40}


@pytest.fixture
def fitted(train_batches: list[torch.Tensor]) -> Padim:
    model = build_model("padim", TINY)
    model.fit(train_batches)
    return model


def test_padim_defaults_are_the_papers() -> None:
    config = PadimConfig()
    assert (config.backbone, config.layers, config.n_features) == ("resnet18", (1, 2, 3), 100)
    assert (config.regularization, config.blur_sigma) == (0.01, 4.0)


def test_padim_fit_predict_returns_tile_maps_and_finite_scores(
    train_batches: list[torch.Tensor], test_tiles: tuple[torch.Tensor, torch.Tensor]
) -> None:
    model = build_model("padim", TINY)
    report = model.fit(train_batches)
    prediction = model.predict(test_tiles[0])
    assert report.n_images == 10
    assert prediction.anomaly_maps.shape == (3, TILE, TILE)
    assert prediction.scores.shape == (3,)
    assert torch.isfinite(prediction.anomaly_maps).all() and torch.isfinite(prediction.scores).all()
    # Layer 1 of resnet18 has stride 4: one Gaussian per position of the 16x16 grid.
    assert model.mean.shape == (16 * 16, 40) and model.inv_covariance.shape == (16 * 16, 40, 40)


def test_padim_ranks_planted_defect_above_normal(
    fitted: Padim, test_tiles: tuple[torch.Tensor, torch.Tensor], defect_region
) -> None:
    normal, defective = test_tiles
    normal_prediction, defect_prediction = fitted.predict(normal), fitted.predict(defective)
    assert defect_prediction.scores.min() > normal_prediction.scores.max()
    maps = defect_prediction.anomaly_maps
    inside = maps[:, defect_region[0], defect_region[1]].flatten(1).mean(dim=1)
    assert (inside > normal_prediction.anomaly_maps.flatten(1).max(dim=1).values).all()


def test_padim_checkpoint_round_trip_predicts_identically(
    fitted: Padim, test_tiles: tuple[torch.Tensor, torch.Tensor], tmp_path
) -> None:
    path = tmp_path / "padim.pt"
    torch.save(fitted.checkpoint(), path)
    restored = load_model(torch.load(path, weights_only=True))
    before, after = fitted.predict(test_tiles[1]), restored.predict(test_tiles[1])
    assert torch.equal(before.anomaly_maps, after.anomaly_maps)
    assert torch.equal(before.scores, after.scores)
    assert torch.equal(restored.index, fitted.index)


def test_running_gaussian_matches_torch_cov() -> None:
    generator = torch.Generator().manual_seed(0)
    samples = torch.randn(13, 5, 4, generator=generator) * 3 + 1  # (B, N, D)
    gaussian = RunningGaussian(5, 4, torch.device("cpu"))
    for start, stop in [(0, 6), (6, 7), (7, 13)]:  # uneven batches
        gaussian.update(samples[start:stop])
    for position in range(5):
        x = samples[:, position].double()  # (B, D)
        torch.testing.assert_close(gaussian.covariance()[position], torch.cov(x.T))
        torch.testing.assert_close(gaussian.mean()[position], x.mean(dim=0))


def test_padim_fit_matches_torch_cov_of_its_embeddings(
    fitted: Padim, train_batches: list[torch.Tensor]
) -> None:
    with torch.no_grad():
        embedding = fitted.embed(torch.cat(train_batches))  # (n, d, h, w)
    x = embedding.flatten(2).permute(2, 1, 0).double()  # (n, d, h, w) -> (h*w, d, n)
    for position in (0, 37, 255):
        covariance = torch.cov(x[position]) + 0.01 * torch.eye(40, dtype=torch.float64)
        expected = torch.linalg.inv(covariance).float()
        torch.testing.assert_close(fitted.inv_covariance[position], expected, rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(fitted.mean[position], x[position].mean(dim=1).float())


def test_running_gaussian_covariance_needs_two_samples() -> None:
    gaussian = RunningGaussian(2, 3, torch.device("cpu"))
    gaussian.update(torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="at least 2 samples, got 1"):
        gaussian.covariance()


def test_mahalanobis_matches_direct_formula() -> None:
    generator = torch.Generator().manual_seed(1)
    x, mean = torch.randn(2, 3, 4, generator=generator), torch.randn(3, 4, generator=generator)
    factors = torch.randn(3, 4, 4, generator=generator)
    inverse = factors @ factors.transpose(1, 2) + torch.eye(4)  # symmetric positive definite
    distances = mahalanobis(x, mean, inverse)
    for b in range(2):
        for n in range(3):
            delta = x[b, n] - mean[n]
            expected = torch.sqrt(delta @ inverse[n] @ delta)
            torch.testing.assert_close(distances[b, n], expected)


def test_padim_index_is_seeded_and_within_features() -> None:
    first, second = build_model("padim", TINY), build_model("padim", TINY)
    other_seed = build_model("padim", {**TINY, "seed": 1})
    assert torch.equal(first.index, second.index)
    assert not torch.equal(first.index, other_seed.index)
    assert first.index.unique().numel() == 40 and first.index.max() < 64 + 128


def test_padim_rejects_too_many_features() -> None:
    with pytest.raises(ValueError, match=r"n_features=500 exceeds the 192 feature dimensions"):
        build_model("padim", {**TINY, "n_features": 500})


def test_padim_predict_before_fit_raises(test_tiles: tuple[torch.Tensor, torch.Tensor]) -> None:
    with pytest.raises(ValueError, match=r"PaDiM.predict was called before fit; call fit"):
        build_model("padim", TINY).predict(test_tiles[0])


@pytest.mark.parametrize(
    "images",
    [
        torch.zeros(2, 3, 64, 64, dtype=torch.uint8),
        torch.zeros(2, 1, 64, 64),
        torch.zeros(3, 64, 64),
    ],
)
def test_padim_rejects_malformed_images(fitted: Padim, images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"expects images of shape \(B, 3, H, W\) as floats"):
        fitted.predict(images)


def test_padim_fit_needs_two_tiles(texture) -> None:
    with pytest.raises(ValueError, match="at least 2 training tiles to fit, got 1"):
        build_model("padim", TINY).fit([texture(1, seed=0)])


def test_padim_predict_rejects_other_tile_size(fitted: Padim, texture) -> None:
    with pytest.raises(ValueError, match="fitted on tiles giving 16x16 features, got 8x8"):
        fitted.predict(texture(2, seed=0, size=32))


def test_padim_config_rejects_non_positive_regularization() -> None:
    with pytest.raises(ValueError, match="regularization must be > 0"):
        build_model("padim", {**TINY, "regularization": 0.0})


def test_running_gaussian_chunked_inverse_matches_the_direct_one() -> None:
    x = torch.randn(12, 7, 5, dtype=torch.float64)  # (B, N, D)
    gaussian = RunningGaussian(7, 5, torch.device("cpu"))
    gaussian.update(x)
    direct = torch.linalg.inv(gaussian.covariance() + 0.01 * torch.eye(5, dtype=torch.float64))
    chunked = gaussian.inverse_covariance(0.01, chunk=3)
    assert chunked.dtype == torch.float32
    torch.testing.assert_close(chunked, direct.float(), rtol=1e-5, atol=1e-5)
