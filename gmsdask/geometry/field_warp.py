"""Lazy resampling with a local displacement field added to the coordinate mapping (L2A with ``coreg_local``).

The field (:class:`DisplacementField`, from L1B's ``l1b`` group) says how far the scene's content appears
displaced at each place of its own grid. For every output pixel, one task per output block computes where its
content lies in the source: the pixel centre in the source CRS (pyproj, when the CRSs differ), moved by the field
(bilinear on the field's coarse grid, solved by fixed-point iteration since the field is given at the observed
positions), then samples the source there with :func:`gmsdask.algorithms.point_resampling.resample_at`. One
resampling, no seams: every output pixel is computed from its global index alone, so results do not depend on
where blocks are cut. The L1B accuracy layer ``shift_reliability`` is interpolated from the same field per block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import dask.array as da
import numpy as np
import xarray as xr
from affine import Affine
from dask.base import tokenize
from odc.geo.geobox import GeoBox
from pyproj import CRS, Transformer

from ..algorithms.local_field import bilinear_at
from ..algorithms.point_resampling import KERNEL_REACH_PX, resample_at
from ..algorithms.warp import assemble_window
from ..errors import ConfigError
from .lazy_warp import windowed_layer

__all__ = ["DisplacementField", "warp_lazy_field", "field_layer_lazy"]

# Fixed-point steps from observed to true position: the error shrinks by the field's gradient (~1e-3) per step.
_FIXED_POINT_STEPS = 3


@dataclass(frozen=True, eq=False)
class DisplacementField:
    """A coarse grid of the content displacement of a scene, in its own CRS.

    ``x``, ``y``: 1-D node coordinates (metres, strictly monotonic); ``dx_m``, ``dy_m``: ``(len(y), len(x))``
    displacement east and north in metres (a feature appears that far from its true position: L2A's
    ``coreg_shift_m`` convention); ``reliability``: the tie points' reliability there (percent); ``crs``: the CRS
    of ``x``/``y``. Outside the grid the edge values hold.
    """

    crs: str
    x: np.ndarray
    y: np.ndarray
    dx_m: np.ndarray
    dy_m: np.ndarray
    reliability: np.ndarray

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> "DisplacementField":
        """From the field variables of an ``l1b`` group (``field_dx_m``, ``field_dy_m``, ``field_reliability`` on
        ``field_y``/``field_x``, attr ``field_crs``)."""
        return cls(str(ds.attrs["field_crs"]), np.asarray(ds["field_x"].values, dtype=float),
                   np.asarray(ds["field_y"].values, dtype=float), np.asarray(ds["field_dx_m"].values, dtype=float),
                   np.asarray(ds["field_dy_m"].values, dtype=float),
                   np.asarray(ds["field_reliability"].values, dtype=float))

    @property
    def mean_shift_m(self) -> tuple[float, float]:
        """The mean displacement (dx east, dy north), metres."""
        return float(self.dx_m.mean()), float(self.dy_m.mean())

    @property
    def max_departure_m(self) -> float:
        """The largest distance of the field from its mean, metres."""
        mx, my = self.mean_shift_m
        return float(np.hypot(self.dx_m - mx, self.dy_m - my).max())

    def source_positions(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where the content belonging at true positions ``(x, y)`` (this field's CRS) was observed: ``p`` with
        ``p - d(p) = (x, y)``."""
        values = np.stack([self.dx_m, self.dy_m])
        px, py = x, y
        for _ in range(_FIXED_POINT_STEPS):
            dx, dy = bilinear_at(self.y, self.x, values, py, px)
            px, py = x + dx, y + dy
        return px, py

    def reliability_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The reliability (percent) at positions ``(x, y)`` of this field's CRS."""
        return bilinear_at(self.y, self.x, self.reliability, y, x)


def _pixel_centres(dst: GeoBox, rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates of the centres of ``dst[rows, cols]``, from the full grid's affine and global indices
    (so that a pixel's coordinates do not depend on the block it is computed in)."""
    a = dst.affine
    col, row = np.meshgrid(np.arange(cols.start, cols.stop) + 0.5, np.arange(rows.start, rows.stop) + 0.5)
    return a.c + col * a.a + row * a.b, a.f + col * a.d + row * a.e


def _in_field_crs(x: np.ndarray, y: np.ndarray, dst_crs: str, field_crs: str) -> tuple[np.ndarray, np.ndarray]:
    if CRS.from_user_input(dst_crs) == CRS.from_user_input(field_crs):
        return x, y
    tx, ty = Transformer.from_crs(dst_crs, field_crs, always_xy=True).transform(x, y)
    return np.asarray(tx), np.asarray(ty)


def _field_task(blocks: list[np.ndarray], n_block_cols: int, rows: slice, cols: slice, origin: tuple[int, int],
                src: Affine, src_crs: str, dst: GeoBox, out_rows: slice, out_cols: slice,
                field: DisplacementField, resampling: str, fill: float | int | bool,
                footprint: tuple[float, float]) -> np.ndarray:
    window = assemble_window(blocks, n_block_cols, rows, cols)
    x, y = _pixel_centres(dst, out_rows, out_cols)
    x, y = _in_field_crs(x, y, str(dst.crs), field.crs)
    px, py = field.source_positions(x, y)
    if field.crs != src_crs:
        px, py = _in_field_crs(px, py, field.crs, src_crs)
    u, v = ~src * (px, py)
    return resample_at(window, u, v, resampling=resampling, fill=fill, footprint=footprint, origin=origin)


def _footprint_px(src: GeoBox, dst: GeoBox) -> tuple[float, float]:
    """An output pixel's size in source pixels (columns, rows), measured at the output grid's centre."""
    ny, nx = dst.shape.yx
    cx, cy = np.array([nx / 2, nx / 2 + 1, nx / 2]), np.array([ny / 2, ny / 2, ny / 2 + 1])
    x, y = dst.affine * (cx, cy)
    x, y = _in_field_crs(np.asarray(x), np.asarray(y), str(dst.crs), str(src.crs))
    u, v = ~src.affine * (x, y)
    return float(math.hypot(u[1] - u[0], v[1] - v[0])), float(math.hypot(u[2] - u[0], v[2] - v[0]))


def warp_lazy_field(data: da.Array, src: GeoBox, dst: GeoBox, field: DisplacementField, *, resampling: str,
                    fill: float | int | bool, chunks: tuple[int, int]) -> da.Array:
    """A lazy 2-D array on ``dst`` resampled from ``data`` on ``src`` with the content moved back by ``field``.

    As :func:`gmsdask.geometry.warp_lazy` (one task per output block, reading the source blocks under it plus
    the kernel's reach and the field's departure from its mean), but the mapping is per pixel. ``resampling``:
    nearest, bilinear, cubic or average (integer/boolean layers always nearest).
    """
    if data.ndim != 2:
        raise ValueError(f"warp_lazy_field takes 2-D (y, x) arrays, got {data.ndim}-D")
    if resampling not in KERNEL_REACH_PX and resampling != "cubic_spline":
        raise ConfigError("spatial_resamp_alg_default",
                          f"{resampling!r} is not supported with coreg_local; allowed: {', '.join(KERNEL_REACH_PX)}")
    footprint = _footprint_px(src, dst)
    mean_dx, mean_dy = field.mean_shift_m
    moved = GeoBox(src.shape, Affine.translation(-mean_dx, -mean_dy) @ src.affine, src.crs)
    pad = (KERNEL_REACH_PX.get(resampling, 3) + int(math.ceil(max(footprint) / 2))
           + int(math.ceil(field.max_departure_m / min(abs(src.resolution.x), abs(src.resolution.y)))) + 1)
    name = f"warp-field-{resampling}-{tokenize(data.name, src, dst, field.crs, field.dx_m, field.dy_m, fill, chunks)}"

    def task(keys, n_block_cols, inner_rows, inner_cols, rows, cols, sub, out_rows, out_cols):
        return (_field_task, keys, n_block_cols, inner_rows, inner_cols, (int(rows.start), int(cols.start)),
                src.affine, str(src.crs), dst, out_rows, out_cols, field, resampling, fill, footprint)
    # the source window of a block is found on the grid moved by the mean shift, padded by the field's departure
    return windowed_layer(name, data, moved, dst, chunks=chunks, padding=pad, fill=fill, task=task)


def _layer_block(nodata: np.ndarray, dst: GeoBox, field: DisplacementField, fill: int,
                 block_info: dict | None = None) -> np.ndarray:
    (r0, r1), (c0, c1) = block_info[0]["array-location"]
    x, y = _pixel_centres(dst, slice(r0, r1), slice(c0, c1))
    x, y = _in_field_crs(x, y, str(dst.crs), field.crs)
    value = np.clip(np.round(field.reliability_at(x, y)), 0, 100).astype(np.uint8)
    return np.where(nodata, np.uint8(fill), value)


def field_layer_lazy(nodata: da.Array, dst: GeoBox, field: DisplacementField, *, fill: int) -> da.Array:
    """The field's reliability (percent, uint8) at every pixel of ``dst`` (lazily, per block of ``nodata``),
    ``fill`` where ``nodata``."""
    return nodata.map_blocks(_layer_block, dst=dst, field=field, fill=fill, dtype=np.uint8)
