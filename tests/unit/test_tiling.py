"""Tests of tile plans, tile / tile_at / untile and coverage."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tiled_pipeline.tiling import (
    TilePlan,
    coverage,
    make_plan,
    shared_key,
    tile,
    tile_at,
    untile,
)

SETTINGS = settings(max_examples=50, deadline=None)


@st.composite
def plans(draw: st.DrawFn, mode: str = "pad", min_image: int = 1) -> TilePlan:
    """Random valid plans with sizes that mostly do not divide evenly."""
    th, tw = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    H = draw(st.integers(max(th, min_image), 28))
    W = draw(st.integers(max(tw, min_image), 28))
    stride = (draw(st.integers(1, th)), draw(st.integers(1, tw)))
    return make_plan((H, W), (th, tw), stride, mode)


@st.composite
def batches(draw: st.DrawFn) -> tuple[int, int, int]:
    """(B, C, seed) of a random test batch."""
    return draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(0, 2**16))


def _random_images(plan: TilePlan, batch: tuple[int, int, int]) -> torch.Tensor:
    B, C, seed = batch
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(B, C, *plan.image_size, generator=generator)


def _smooth_images(plan: TilePlan) -> torch.Tensor:
    """(1, 1, H, W) one period of a sine along each axis, values in [0, 1]."""
    H, W = plan.image_size
    y = torch.arange(H, dtype=torch.float32)[:, None] / H  # (H, 1)
    x = torch.arange(W, dtype=torch.float32)[None, :] / W  # (1, W)
    image = 0.5 + 0.25 * torch.sin(2 * math.pi * y + 1) + 0.25 * torch.cos(2 * math.pi * x)
    return image[None, None]  # (H, W) -> (1, 1, H, W)


@SETTINGS
@given(plan=plans(), batch=batches())
def test_untile_round_trip_pad_is_exact(plan: TilePlan, batch: tuple[int, int, int]) -> None:
    images = _random_images(plan, batch)
    tiles = tile(images, plan)
    assert tiles.shape == (batch[0], plan.n_tiles, batch[1], *plan.tile_size)
    assert torch.equal(untile(tiles, plan), images)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_untile_round_trip_pad_is_exact_for_float_dtypes(dtype: torch.dtype) -> None:
    plan = make_plan((11, 13), (4, 5), (1, 2))
    images = torch.rand(2, 3, 11, 13).to(dtype)
    merged = untile(tile(images, plan), plan)
    assert merged.dtype == dtype
    assert torch.equal(merged, images)


@SETTINGS
@given(plan=plans(mode="resize", min_image=16))
def test_untile_round_trip_resize_is_close_for_smooth_images(plan: TilePlan) -> None:
    images = _smooth_images(plan)
    merged = untile(tile(images, plan), plan)
    assert merged.shape == images.shape
    torch.testing.assert_close(merged, images, atol=0.03, rtol=0)


@SETTINGS
@given(
    tile_size=st.integers(1, 8),
    data=st.data(),
    n=st.integers(1, 4),
    batch=batches(),
)
def test_untile_round_trip_resize_is_exact_when_sizes_divide(
    tile_size: int, data: st.DataObject, n: int, batch: tuple[int, int, int]
) -> None:
    stride = data.draw(st.integers(1, tile_size))
    size = (n - 1) * stride + tile_size
    plan = make_plan(size, tile_size, stride, "resize")
    images = _random_images(plan, batch)
    assert torch.equal(untile(tile(images, plan), plan), images)


@SETTINGS
@given(plan=plans(), value=st.floats(-1e3, 1e3, allow_nan=False, width=32))
def test_untile_constant_map_gives_the_constant(plan: TilePlan, value: float) -> None:
    tiles = torch.full((2, plan.n_tiles, 1, *plan.tile_size), value)
    assert torch.equal(untile(tiles, plan), torch.full((2, 1, *plan.image_size), value))


@SETTINGS
@given(plan=plans(mode="resize"), value=st.floats(-10, 10, allow_nan=False, width=32))
def test_untile_constant_map_gives_the_constant_in_resize_mode(
    plan: TilePlan, value: float
) -> None:
    tiles = torch.full((1, plan.n_tiles, 2, *plan.tile_size), value)
    expected = torch.full((1, 2, *plan.image_size), value)
    torch.testing.assert_close(untile(tiles, plan), expected)


def test_untile_averages_where_two_tiles_disagree() -> None:
    # two 4x4 tiles side by side at x = 0 and x = 2 overlap in columns 2 and 3
    plan = make_plan((4, 6), 4, (4, 2))
    tiles = torch.stack([torch.full((1, 4, 4), 1.0), torch.full((1, 4, 4), 3.0)])[None]
    expected = torch.tensor([1.0, 1.0, 2.0, 2.0, 3.0, 3.0]).expand(1, 1, 4, 6)
    assert torch.equal(untile(tiles, plan), expected)


def test_untile_needs_no_earlier_tile_call() -> None:
    # a plan built afresh (even spelled differently) merges tiles cut with another plan object
    images = torch.rand(1, 2, 9, 7)
    tiles = tile(images, make_plan((9, 7), 3, 2))
    fresh = TilePlan(image_size=[9, 7], tile_size=(3, 3), stride=2)
    assert torch.equal(untile(tiles, fresh), images)


@SETTINGS
@given(plan=plans(), batch=batches())
def test_tile_at_equals_the_tile_of_tile(plan: TilePlan, batch: tuple[int, int, int]) -> None:
    images = _random_images(plan, batch)
    tiles = tile(images, plan)
    for t in range(plan.n_tiles):
        assert torch.equal(tile_at(images, plan, t), tiles[:, t])


@SETTINGS
@given(plan=plans(mode="resize"))
def test_tile_at_equals_the_tile_of_tile_in_resize_mode(plan: TilePlan) -> None:
    images = torch.rand(1, 2, *plan.image_size)
    tiles = tile(images, plan)
    for t in range(plan.n_tiles):
        assert torch.equal(tile_at(images, plan, t), tiles[:, t])


def test_tile_orders_tiles_row_major_from_the_offsets() -> None:
    plan = make_plan((8, 12), (4, 6), (2, 3))
    images = torch.arange(8 * 12, dtype=torch.float32).reshape(1, 1, 8, 12)  # value = y * 12 + x
    tiles = tile(images, plan)
    assert plan.grid == (3, 3)
    assert plan.offsets[plan.index("g3x3r1c2")] == (2, 6)
    for t, (y, x) in enumerate(plan.offsets):
        assert tiles[0, t, 0, 0, 0].item() == y * 12 + x


def test_tile_pads_by_reflection_at_the_bottom_and_right() -> None:
    plan = make_plan(5, 4)  # grid 2x2 covers 8x8, so 3 rows and columns are padded
    images = torch.arange(25, dtype=torch.float32).reshape(1, 1, 5, 5)
    last = tile(images, plan)[0, plan.index("g2x2r1c1"), 0]  # rows and columns 4..7
    # row 5 mirrors row 3 and row 6 mirrors row 2 about the last row (4); likewise columns
    assert last[:, 0].tolist() == [24.0, 19.0, 14.0, 9.0]
    assert last[0].tolist() == [24.0, 23.0, 22.0, 21.0]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.bool, torch.int64])
def test_tile_cuts_integer_and_bool_images_in_pad_mode(dtype: torch.dtype) -> None:
    plan = make_plan((7, 9), (4, 4), (3, 3))
    masks = (torch.rand(2, 1, 7, 9) > 0.5).to(dtype)
    tiles = tile(masks, plan)
    assert tiles.dtype == dtype
    assert torch.equal(untile(tiles.double(), plan).to(dtype), masks)


@SETTINGS
@given(plan=plans())
def test_coverage_is_at_least_one_and_counts_the_tiles(plan: TilePlan) -> None:
    counted = torch.zeros(plan.covered_size, dtype=torch.int64)
    th, tw = plan.tile_size
    for y, x in plan.offsets:
        counted[y : y + th, x : x + tw] += 1
    H, W = plan.image_size
    assert torch.equal(coverage(plan), counted[:H, :W])
    assert coverage(plan).min() >= 1


@SETTINGS
@given(plan=plans(mode="resize"))
def test_coverage_is_at_least_one_in_resize_mode(plan: TilePlan) -> None:
    counts = coverage(plan)
    assert counts.shape == plan.image_size
    assert counts.min() >= 1


@SETTINGS
@given(plan=plans())
def test_plan_offsets_cover_the_image(plan: TilePlan) -> None:
    (H, W), (Hc, Wc), (th, tw) = plan.image_size, plan.covered_size, plan.tile_size
    assert len(plan.offsets) == plan.n_tiles == plan.grid[0] * plan.grid[1]
    assert H <= Hc < H + plan.stride[0] and W <= Wc < W + plan.stride[1]
    covered = torch.zeros(Hc, Wc, dtype=torch.bool)
    for y, x in plan.offsets:
        assert y < H and x < W  # every tile holds at least one image pixel
        covered[y : y + th, x : x + tw] = True
    assert covered.all()
    assert max(y for y, _ in plan.offsets) + th == Hc


@SETTINGS
@given(plan=plans())
def test_plan_position_inverts_key(plan: TilePlan) -> None:
    Gh, Gw = plan.grid
    assert len(set(plan.keys)) == plan.n_tiles
    for r in range(Gh):
        for c in range(Gw):
            assert plan.position(plan.key(r, c)) == (r, c)
            assert plan.keys[plan.index(plan.key(r, c))] == plan.key(r, c)


def test_plan_keys_differ_between_2x2_and_3x3_grids() -> None:
    ens4, ens9 = make_plan(512, 256, 256), make_plan(512, 256, 128)
    assert not set(ens4.keys) & set(ens9.keys)
    assert ens9.key(0, 1) == "g3x3r0c1"
    assert shared_key(ens4) != shared_key(ens9)
    assert shared_key(ens9) not in ens9.keys


def test_plan_paper_setups_give_3x3_and_2x2_grids() -> None:
    ens9 = make_plan(512, 256, 128)
    ens4 = make_plan(512, 256, 256)
    assert (ens9.grid, ens9.n_tiles, ens9.covered_size) == ((3, 3), 9, (512, 512))
    assert (ens4.grid, ens4.n_tiles, ens4.covered_size) == ((2, 2), 4, (512, 512))
    assert ens4.stride == make_plan(512, 256).stride  # stride None means no overlap
    assert ens9 == TilePlan((512, 512), (256, 256), (128, 128))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"stride": 300}, ValueError, r"stride=\(300, 300\) exceeds tile_size.*gaps"),
        ({"tile_size": 600}, ValueError, r"tile_size=\(600, 600\) exceeds image_size"),
        ({"tile_size": (0, 256)}, ValueError, r"tile_size must be at least 1.*\(0, 256\)"),
        ({"image_size": -4}, ValueError, r"image_size must be at least 1.*\(-4, -4\)"),
        ({"stride": 0}, ValueError, r"stride must be at least 1"),
        ({"mode": "crop"}, ValueError, r"mode must be one of \('pad', 'resize'\), got 'crop'"),
        ({"tile_size": 2.5}, TypeError, r"tile_size must be an int or a \(height, width\)"),
        ({"image_size": (512, 512, 3)}, TypeError, r"image_size must be an int or a"),
    ],
)
def test_make_plan_rejects_bad_sizes(kwargs: dict, error: type[Exception], match: str) -> None:
    arguments = {"image_size": 512, "tile_size": 256, "stride": 128} | kwargs
    with pytest.raises(error, match=match):
        make_plan(**arguments)


def test_plan_key_and_position_reject_foreign_keys() -> None:
    plan = make_plan(512, 256, 128)
    with pytest.raises(ValueError, match=r"belongs to a 2x2 grid, not this plan's 3x3"):
        plan.position("g2x2r0c1")
    with pytest.raises(ValueError, match=r"'tile_0' is not a tile key"):
        plan.position("tile_0")
    with pytest.raises(ValueError, match=r"outside the 3x3 grid"):
        plan.position("g3x3r3c0")
    with pytest.raises(ValueError, match=r"\(row, col\)=\(0, -1\) is outside"):
        plan.key(0, -1)


def test_tile_rejects_images_that_do_not_fit_the_plan() -> None:
    plan = make_plan(8, 4, 2)
    with pytest.raises(ValueError, match=r"images are \(8, 9\) \(H, W\) but the plan is for"):
        tile(torch.rand(1, 1, 8, 9), plan)
    with pytest.raises(ValueError, match=r"images must have shape \(B, C, H, W\), got \(8, 8\)"):
        tile(torch.rand(8, 8), plan)
    with pytest.raises(TypeError, match=r"images must be a torch.Tensor, got ndarray"):
        tile(torch.rand(1, 1, 8, 8).numpy(), plan)
    with pytest.raises(TypeError, match=r"mode 'resize' .* floating-point images"):
        tile(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), make_plan(8, 3, mode="resize"))
    with pytest.raises(ValueError, match=r"index must be an int in \[0, 9\), got 9"):
        tile_at(torch.rand(1, 1, 8, 8), plan, 9)


def test_untile_rejects_tiles_that_do_not_fit_the_plan() -> None:
    plan = make_plan(8, 4, 2)  # 9 tiles of 4x4
    with pytest.raises(ValueError, match=r"\(T, th, tw\)=\(9, 4, 4\).*got \(1, 4, 1, 4, 4\)"):
        untile(torch.rand(1, 4, 1, 4, 4), plan)
    with pytest.raises(TypeError, match=r"tiles must be floating point.*torch.uint8"):
        untile(torch.zeros(1, 9, 1, 4, 4, dtype=torch.uint8), plan)
