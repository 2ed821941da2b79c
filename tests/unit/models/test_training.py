"""Tests of the shared training loop: re-batching, held-out split, early stopping, seeding."""

from __future__ import annotations

import contextlib
import itertools
import logging

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tiled_pipeline.models.base import check_images
from tiled_pipeline.models.training import (
    _autocast_and_scaler,
    check_schedule,
    is_held_out,
    rebatch,
    train,
)

CPU = torch.device("cpu")


class Scalar(nn.Module):
    """One parameter w; the loss pulls w towards the mean pixel of a batch."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def loss(self, images: torch.Tensor) -> torch.Tensor:
        return (self.w - images.mean()) ** 2


def tiles(n: int, value: float | None = None, size: int = 4) -> torch.Tensor:
    if value is None:
        return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(n))
    return torch.full((n, 3, size, size), value)


def run(model: Scalar, batches: list[torch.Tensor], lr: float = 0.1, **kwargs):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    settings = {"epochs": 10, "batch_size": 2, "seed": 0, "device": CPU} | kwargs
    return train(model, model.loss, batches, optimizer, **settings)


def test_rebatch_ignores_the_stream_chunking() -> None:
    images = tiles(11)
    one_chunk = list(rebatch([images], batch_size=4))
    many_chunks = list(rebatch(list(images.split([1, 5, 2, 3])), batch_size=4))

    assert [len(b) for b in one_chunk] == [4, 4, 3]
    assert len(one_chunk) == len(many_chunks)
    assert all(torch.equal(a, b) for a, b in zip(one_chunk, many_chunks, strict=True))
    assert torch.equal(torch.cat(one_chunk), images)


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=8),
    batch_size=st.integers(min_value=1, max_value=9),
)
def test_rebatch_keeps_every_image_in_order_for_any_chunking(
    chunks: list[int], batch_size: int
) -> None:
    images = tiles(sum(chunks), size=1)

    batches = list(rebatch(images.split(chunks), batch_size))

    sizes = [len(b) for b in batches]
    assert torch.equal(torch.cat(batches), images)
    assert sizes == [len(b) for b in rebatch([images], batch_size)]
    assert all(size == batch_size for size in sizes[:-1])
    assert sizes[-1] <= batch_size + 1
    assert sizes[-1] > 1 or batch_size == 1 or len(images) == 1


def test_rebatch_merges_a_lone_trailing_image() -> None:
    images = tiles(9)

    batches = list(rebatch(images.split(2), batch_size=4))

    assert [len(b) for b in batches] == [4, 5]
    assert torch.equal(torch.cat(batches), images)


def test_rebatch_rejects_tiles_of_changing_size() -> None:
    with pytest.raises(ValueError, match="must share a size"):
        list(rebatch([tiles(2, size=4), tiles(2, size=8)], batch_size=2))


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        (torch.rand(3, 4, 4), ValueError, r"shape \(B, 3, H, W\)"),
        (torch.rand(1, 1, 4, 4), ValueError, r"got shape \(1, 1, 4, 4\)"),
        (torch.zeros(1, 3, 4, 4, dtype=torch.uint8), ValueError, "as floats in"),
        ([[0.5]], TypeError, "torch.Tensor"),
    ],
)
def test_check_images_rejects_bad_batches(images: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        check_images(images)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.3])
def test_is_held_out_spreads_the_fraction_evenly(fraction: float) -> None:
    held = [i for i in range(200) if is_held_out(i, fraction)]

    assert 0 not in held
    assert len(held) == int(200 * fraction)
    gaps = {b - a for a, b in itertools.pairwise(held)}
    assert max(gaps) - min(gaps) <= 1


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 1, 0.0, 1), "epochs must be >= 1"),
        ((1, 0, 0.0, 1), "batch_size must be >= 1"),
        ((1, 1, 1.0, 1), r"val_fraction must be in \[0, 1\)"),
        ((1, 1, 0.0, 0), "early_stopping_patience must be >= 1"),
    ],
)
def test_check_schedule_names_the_bad_field(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_schedule(*args)


def test_train_without_validation_runs_every_epoch() -> None:
    model = Scalar()

    result = run(model, [tiles(2, 1.0), tiles(2, 1.0)], epochs=5)

    assert len(result.losses) == 5
    assert result.losses == sorted(result.losses, reverse=True)
    assert result.val_losses == []
    assert result.n_images == 4
    assert result.best_epoch == 4
    assert not model.training


def test_train_early_stopping_stops_and_restores_the_best_epoch() -> None:
    # Batch 0 (ones) trains, batch 1 (0.3) is held out. Plain SGD on (w - 1)^2 with lr 0.1 moves
    # w = 0 -> 0.2 -> 0.36 -> 0.488 -> 0.59; the held-out loss (w - 0.3)^2 is lowest at 0.36
    # (epoch 1), then rises for two epochs, which exhausts a patience of 2.
    model = Scalar()

    result = run(model, [tiles(2, 1.0), tiles(2, 0.3)], val_fraction=0.5, patience=2)

    assert len(result.losses) == 4
    assert result.best_epoch == 1
    assert result.n_images == 2
    assert result.n_val_images == 2
    assert model.w.item() == pytest.approx(0.36)
    assert result.val_losses[1] == pytest.approx((0.36 - 0.3) ** 2)
    report = result.report(seconds=1.0)
    assert report.extra["best_epoch"] == 1
    assert report.extra["best_val_loss"] == pytest.approx((0.36 - 0.3) ** 2)


def test_train_warns_when_nothing_is_held_out(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        result = run(Scalar(), [tiles(2, 1.0)], val_fraction=0.2, epochs=2)

    assert "early stopping is off" in caplog.text
    assert len(result.losses) == 2


def test_train_rejects_an_empty_stream() -> None:
    with pytest.raises(ValueError, match="yielded no images"):
        run(Scalar(), [])


def test_train_rejects_a_non_finite_loss() -> None:
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        run(Scalar(), [tiles(2, float("nan"))])


def test_train_leaves_the_global_generator_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)

    run(Scalar(), [tiles(2, 1.0)], epochs=2, seed=7)

    assert torch.equal(torch.rand(3), expected)


@pytest.mark.filterwarnings("ignore:.*CUDA is not available:UserWarning")
@pytest.mark.parametrize(("bf16", "scaled"), [(True, False), (False, True)])
def test_autocast_picks_bf16_or_scaled_fp16_on_cuda(
    monkeypatch: pytest.MonkeyPatch, bf16: bool, scaled: bool
) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)

    autocast, scaler = _autocast_and_scaler(torch.device("cuda", 0))

    assert autocast().fast_dtype == (torch.bfloat16 if bf16 else torch.float16)
    assert (scaler is not None) == scaled


def test_autocast_is_off_on_cpu() -> None:
    autocast, scaler = _autocast_and_scaler(CPU)

    assert isinstance(autocast(), contextlib.nullcontext)
    assert scaler is None
