"""Compiled kernels of :mod:`.point_resampling` (numba, compiled once per process and cached on disk): bilinear
and Keys cubic (a = -0.5) at pixel-edge positions, and any separable kernel (those two, or the area-weighted
average's overlaps) on grids whose axes are the source's; float sources, weights renormalized over the valid
taps.

The point kernels' arithmetic and summation order (rows, then columns, in float64) are those of the numpy form
they replaced, so their values are the same bits; the separable passes sum in another order. A module of its own so that importing the geometry does not import
numba.
"""

import numba
import numpy as np

__all__ = ["axis_taps", "sample_axes", "sample_lattice", "sample_points"]


@numba.njit(cache=True, nogil=True, inline="always")
def _keys_weight(d):
    a = -0.5
    d = abs(d)
    if d <= 1.0:
        return ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
    if d < 2.0:
        return ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
    return 0.0


@numba.njit(cache=True, nogil=True, inline="always")
def _sample(src, uu, vv, r0, c0, cubic):
    """The kernel at one pixel-edge position (float source): NaN where the nearest pixel has no data, else the
    weights renormalized over the valid taps, summed in numpy's order (rows, then columns)."""
    h, w = src.shape
    nr, nc = int(np.floor(vv)) - r0, int(np.floor(uu)) - c0
    if nr < 0 or nr >= h or nc < 0 or nc >= w or not np.isfinite(src[nr, nc]):
        return np.nan
    x, y = uu - 0.5, vv - 0.5
    fc, fr = np.floor(x), np.floor(y)
    tx, ty = x - fc, y - fr
    if cubic:
        n, start = 4, -1
        wx = (_keys_weight(tx + 1.0), _keys_weight(tx), _keys_weight(1.0 - tx), _keys_weight(2.0 - tx))
        wy = (_keys_weight(ty + 1.0), _keys_weight(ty), _keys_weight(1.0 - ty), _keys_weight(2.0 - ty))
    else:
        n, start = 2, 0
        wx = (1.0 - tx, tx, 0.0, 0.0)
        wy = (1.0 - ty, ty, 0.0, 0.0)
    first_r, first_c = int(fr) + start - r0, int(fc) + start - c0
    total = 0.0
    weight = 0.0
    for k in range(n):
        r = first_r + k
        if r < 0 or r >= h:
            continue
        for m in range(n):
            c = first_c + m
            if c < 0 or c >= w:
                continue
            value = np.float64(src[r, c])
            if np.isfinite(value):
                wk = wy[k] * wx[m]
                total += wk * value
                weight += wk
    return total / weight if abs(weight) > 1e-12 else np.nan


@numba.njit(cache=True, nogil=True)
def sample_points(src, u, v, r0, c0, cubic, out):  # pragma: no cover - compiled
    for i in range(u.size):
        out[i] = _sample(src, u[i], v[i], r0, c0, cubic)


@numba.njit(cache=True, nogil=True)
def sample_lattice(src, lattice_u, lattice_v, ix, wx, iy, wy, cubic, out):  # pragma: no cover - compiled
    """``out[r, c]`` sampled at the position interpolated bilinearly between the lattice nodes ``(iy[r] or +1,
    ix[c] or +1)`` with weights ``wy[r]``, ``wx[c]``; left as it is where there is no data (``out`` comes
    filled, in the source's dtype: no float64 copy and no masked copy afterwards)."""
    for r in range(out.shape[0]):
        j, fy = iy[r], wy[r]
        for c in range(out.shape[1]):
            i, fx = ix[c], wx[c]
            u = ((lattice_u[j, i] * (1.0 - fx) + lattice_u[j, i + 1] * fx) * (1.0 - fy)
                 + (lattice_u[j + 1, i] * (1.0 - fx) + lattice_u[j + 1, i + 1] * fx) * fy)
            v = ((lattice_v[j, i] * (1.0 - fx) + lattice_v[j, i + 1] * fx) * (1.0 - fy)
                 + (lattice_v[j + 1, i] * (1.0 - fx) + lattice_v[j + 1, i + 1] * fx) * fy)
            value = _sample(src, u, v, 0, 0, cubic)
            if not np.isnan(value):
                out[r, c] = value


@numba.njit(cache=True, nogil=True)
def axis_taps(position, cubic):  # pragma: no cover - compiled
    """Per output pixel along one axis (its centre at pixel-edge ``position``): the source indices and weights of
    the kernel's taps, ``(taps, n)`` each, and the index of the nearest source pixel ``(n,)``."""
    n = position.size
    taps = 4 if cubic else 2
    index = np.empty((taps, n), dtype=np.intp)
    weight = np.empty((taps, n), dtype=np.float64)
    nearest = np.empty(n, dtype=np.intp)
    for i in range(n):
        nearest[i] = int(np.floor(position[i]))
        x = position[i] - 0.5
        first = np.floor(x)
        t = x - first
        if cubic:
            index[0, i], weight[0, i] = int(first) - 1, _keys_weight(t + 1.0)
            index[1, i], weight[1, i] = int(first), _keys_weight(t)
            index[2, i], weight[2, i] = int(first) + 1, _keys_weight(1.0 - t)
            index[3, i], weight[3, i] = int(first) + 2, _keys_weight(2.0 - t)
        else:
            index[0, i], weight[0, i] = int(first), 1.0 - t
            index[1, i], weight[1, i] = int(first) + 1, t
    return index, weight, nearest


#: Output rows per strip of :func:`sample_axes`: its column pass keeps ~130 source rows (two float64 sums per
#: pixel, ~4 MB for 2048 columns) instead of the whole window's (~67 MB).
_STRIP_ROWS = 128


@numba.njit(cache=True, nogil=True)
def sample_axes(src, row_index, row_weight, row_nearest, col_index, col_weight, col_nearest, check_nearest,
                out):  # pragma: no cover - compiled
    """A separable kernel on a grid whose rows and columns each sit at one source position (same CRS, parallel
    axes): per output row and column the taps' source indices and weights, ``(taps, n)`` each. Two passes per
    strip of output rows: along the columns of the source rows the strip reaches, then along the rows. The sums
    of weight x value and of weight over the valid taps are both separable, so the result is the weights
    renormalized over the valid taps (:func:`_sample`'s, summed in another order). ``out`` comes filled and
    keeps its value where the weights sum to ~0 and, with ``check_nearest``, where the nearest source pixel
    (``row_nearest``, ``col_nearest``) has no data."""
    h, w = src.shape
    ny, nx = out.shape
    for r0 in range(0, ny, _STRIP_ROWS):
        r1 = min(r0 + _STRIP_ROWS, ny)
        lo = max(0, row_index[:, r0:r1].min())
        hi = min(h - 1, row_index[:, r0:r1].max())
        if lo > hi:
            continue  # the strip lies beyond the source
        total = np.zeros((hi - lo + 1, nx))
        weight = np.zeros((hi - lo + 1, nx))
        for i in range(lo, hi + 1):
            for c in range(nx):
                t = 0.0
                s = 0.0
                for m in range(col_index.shape[0]):
                    j = col_index[m, c]
                    if j < 0 or j >= w:
                        continue
                    value = np.float64(src[i, j])
                    if np.isfinite(value):
                        t += col_weight[m, c] * value
                        s += col_weight[m, c]
                total[i - lo, c] = t
                weight[i - lo, c] = s
        for r in range(r0, r1):
            for c in range(nx):
                if check_nearest:
                    nr, nc = row_nearest[r], col_nearest[c]
                    if nr < 0 or nr >= h or nc < 0 or nc >= w or not np.isfinite(src[nr, nc]):
                        continue
                t = 0.0
                s = 0.0
                for k in range(row_index.shape[0]):
                    i = row_index[k, r]
                    if i < lo or i > hi:
                        continue
                    t += row_weight[k, r] * total[i - lo, c]
                    s += row_weight[k, r] * weight[i - lo, c]
                if abs(s) > 1e-12:
                    out[r, c] = t / s
