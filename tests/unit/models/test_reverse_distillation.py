"""Tests of Reverse Distillation: architecture shapes, training, prediction, round trip."""

from __future__ import annotations

import pytest
import torch

from tiled_pipeline.models import build_model, load_model
from tiled_pipeline.models.reverse_distillation import (
    ReverseDistillation,
    ReverseDistillationConfig,
)
from tiled_pipeline.models.reverse_distillation.blocks import residual_spec

TILE = (32, 32)
WIDE_TILE = (32, 64)  # not square, so a swapped height and width shows


def tiny(**overrides: object) -> ReverseDistillationConfig:
    params = {"backbone": "resnet18", "weights": "random", "epochs": 2, "batch_size": 4}
    return ReverseDistillationConfig(**(params | overrides))


def tile_batches(n_batches: int = 2, size: int = 4, tile: tuple[int, int] = TILE) -> list:
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(size, 3, *tile, generator=generator) for _ in range(n_batches)]


@pytest.mark.parametrize(
    ("backbone", "spec"),
    [
        ("resnet18", ("basic", (2, 2, 2))),
        # the wide ResNet's bottleneck blocks are twice as wide inside as resnet50's (0.25)
        ("wide_resnet50_2", ("bottleneck", (3, 4, 6), 0.5)),
    ],
)
def test_decoder_outputs_match_the_encoder_shapes(backbone: str, spec: tuple) -> None:
    model = ReverseDistillation(tiny(backbone=backbone)).eval()

    with torch.no_grad():
        encoded, decoded = model._features(torch.rand(2, 3, 32, 32))

    found = residual_spec(model.extractor)
    assert (found.kind, found.depths, found.width_ratio)[: len(spec)] == spec
    assert [e.shape for e in encoded] == [d.shape for d in decoded]
    assert [e.shape[1] for e in encoded] == model.extractor.channels


def test_reverse_distillation_loss_decreases_on_tiny_data() -> None:
    model = ReverseDistillation(tiny(epochs=3))

    report = model.fit(tile_batches())

    assert len(report.losses) == 3
    assert report.losses[-1] < report.losses[0]
    assert report.n_images == 8


def test_reverse_distillation_fit_then_predict_gives_tile_maps() -> None:
    model = ReverseDistillation(tiny())
    model.fit(tile_batches(tile=WIDE_TILE))

    prediction = model.predict(tile_batches(1, size=3, tile=WIDE_TILE)[0])

    assert prediction.anomaly_maps.shape == (3, *WIDE_TILE)
    assert prediction.scores.shape == (3,)
    assert torch.isfinite(prediction.scores).all()
    assert ((prediction.anomaly_maps >= 0) & (prediction.anomaly_maps <= 6)).all()
    assert torch.equal(prediction.scores, prediction.anomaly_maps.flatten(1).amax(dim=1))


def test_reverse_distillation_blur_smooths_the_map() -> None:
    sharp = ReverseDistillation(tiny(blur_sigma=0.0))
    blurred = ReverseDistillation(tiny(blur_sigma=4.0))
    images = tile_batches(1, size=2)[0]

    sharp_maps = sharp.predict(images).anomaly_maps
    blurred_maps = blurred.predict(images).anomaly_maps

    def roughness(maps: torch.Tensor) -> torch.Tensor:
        return maps.diff(dim=2).abs().mean()

    assert roughness(blurred_maps) < roughness(sharp_maps)


def test_reverse_distillation_checkpoint_round_trip_reproduces_predictions() -> None:
    params = {"backbone": "resnet18", "weights": "random", "epochs": 1, "batch_size": 4}
    model = build_model("reverse_distillation", params)
    model.fit(tile_batches())
    images = tile_batches(1)[0]

    restored = load_model(model.checkpoint())

    assert isinstance(restored, ReverseDistillation)
    first, second = model.predict(images), restored.predict(images)
    assert torch.equal(first.anomaly_maps, second.anomaly_maps)
    assert torch.equal(first.scores, second.scores)


def test_reverse_distillation_same_seed_gives_the_same_weights() -> None:
    states = []
    for _ in range(2):
        model = ReverseDistillation(tiny())
        model.fit(tile_batches())
        states.append(model.state_dict())
    other_seed = ReverseDistillation(tiny(seed=1)).state_dict()
    same_seed = ReverseDistillation(tiny()).state_dict()

    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(same_seed[k], other_seed[k]) for k in same_seed)


@pytest.mark.parametrize("tile", [(16, 16), (48, 64)])
def test_reverse_distillation_fit_rejects_tiles_off_the_stride(tile: tuple[int, int]) -> None:
    model = ReverseDistillation(tiny())

    with pytest.raises(ValueError, match=rf"tiles of {tile[0]}x{tile[1]}.*multiples of 32"):
        model.fit(tile_batches(tile=tile))


def test_reverse_distillation_rejects_stages_that_skip_a_stride() -> None:
    with pytest.raises(ValueError, match=r"strides \(4, 8, 32\).*double the stride"):
        ReverseDistillation(tiny(layers=(1, 2, 4)))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"layers": (1, 2)}, "layers must name three"),
        ({"betas": (0.5, 1.0)}, r"betas must be two values in \[0, 1\)"),
        ({"blur_sigma": -1.0}, "blur_sigma must be >= 0"),
        ({"epochs": 0}, "epochs must be >= 1"),
    ],
)
def test_reverse_distillation_config_rejects_bad_values(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny(**overrides)
