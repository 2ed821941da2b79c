"""Tests of FastFlow: flow log-determinants, training, prediction, the fitted-state round trip."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from tiled_pipeline.models import build_model, load_model
from tiled_pipeline.models.fastflow import Fastflow, FastflowConfig
from tiled_pipeline.models.fastflow.flow import AffineCouplingBlock, Flow2d

TILE = (32, 48)  # not square, so a swapped height and width shows


def tiny(**overrides: object) -> FastflowConfig:
    params = {
        "weights": "random",
        "tile_size": TILE,
        "flow_steps": 2,
        "epochs": 2,
        "batch_size": 4,
    }
    return FastflowConfig(**(params | overrides))


def tile_batches(n_batches: int = 2, size: int = 4, tile: tuple[int, int] = TILE) -> list:
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(size, 3, *tile, generator=generator) for _ in range(n_batches)]


def randomize(module: torch.nn.Module, seed: int) -> None:
    """Give every parameter a large random value so that clamping and the affine step bite."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(
                torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
            )


def numerical_log_det(flow: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """log|det| of the full Jacobian of ``flow`` at a single (1, C, h, w) input."""
    n = x.numel()
    matrix = jacobian(lambda v: flow(v)[0], x).reshape(n, n)  # (1,C,h,w,1,C,h,w) -> (n, n)
    sign, log_abs_det = torch.linalg.slogdet(matrix)
    assert sign != 0
    return log_abs_det


@pytest.mark.parametrize("kernel_size", [3, 1])
def test_coupling_block_log_det_matches_the_jacobian(kernel_size: int) -> None:
    block = AffineCouplingBlock(
        4, kernel_size, hidden_ratio=1.0, clamp=2.0, permutation=torch.tensor([2, 0, 3, 1])
    ).double()
    randomize(block, seed=1)
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    _, log_det = block(x)

    assert log_det.shape == (1,)
    assert log_det[0].item() == pytest.approx(numerical_log_det(block, x).item(), abs=1e-8)


def test_flow_log_det_matches_the_jacobian() -> None:
    flow = Flow2d(
        5, steps=3, hidden_ratio=1.0, clamp=2.0, conv3x3_only=False,
        generator=torch.Generator().manual_seed(0),
    ).double()  # fmt: skip
    randomize(flow, seed=3)
    x = torch.randn(1, 5, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))

    _, log_det = flow(x)

    assert log_det[0].item() == pytest.approx(numerical_log_det(flow, x).item(), abs=1e-8)


def test_coupling_clamps_the_log_scale() -> None:
    block = AffineCouplingBlock(2, 1, 1.0, clamp=0.5, permutation=torch.tensor([0, 1]))
    with torch.no_grad():
        block.subnet[-1].bias.fill_(1e4)  # a huge raw log-scale

    _, log_det = block(torch.ones(1, 2, 1, 1))

    assert 0 < log_det.item() < 0.5


def test_flow_alternates_kernel_sizes() -> None:
    flow = Flow2d(4, 4, 1.0, 2.0, conv3x3_only=False, generator=torch.Generator())
    only3 = Flow2d(4, 4, 1.0, 2.0, conv3x3_only=True, generator=torch.Generator())

    assert [b.subnet[0].kernel_size[0] for b in flow.blocks] == [3, 1, 3, 1]
    assert [b.subnet[0].kernel_size[0] for b in only3.blocks] == [3, 3, 3, 3]


def test_fastflow_loss_decreases_on_tiny_data() -> None:
    model = Fastflow(tiny(epochs=4))

    report = model.fit(tile_batches())

    assert len(report.losses) == 4
    assert report.losses[-1] < report.losses[0]
    assert report.n_images == 8


def test_fastflow_fit_then_predict_gives_tile_maps() -> None:
    model = Fastflow(tiny())
    model.fit(tile_batches())

    prediction = model.predict(tile_batches(1, size=3)[0])

    assert prediction.anomaly_maps.shape == (3, *TILE)
    assert prediction.scores.shape == (3,)
    assert torch.isfinite(prediction.scores).all()
    assert ((prediction.anomaly_maps <= 0) & (prediction.anomaly_maps > -1)).all()
    assert torch.equal(prediction.scores, prediction.anomaly_maps.flatten(1).amax(dim=1))


def test_fastflow_checkpoint_round_trip_reproduces_predictions() -> None:
    model = build_model("fastflow", {"weights": "random", "tile_size": list(TILE), "epochs": 1})
    model.fit(tile_batches())
    images = tile_batches(1)[0]

    restored = load_model(model.checkpoint())

    assert isinstance(restored, Fastflow)
    first, second = model.predict(images), restored.predict(images)
    assert torch.equal(first.anomaly_maps, second.anomaly_maps)
    assert torch.equal(first.scores, second.scores)


def test_fastflow_same_seed_gives_the_same_weights() -> None:
    states = []
    for seed in (0, 0, 1):
        model = Fastflow(tiny(seed=seed))
        model.fit(tile_batches())
        states.append(model.state_dict())

    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


def test_fastflow_early_stopping_keeps_the_best_held_out_loss() -> None:
    model = Fastflow(tiny(epochs=3, batch_size=2, val_fraction=0.5, early_stopping_patience=1))
    batches = tile_batches(4, size=2)

    report = model.fit(batches)

    # Batches 1 and 3 are held out; the restored weights reproduce the best held-out loss.
    with torch.no_grad():
        held_out = torch.stack([model.loss(batches[1]), model.loss(batches[3])]).mean()
    assert report.n_images == 4
    assert report.extra["n_val_images"] == 4
    assert 1 <= report.extra["epochs_run"] <= 3
    assert held_out.item() == pytest.approx(report.extra["best_val_loss"], rel=1e-5)


def test_fastflow_rejects_a_tile_size_below_the_backbone_stride() -> None:
    with pytest.raises(
        ValueError, match=r"tile_size=\(8, 8\) is smaller than the largest stride 16"
    ):
        Fastflow(tiny(tile_size=(8, 8)))


def test_fastflow_fit_rejects_tiles_of_another_size() -> None:
    model = Fastflow(tiny())

    with pytest.raises(ValueError, match=r"built for tile_size=\(32, 48\).*got tiles of 64x64"):
        model.fit(tile_batches(tile=(64, 64)))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"flow_steps": 0}, "flow_steps must be >= 1"),
        ({"tile_size": (0, 32)}, "tile_size must be"),
        ({"clamp": 0.0}, "hidden_ratio and clamp must be > 0"),
        ({"val_fraction": 1.5}, "val_fraction must be in"),
    ],
)
def test_fastflow_config_rejects_bad_values(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny(**overrides)
