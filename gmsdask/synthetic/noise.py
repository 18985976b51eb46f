"""Deterministic procedural randomness in world coordinates: integer hashing and value noise.

Everything is a pure function of (seed, coordinates), so any grid that samples the same ground gets the same
values, whatever its extent, resolution or the strip being computed.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["hash_uniform", "value_noise", "fbm", "derive_seed"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / float(1 << 53)


def _splitmix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def derive_seed(seed: int, *labels: str | int) -> int:
    """A new 63-bit seed from ``seed`` and labels (e.g. a layer name), stable across runs and platforms."""
    state = np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
    for label in labels:
        value = label if isinstance(label, int) else \
            int.from_bytes(hashlib.blake2b(str(label).encode(), digest_size=8).digest(), "little")
        with np.errstate(over="ignore"):
            state = _splitmix(np.asarray(state ^ np.uint64(value & 0xFFFFFFFFFFFFFFFF)) + _GOLDEN)
    return int(state) & 0x7FFFFFFFFFFFFFFF


def hash_uniform(seed: int, *keys: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) float64 per element of the broadcast integer ``keys``."""
    with np.errstate(over="ignore"):
        state = np.uint64(seed) * _GOLDEN + _GOLDEN
        for key in keys:
            key = np.asarray(key, dtype=np.int64).view(np.uint64)
            state = _splitmix(state ^ (key * _GOLDEN + np.uint64(0x632BE59BD9B4E019)))
    return (state >> np.uint64(11)).astype(np.float64) * _TO_UNIT


def _axis_weights(coord: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray, int]:
    scaled = coord / spacing
    cell = np.floor(scaled)
    frac = scaled - cell
    smooth = (frac * frac * (3.0 - 2.0 * frac)).astype(np.float32)
    start = int(cell.min())
    return (cell - start).astype(np.intp), smooth, start


def value_noise(x: np.ndarray, y: np.ndarray, spacing: float, seed: int) -> np.ndarray:
    """Smooth value noise in [0, 1] on the grid of column coordinates ``x`` and row coordinates ``y``.

    Random values on a square lattice of ``spacing`` metres, interpolated with a smoothstep. The grid is
    axis-aligned, so the interpolation separates into one pass along x on the (small) lattice and one along
    y: a few operations per pixel whatever the spacing.
    """
    ix, sx, x_start = _axis_weights(np.asarray(x, dtype=float), spacing)
    iy, sy, y_start = _axis_weights(np.asarray(y, dtype=float), spacing)
    lattice_i = np.arange(x_start, x_start + int(ix.max()) + 2)
    lattice_j = np.arange(y_start, y_start + int(iy.max()) + 2)
    lattice = hash_uniform(seed, lattice_j[:, None], lattice_i[None, :]).astype(np.float32)
    along_x = lattice[:, ix] + (lattice[:, ix + 1] - lattice[:, ix]) * sx
    step_y = along_x[1:] - along_x[:-1]
    # out = along_x[iy] + step_y[iy] * sy, in place: the full-size temporaries dominate the cost
    out = step_y[iy]
    out *= sy[:, None]
    out += along_x[iy]
    return out


def fbm(x: np.ndarray, y: np.ndarray, spacings: tuple[float, ...], weights: tuple[float, ...], seed: int,
        pixel_m: float = 0.0) -> np.ndarray:
    """Weighted sum of value-noise octaves, normalized to mean 0.5 and range ~[0, 1].

    Octaves much finer than ``pixel_m`` are damped as the pixel's area average would damp them.
    """
    total = np.zeros((len(y), len(x)), dtype=np.float32)
    weight_sum = float(sum(weights))
    for octave, (spacing, weight) in enumerate(zip(spacings, weights)):
        # the area average over a pixel attenuates a wave of length ~2 spacings like a box filter does
        damping = max(0.0, float(np.sinc(pixel_m / (2.0 * spacing))))
        if damping == 0.0:
            continue
        noise = value_noise(x, y, spacing, derive_seed(seed, octave))
        noise -= np.float32(0.5)
        noise *= np.float32(weight * damping / weight_sum)
        total += noise
    total += np.float32(0.5)
    return total
