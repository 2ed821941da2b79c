"""Procedural textures for the synthetic dataset: woven fabric, wood grain, granular stone.

Each texture is a (H, W) float32 intensity map in about [0, 1], built from whole-array numpy
operations. Their finest structure has a period of 2-8 pixels at 1024x1024, so shrinking an image
to 256x256 aliases it, as with real high-resolution inspection images. Lengths are given for a
1024-pixel image and scaled with ``scale = size / 1024``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Texture = Callable[[np.random.Generator, int], np.ndarray]

# Dark and light RGB colour (0-255) of each texture; intensity 0 maps to dark, 1 to light.
PALETTES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "weave": ((70, 62, 48), (226, 214, 186)),
    "wood": ((92, 54, 28), (214, 162, 108)),
    "speckle": ((58, 60, 66), (212, 210, 204)),
}


def weave(rng: np.random.Generator, size: int) -> np.ndarray:
    """Plain-weave fabric: threads of period ~8 px alternately over and under, fine fibres.

    The threads run along the pixel axes, so the thread profiles are computed once per row and
    per column (1-D) and only combined at full size.
    """
    period = max(3.0, 8.0 * size / 1024) * rng.uniform(0.95, 1.05)
    u = np.arange(size, dtype=np.float32) + np.float32(rng.uniform(0.0, period))  # (W,)
    v = np.arange(size, dtype=np.float32) + np.float32(rng.uniform(0.0, period))  # (H,)
    parity_u = np.floor(u / period).astype(np.int8) & 1
    parity_v = np.floor(v / period).astype(np.int8) & 1
    over = (parity_v[:, None] ^ parity_u[None, :]).astype(bool)  # (H,) x (W,) -> (H, W)
    weft = _thread(rng, v, period)[:, None] * _fibres(rng, u, period)[None, :]  # (H, W)
    warp = _thread(rng, u, period)[None, :] * _fibres(rng, v, period)[:, None]  # (H, W)
    intensity = smooth_noise(rng, size, cells=5)
    intensity *= 0.05  # +-5 % illumination
    intensity += 0.62
    intensity *= np.where(over, weft, warp)
    intensity += 0.18
    return _add_noise(rng, intensity, 0.035)


def wood(rng: np.random.Generator, size: int) -> np.ndarray:
    """Wood grain: warped growth rings ~24 px apart crossed by fine fibres 1-2 px wide."""
    ring_period = max(4.0, 24.0 * size / 1024) * rng.uniform(0.9, 1.1)
    across = smooth_noise(rng, size, cells=3, amplitude=0.04 * size)
    across += smooth_noise(rng, size, cells=9, amplitude=0.008 * size)
    across += np.arange(size, dtype=np.float32)[None, :]  # (H, W) + (1, W)
    rings = np.sin(across * np.float32(2 * np.pi / ring_period))
    rings *= 1.6 * 0.17  # a clipped sine: flat rings with sharp edges
    np.clip(rings, -0.17, 0.17, out=rings)
    fibres = rng.uniform(-0.12, 0.12, size=int(1.7 * size) + 1).astype(np.float32)
    fibres[1:] += fibres[:-1]  # neighbouring fibres share a pixel: 1-2 px wide
    index = (across * np.float32(1.7)).astype(np.int32)
    np.clip(index, 0, fibres.size - 1, out=index)
    intensity = smooth_noise(rng, size, cells=4, amplitude=0.06)
    intensity += 0.5
    intensity += rings
    intensity += fibres[index]
    return _add_noise(rng, intensity, 0.03)


def speckle(rng: np.random.Generator, size: int) -> np.ndarray:
    """Granular stone: grains of 1-2 px and of ~6 px, sparse crystals, soft mottling."""
    grain = rng.random((size + 1, size + 1), dtype=np.float32)
    intensity = grain[1:, 1:] + grain[:-1, :-1]  # (H+1, W+1) -> (H, W): 2x2 box, grains ~2 px
    intensity += grain[1:, :-1]
    intensity += grain[:-1, 1:]
    intensity -= 2.0
    intensity *= 0.16
    intensity += smooth_noise(rng, size, cells=6, amplitude=0.09)
    intensity += smooth_noise(rng, size, cells=max(2, size // 6), amplitude=0.08)  # ~6 px blobs
    intensity += smooth_noise(rng, size, cells=24, amplitude=0.04)
    intensity += 0.5
    flat = intensity.reshape(-1)  # (H, W) -> (H*W,), a view
    crystals = rng.integers(0, flat.size, size=int(0.012 * flat.size))
    flat[crystals] += np.where(np.arange(crystals.size) % 2 == 0, 0.25, -0.2).astype(np.float32)
    return intensity


TEXTURES: dict[str, Texture] = {"weave": weave, "wood": wood, "speckle": speckle}


def quantize(intensity: np.ndarray) -> np.ndarray:
    """Map a (H, W) intensity map, clipped to [0, 1], to (H, W) uint8 levels 0-255."""
    level = np.clip(intensity * np.float32(255.0) + np.float32(0.5), 0.0, 255.0)
    return level.astype(np.uint8)


def palette(category: str) -> np.ndarray:
    """(256, 3) uint8 RGB colour of each level of ``category``, from dark to light."""
    dark, light = (np.asarray(c, dtype=np.float32) for c in PALETTES[category])
    ramp = np.linspace(0.0, 1.0, 256, dtype=np.float32)[:, None]  # (256, 1)
    return (dark + (light - dark) * ramp + 0.5).astype(np.uint8)  # (256, 3)


def smooth_noise(
    rng: np.random.Generator, size: int, cells: int, amplitude: float = 1.0
) -> np.ndarray:
    """Low-frequency noise in [-amplitude, amplitude]: a random grid of knots, interpolated.

    Args:
        rng: Random generator (draws ``(cells + 1) ** 2`` numbers).
        size: Side of the square output in pixels.
        cells: Grid cells per side; the noise varies on a scale of ``size / cells`` pixels.
        amplitude: Largest absolute value.

    Returns:
        (size, size) float32. Interpolation uses a smoothstep kernel, so it has no visible kinks.
        It is done with gathers rather than a matrix product: a multi-threaded BLAS call is
        slower than this on a busy machine.
    """
    grid = rng.uniform(-amplitude, amplitude, size=(cells + 1, cells + 1)).astype(np.float32)
    left, frac = _knots(size, cells + 1)  # (size,), (size,)
    # Columns first on the small grid, then rows: gathering rows keeps the output C-ordered.
    cols = grid[:, left] * (1 - frac) + grid[:, left + 1] * frac  # (cells + 1, size)
    out = cols[left]  # (cells + 1, size) -> (size, size)
    out *= (1 - frac)[:, None]
    out += cols[left + 1] * frac[:, None]
    return out


def _knots(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """Left knot index and smoothstep weight of the right knot for n_out points over n_in knots."""
    position = np.linspace(0.0, n_in - 1.0, n_out, dtype=np.float32)
    left = np.minimum(position.astype(np.int64), n_in - 2)
    frac = position - left.astype(np.float32)
    return left, frac * frac * (3.0 - 2.0 * frac)


def _thread(rng: np.random.Generator, across: np.ndarray, period: float) -> np.ndarray:
    """Brightness across threads: 1 at a thread's centre, dark in the gaps between threads.

    Each thread is slightly lighter or darker than its neighbours: clutter that survives
    downscaling, as in real fabric.
    """
    index = np.floor(across / period).astype(np.int64)
    shade = rng.uniform(0.85, 1.15, size=int(index.max()) + 1).astype(np.float32)
    phase = across / period - index
    return np.sqrt(np.sin(np.pi * phase)) * shade[index]


def _fibres(rng: np.random.Generator, along: np.ndarray, period: float) -> np.ndarray:
    """Fine striation along a thread, period ``period / 3.2`` (2.5 px at 1024)."""
    return 0.85 + 0.15 * np.sin((2 * np.pi * 3.2 / period) * along + rng.uniform(0, 2 * np.pi))


def _add_noise(rng: np.random.Generator, intensity: np.ndarray, std: float) -> np.ndarray:
    """Add uniform per-pixel sensor noise of standard deviation ``std``, in place."""
    noise = rng.random(intensity.shape, dtype=np.float32)
    noise -= 0.5
    noise *= std * 12**0.5  # a uniform variable on [-0.5, 0.5] has std 1 / sqrt(12)
    intensity += noise
    return intensity
