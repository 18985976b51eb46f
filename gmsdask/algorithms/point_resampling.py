"""Resampling of a raster at arbitrary per-pixel source positions: the kernel of a warp whose coordinate mapping
is not affine (a local co-registration field added to it, or another CRS: :mod:`.warp`).

GDAL's warper, used for affine mappings (:mod:`.warp`), cannot take a per-pixel displacement, and with an
approximating piecewise-affine mapping its results change in the last bit with the output window. scipy's
``map_coordinates`` has no area average, and its cubic spline prefilter runs over the whole array it is given, so
a block's result would depend on where blocks are cut. This module computes every output pixel from its own
source position only, with GDAL's kernels: nearest, bilinear, cubic (Keys, a = -0.5, GDAL's "cubic") and
area-weighted average (by fractional overlap of the output pixel's footprint, as GDAL's "average"). Bilinear and
cubic are the kernels at the source's scale: GDAL widens them when the output is coarser, where L2A averages
instead (:func:`gmsdask.geometry.choose_resampling`). Away from no data the results equal GDAL's to float
rounding (``tests/test_l2a_local_warp.py``); next to no-data pixels GDAL's cubic treats the gap differently.

Bilinear and cubic run compiled (:mod:`._resampling_kernels`, numba): per pixel the loop visits the taps once,
where numpy made full-size temporaries per tap (200 000 random positions: 0.59 -> 0.034 s, the same values).

Positions are source *pixel-edge* coordinates: pixel ``[r, c]`` covers ``[c, c+1) x [r, r+1)``, its centre is
``(c + 0.5, r + 0.5)``. Source pixels outside the array and NaN count as no data; a float result is NaN where its
nearest source pixel has no data, and otherwise the kernel's weights are renormalized over the valid pixels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KERNEL_REACH_PX", "resample_at", "resample_on_lattice", "resample_on_axes", "average_on_axes"]

#: Source pixels a kernel reads beyond the one holding the position (average: plus the footprint's half size).
KERNEL_REACH_PX = {"nearest": 1, "bilinear": 2, "cubic": 3, "average": 2}


_Tap = tuple[np.ndarray, np.ndarray, np.ndarray]  # (clipped index, inside the array, weight) along one axis


def _axis(index: np.ndarray, size: int, origin: int, weight: np.ndarray | float = 1.0) -> _Tap:
    """One axis of a tap: index relative to the array (clipped, so it can always be read), whether it is inside."""
    rel = index - origin
    return np.clip(rel, 0, size - 1), (rel >= 0) & (rel < size), np.asarray(weight, dtype=np.float64)


def _weighted(src: np.ndarray, rows: list[_Tap], cols: list[_Tap]) -> tuple[np.ndarray, np.ndarray]:
    """Sum of weight x value over the separable taps and the sum of the valid taps' weights."""
    flat, width = src.ravel(), src.shape[1]
    total = np.zeros(rows[0][0].shape)
    weight = np.zeros(rows[0][0].shape)
    for r, r_inside, wr in rows:
        offset = r * width
        for c, c_inside, wc in cols:
            values = flat[offset + c]
            valid = r_inside & c_inside & np.isfinite(values)
            w = np.where(valid, wr * wc, 0.0)
            total += w * np.where(valid, values, 0.0)
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
    (h, w), (r0, c0) = src.shape, origin
    if not np.issubdtype(src.dtype, np.floating) or resampling == "nearest":
        near_r = _axis(np.floor(v).astype(np.int64), h, r0)
        near_c = _axis(np.floor(u).astype(np.int64), w, c0)
        picked = src[near_r[0], near_c[0]]
        return np.where(near_r[1] & near_c[1], picked, np.asarray(fill).astype(src.dtype)).astype(src.dtype,
                                                                                                   copy=False)
    if resampling in ("bilinear", "cubic", "cubic_spline"):
        from ._resampling_kernels import sample_points  # numba: imported by the processes that resample
        out = np.empty(u.shape, dtype=np.float64)
        sample_points(np.ascontiguousarray(src), u.reshape(-1), v.reshape(-1), r0, c0, resampling != "bilinear",
                      out.reshape(-1))
        return out.astype(src.dtype)
    if resampling != "average":
        raise ValueError(f"resampling {resampling!r} is not supported here; use one of {', '.join(KERNEL_REACH_PX)}")
    rows = [_axis(i, h, r0, wk) for i, wk in _overlaps(v, footprint[1])]
    cols = [_axis(i, w, c0, wk) for i, wk in _overlaps(u, footprint[0])]
    total, weight = _weighted(src, rows, cols)
    ok = weight > 1e-12  # overlap weights are never negative
    out = np.where(ok, total / np.where(ok, weight, 1.0), np.nan)
    return out.astype(src.dtype)


def _overlaps(centre: np.ndarray, size: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Source pixels (index, overlap length) covered by ``[centre - size/2, centre + size/2)`` along one axis."""
    start, stop = centre - size / 2.0, centre + size / 2.0
    first = np.floor(start).astype(np.int64)
    taps = int(np.ceil(size)) + 1
    return [(first + k, np.clip(np.minimum(first + k + 1, stop) - np.maximum(first + k, start), 0.0, None))
            for k in range(taps)]


def resample_on_lattice(src: np.ndarray, lattice_u: np.ndarray, lattice_v: np.ndarray, ix: np.ndarray,
                        wx: np.ndarray, iy: np.ndarray, wy: np.ndarray, *, resampling: str,
                        fill: float = np.nan) -> np.ndarray:
    """``src`` (float, 2-D) sampled with ``bilinear`` or ``cubic`` at positions interpolated bilinearly from a
    lattice of pixel-edge positions: output pixel ``[r, c]`` lies between the nodes ``(iy[r], ix[c])`` and
    ``(iy[r] + 1, ix[c] + 1)`` of ``lattice_u``/``lattice_v`` (2-D), at fractions ``wy[r]``, ``wx[c]``. Returns
    ``(len(iy), len(ix))`` of ``src``'s dtype, ``fill`` where there is no data (NaN in :func:`resample_at`)."""
    if resampling not in ("bilinear", "cubic"):
        raise ValueError(f"resample_on_lattice takes bilinear or cubic, not {resampling!r}")
    from ._resampling_kernels import sample_lattice  # numba: imported by the processes that resample
    out = np.full((iy.size, ix.size), fill, dtype=src.dtype)
    sample_lattice(np.ascontiguousarray(src), np.ascontiguousarray(lattice_u, dtype=np.float64),
                   np.ascontiguousarray(lattice_v, dtype=np.float64), np.asarray(ix, dtype=np.intp),
                   np.asarray(wx, dtype=np.float64), np.asarray(iy, dtype=np.intp), np.asarray(wy, dtype=np.float64),
                   resampling == "cubic", out)
    return out


def resample_on_axes(src: np.ndarray, u: np.ndarray, v: np.ndarray, *, resampling: str,
                     fill: float = np.nan) -> np.ndarray:
    """``src`` (float, 2-D) sampled with ``bilinear`` or ``cubic`` as :func:`resample_at` does, onto a grid whose
    axes are the source's (the same CRS, both north up): output column ``c`` sits at source position ``u[c]``,
    row ``r`` at ``v[r]`` (pixel-edge coordinates). Separable, so ~4x faster than per-pixel positions; the
    values are :func:`resample_at`'s to float32 rounding. Returns ``(v.size, u.size)`` of ``src``'s dtype,
    ``fill`` where there is no data."""
    if resampling not in ("bilinear", "cubic"):
        raise ValueError(f"resample_on_axes takes bilinear or cubic, not {resampling!r}")
    from ._resampling_kernels import axis_taps, sample_axes  # numba: imported by the processes that resample
    cubic = resampling == "cubic"
    rows = axis_taps(np.ascontiguousarray(v, dtype=np.float64), cubic)
    cols = axis_taps(np.ascontiguousarray(u, dtype=np.float64), cubic)
    out = np.full((np.size(v), np.size(u)), fill, dtype=src.dtype)
    (row_index, row_weight, row_nearest), (col_index, col_weight, col_nearest) = rows, cols
    sample_axes(np.ascontiguousarray(src), row_index, row_weight, row_nearest, col_index, col_weight, col_nearest,
                True, out)
    return out


def average_on_axes(src: np.ndarray, u: np.ndarray, v: np.ndarray, footprint: tuple[float, float], *,
                    fill: float = np.nan) -> np.ndarray:
    """``src`` (float, 2-D) averaged as :func:`resample_at`'s ``average`` onto a grid whose axes are the
    source's (the same CRS, both north up): output column ``c`` is centred at source position ``u[c]``, row
    ``r`` at ``v[r]`` (pixel-edge coordinates), ``footprint`` its size (columns, rows) in source pixels.

    The overlaps are computed once per axis and summed by the separable kernel of :func:`resample_on_axes`
    (:mod:`._resampling_kernels`): the values of GDAL's ``average`` to float32 rounding, in under a third of its time.
    Returns ``(v.size, u.size)`` of ``src``'s dtype, ``fill`` where no valid source pixel lies under the output
    pixel."""
    from ._resampling_kernels import sample_axes  # numba: imported by the processes that resample
    row_index, row_weight = _axis_overlaps(np.asarray(v, dtype=np.float64), footprint[1], src.shape[0])
    col_index, col_weight = _axis_overlaps(np.asarray(u, dtype=np.float64), footprint[0], src.shape[1])
    out = np.full((row_index.shape[1], col_index.shape[1]), fill, dtype=src.dtype)
    no_nearest = np.zeros(0, dtype=np.intp)  # every output pixel with a valid overlap has a value
    sample_axes(np.ascontiguousarray(src), row_index, row_weight, no_nearest, col_index, col_weight, no_nearest,
                False, out)
    return out


def _axis_overlaps(centre: np.ndarray, size: float, n_source: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_overlaps` as two ``(taps, n)`` arrays, source index and overlap length, with GDAL's rule at the
    source's edges: where a footprint overlaps the source, its part beyond the edge counts as the edge pixel's
    (GDAL clamps the footprint's first and last pixel, not their weights)."""
    taps = _overlaps(centre, size)
    index = np.stack([i for i, _ in taps]).astype(np.intp)
    length = np.stack([w for _, w in taps]).astype(np.float64)
    before = np.where(index < 0, length, 0.0).sum(axis=0)
    beyond = np.where(index >= n_source, length, 0.0).sum(axis=0)
    length[(index < 0) | (index >= n_source)] = 0.0
    length += np.where((index == 0) & (length > 0), before, 0.0)
    length += np.where((index == n_source - 1) & (length > 0), beyond, 0.0)
    return index, length
