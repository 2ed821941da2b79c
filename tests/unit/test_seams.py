"""Tests of the seam band and seam smoothing of merged maps."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tiled_pipeline.seams import seam_band, smooth_seams
from tiled_pipeline.tiling import TilePlan, make_plan

SETTINGS = settings(max_examples=50, deadline=None)


@st.composite
def plans(draw: st.DrawFn) -> TilePlan:
    """Random valid plans in either mode, with sizes that mostly do not divide evenly."""
    th, tw = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    H, W = draw(st.integers(th, 40)), draw(st.integers(tw, 40))
    stride = (draw(st.integers(1, th)), draw(st.integers(1, tw)))
    return make_plan((H, W), (th, tw), stride, draw(st.sampled_from(["pad", "resize"])))


def _rows(mask: torch.Tensor) -> list[int]:
    """Indices of the rows that are in the band along the whole width."""
    return mask.all(dim=1).nonzero().flatten().tolist()


def test_seam_band_without_overlap_lies_on_tile_boundaries() -> None:
    band = seam_band(make_plan(512, 256), band=0.1)  # half width 12.8 px about line 256
    assert band.shape == (512, 512)
    assert _rows(band) == list(range(243, 269))
    assert torch.equal(band, band.T)


def test_seam_band_with_overlap_surrounds_every_inner_tile_edge() -> None:
    band = seam_band(make_plan(512, 256, 128), band=0.1)  # edges at 128, 256 and 384
    expected = [*range(115, 141), *range(243, 269), *range(371, 397)]
    assert _rows(band) == expected


def test_seam_band_skips_edges_on_the_border_or_in_the_padding() -> None:
    # an 11-pixel image: grid 3x3 covers 12, edges at 4 and 8 are seams, 12 is in the padding
    band = seam_band(make_plan(11, 4), band=1.0)  # half width 2 px
    assert _rows(band) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert _rows(seam_band(make_plan(12, 4), band=1.0)) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert _rows(seam_band(make_plan(11, 4), band=0.1)) == [3, 4, 7, 8]


def test_seam_band_scales_edges_back_in_resize_mode() -> None:
    # edges 4 and 8 of the 12-pixel covered size land at 3.33 and 6.67 of the 10-pixel image
    band = seam_band(make_plan(10, 4, mode="resize"), band=0.1)
    assert _rows(band) == [3, 6]


def test_seam_band_is_empty_for_a_single_tile_or_zero_band() -> None:
    assert not seam_band(make_plan(64, 64)).any()
    assert not seam_band(make_plan(64, 16, 8), band=0.0).any()
    assert seam_band(make_plan(64, 16, 8), band=0.01).any()


def test_seam_band_rejects_bad_band() -> None:
    with pytest.raises(ValueError, match=r"band must be a fraction of the tile size.*got 1.5"):
        seam_band(make_plan(64, 16), band=1.5)
    with pytest.raises(ValueError, match=r"band must be .* got -0.1"):
        seam_band(make_plan(64, 16), band=-0.1)
    with pytest.raises(TypeError, match=r"band must be a float"):
        seam_band(make_plan(64, 16), band="wide")


@SETTINGS
@given(
    plan=plans(),
    band=st.floats(0.0, 1.0),
    sigma=st.floats(0.0, 4.0),
    seed=st.integers(0, 2**16),
)
def test_smooth_seams_changes_only_pixels_in_the_band(
    plan: TilePlan, band: float, sigma: float, seed: int
) -> None:
    maps = torch.rand(2, *plan.image_size, generator=torch.Generator().manual_seed(seed))
    smoothed = smooth_seams(maps, plan, band=band, sigma=sigma)
    outside = ~seam_band(plan, band)
    assert smoothed.shape == maps.shape
    assert torch.equal(smoothed[:, outside], maps[:, outside])


def test_smooth_seams_softens_a_step_edge_on_the_seam() -> None:
    plan = make_plan(64, 32)
    maps = torch.zeros(1, 1, 64, 64)
    maps[..., 32:] = 1.0  # a step exactly on the vertical seam
    smoothed = smooth_seams(maps, plan, band=0.25, sigma=2.0)
    assert 0.0 < smoothed[0, 0, 10, 31] < 0.5 < smoothed[0, 0, 10, 32] < 1.0
    # the bands are rows and columns 28..35; column 27 would blur, but lies outside
    assert torch.equal(smoothed[..., :28, :28], maps[..., :28, :28])


def test_smooth_seams_keeps_a_constant_map() -> None:
    maps = torch.full((2, 48, 48), 0.7)
    smoothed = smooth_seams(maps, make_plan(48, 16, 8), band=0.5, sigma=3.0)
    torch.testing.assert_close(smoothed, maps)


def test_smooth_seams_returns_maps_unchanged_for_zero_band_or_sigma() -> None:
    plan = make_plan(32, 16)
    maps = torch.rand(2, 1, 32, 32)
    assert torch.equal(smooth_seams(maps, plan, band=0.0), maps)
    assert torch.equal(smooth_seams(maps, plan, sigma=0.0), maps)
    assert torch.equal(smooth_seams(maps, make_plan(32, 32)), maps)


def test_smooth_seams_treats_both_map_shapes_alike() -> None:
    plan = make_plan((24, 40), (8, 16), (4, 8))
    maps = torch.rand(3, 24, 40, dtype=torch.float64)
    flat = smooth_seams(maps, plan, band=0.3)
    channel = smooth_seams(maps[:, None], plan, band=0.3)
    assert flat.dtype == torch.float64 and channel.shape == (3, 1, 24, 40)
    assert torch.equal(channel[:, 0], flat)
    assert not torch.equal(flat, maps)


def test_smooth_seams_handles_tiny_images() -> None:
    # sigma 2 asks for a radius of 8 pixels; the kernel shrinks to what reflection allows
    plan = make_plan((3, 40), (2, 8))
    maps = torch.rand(1, 3, 40)
    assert smooth_seams(maps, plan, band=0.5, sigma=2.0).shape == (1, 3, 40)


def test_smooth_seams_works_in_half_precision() -> None:
    plan = make_plan(32, 16)
    maps = torch.zeros(1, 32, 32, dtype=torch.float16)
    maps[:, :, 16:] = 1
    smoothed = smooth_seams(maps, plan, band=0.25)
    assert smoothed.dtype == torch.float16
    assert 0 < smoothed[0, 5, 15].item() < 1


def test_smooth_seams_rejects_bad_maps_and_sigma() -> None:
    plan = make_plan(32, 16)
    with pytest.raises(ValueError, match=r"maps must have shape \(B, 32, 32\) or \(B, 1, 32, 32\)"):
        smooth_seams(torch.rand(1, 3, 32, 32), plan)
    with pytest.raises(ValueError, match=r"got \(1, 30, 32\)"):
        smooth_seams(torch.rand(1, 30, 32), plan)
    with pytest.raises(TypeError, match=r"maps must be floating point, got torch.int64"):
        smooth_seams(torch.zeros(1, 32, 32, dtype=torch.int64), plan)
    with pytest.raises(ValueError, match=r"sigma must be a Gaussian standard deviation"):
        smooth_seams(torch.rand(1, 32, 32), plan, sigma=-1.0)
    with pytest.raises(ValueError, match=r"sigma must be .* got inf"):
        smooth_seams(torch.rand(1, 32, 32), plan, sigma=float("inf"))
