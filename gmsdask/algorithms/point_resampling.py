"""Resampling of a raster at arbitrary per-pixel source positions (pure numpy): the kernel of a warp whose
coordinate mapping is not affine (a local co-registration field added to it).

GDAL's warper, used for affine mappings (:mod:`.warp`), cannot take a per-pixel displacement, and with an
approximating piecewise-affine mapping its results change in the last bit with the output window. scipy's
``map_coordinates`` has no area average, and its cubic spline prefilter runs over the whole array it is given, so
a block's result would depend on where blocks are cut. This module computes every output pixel from its own
source position only, with GDAL's kernels: nearest, bilinear, cubic (Keys, a = -0.5, GDAL's "cubic") and
area-weighted average (by fractional overlap of the output pixel's footprint, as GDAL's "average"). Bilinear and
cubic are the kernels at the source's scale: GDAL widens them when the output is coarser, where L2A averages
instead (:func:`gmsdask.geometry.choose_resampling`). Away from no data the results equal GDAL's to float
rounding (``tests/test_l2a_local_warp.py``); next to no-data pixels GDAL's cubic treats the gap differently.

Positions are source *pixel-edge* coordinates: pixel ``[r, c]`` covers ``[c, c+1) x [r, r+1)``, its centre is
``(c + 0.5, r + 0.5)``. Source pixels outside the array and NaN count as no data; a float result is NaN where its
nearest source pixel has no data, and otherwise the kernel's weights are renormalized over the valid pixels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KERNEL_REACH_PX", "resample_at"]

#: Source pixels a kernel reads beyond the one holding the position (average: plus the footprint's half size).
KERNEL_REACH_PX = {"nearest": 1, "bilinear": 2, "cubic": 3, "average": 2}


def _keys(t: np.ndarray) -> list[np.ndarray]:
    """Keys cubic convolution weights (a = -0.5) of the four taps at offsets -1, 0, 1, 2 for fraction ``t``."""
    a = -0.5
    def w(d: np.ndarray) -> np.ndarray:
        d = np.abs(d)
        return np.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                        np.where(d < 2, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a, 0.0))
    return [w(t + 1), w(t), w(1 - t), w(2 - t)]


class _Offset:
    """A window of a larger image addressed by the larger image's indices."""

    def __init__(self, window: np.ndarray, origin: tuple[int, int]):
        self.window, self.origin = window, origin
        self.dtype = window.dtype
        self.shape = (origin[0] + window.shape[0], origin[1] + window.shape[1])

    def take(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r, c = rows - self.origin[0], cols - self.origin[1]
        inside = (r >= 0) & (r < self.window.shape[0]) & (c >= 0) & (c < self.window.shape[1])
        return self.window[np.clip(r, 0, self.window.shape[0] - 1), np.clip(c, 0, self.window.shape[1] - 1)], inside


def _take(src: "np.ndarray | _Offset", rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(src, _Offset):
        return src.take(rows, cols)
    inside = (rows >= 0) & (rows < src.shape[0]) & (cols >= 0) & (cols < src.shape[1])
    return src[np.clip(rows, 0, src.shape[0] - 1), np.clip(cols, 0, src.shape[1] - 1)], inside


def _gather(src: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values at integer ``rows``/``cols`` of ``src`` (float64) and whether they are valid (inside, not NaN)."""
    values, inside = _take(src, rows, cols)
    values = values.astype(np.float64)
    valid = inside & np.isfinite(values)
    return np.where(valid, values, 0.0), valid


def _weighted(src: np.ndarray, rows: list[tuple[np.ndarray, np.ndarray]],
              cols: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Sum of weight x value over the separable taps (index, weight) and the sum of valid weights."""
    total = np.zeros(rows[0][0].shape)
    weight = np.zeros(rows[0][0].shape)
    for r, wr in rows:
        for c, wc in cols:
            values, valid = _gather(src, r, c)
            w = np.where(valid, wr * wc, 0.0)
            total += w * values
            weight += w
    return total, weight


def resample_at(src: np.ndarray, u: np.ndarray, v: np.ndarray, *, resampling: str, fill: float | int | bool,
                footprint: tuple[float, float] = (1.0, 1.0), origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """``src`` sampled at source positions ``u`` (columns) and ``v`` (rows), pixel-edge coordinates, any shape.

    ``origin``: (row, column) of ``src[0, 0]`` in the coordinates of ``u``/``v`` (a window of a larger image:
    kernel weights then come from the full-image positions, so a window gives the same values as the whole
    image wherever the kernel fits inside it). ``footprint``: the output pixel's size (columns, rows) in source
    pixels, for ``average``. Integer and boolean sources take ``nearest`` whatever ``resampling`` says and
    ``fill`` outside the source; floats get NaN where there is no data. Returns ``u.shape``, ``src``'s dtype.
    """
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    if origin != (0, 0):
        src = _Offset(src, origin)  # type: ignore[assignment]
    nearest_r, nearest_c = np.floor(v).astype(np.int64), np.floor(u).astype(np.int64)
    if not np.issubdtype(src.dtype, np.floating) or resampling == "nearest":
        picked, inside = _take(src, nearest_r, nearest_c)
        return np.where(inside, picked, np.asarray(fill).astype(src.dtype)).astype(src.dtype, copy=False)
    _, centre_valid = _gather(src, nearest_r, nearest_c)
    if resampling == "bilinear":
        x, y = u - 0.5, v - 0.5
        c0, r0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
        tx, ty = x - c0, y - r0
        total, weight = _weighted(src, [(r0, 1 - ty), (r0 + 1, ty)], [(c0, 1 - tx), (c0 + 1, tx)])
    elif resampling in ("cubic", "cubic_spline"):
        x, y = u - 0.5, v - 0.5
        c0, r0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
        wx, wy = _keys(x - c0), _keys(y - r0)
        total, weight = _weighted(src, [(r0 + k - 1, wy[k]) for k in range(4)],
                                  [(c0 + k - 1, wx[k]) for k in range(4)])
    elif resampling == "average":
        total, weight = _weighted(src, _overlaps(v, footprint[1]), _overlaps(u, footprint[0]))
        centre_valid = weight > 0
    else:
        raise ValueError(f"resampling {resampling!r} is not supported here; use one of {', '.join(KERNEL_REACH_PX)}")
    ok = centre_valid & (np.abs(weight) > 1e-12)
    out = np.where(ok, total / np.where(ok, weight, 1.0), np.nan)
    return out.astype(src.dtype)


def _overlaps(centre: np.ndarray, size: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Source pixels (index, overlap length) covered by ``[centre - size/2, centre + size/2)`` along one axis."""
    start, stop = centre - size / 2.0, centre + size / 2.0
    first = np.floor(start).astype(np.int64)
    taps = int(np.ceil(size)) + 1
    return [(first + k, np.clip(np.minimum(first + k + 1, stop) - np.maximum(first + k, start), 0.0, None))
            for k in range(taps)]
