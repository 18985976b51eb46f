"""Resampling of one in-memory raster block onto another pixel grid (numpy in, numpy out).

No xarray or Dask here: :mod:`gmsdask.geometry.lazy_warp` cuts scenes into blocks and calls :func:`warp_block`
per block. Grids are ``odc.geo.GeoBox`` values.

GDAL does the work, except for float bands (no data: NaN), where its kernels are slow:

- **Averaged onto a grid of the same CRS** (L2A's 10 and 20 m Sentinel-2 bands onto a 30 m tile grid): the
  per-axis overlaps are summed in a compiled loop (:func:`.point_resampling.average_on_axes`), GDAL's values
  to float32 rounding, with GDAL's rule at the source's edges; 3.5x faster (2048² at 10 m to 30 m: 17 vs 57 ms).
- **Resampled bilinear or cubic**, where the target pixels are no coarser than the source's. A source window
  holds cloud holes or the swath's edge more often than not, and GDAL's masked kernel costs ~2x its unmasked
  one. Within a CRS (a Landsat scene onto the MGRS grid, half a pixel away) the kernel runs separably
  (:func:`.point_resampling.resample_on_axes`; a 2048² cubic block with a hole: 38 ms, GDAL 312 ms). Into
  another CRS (a Landsat scene into the MGRS tiles of the neighbouring UTM zone) the source positions come from
  pyproj on a lattice every ``_LATTICE_PX`` target pixels (bilinear between nodes), sampled by the compiled
  kernels of :mod:`.point_resampling` (~0.035 s for a 1024² block GDAL took 0.15 s for), closer to the exact
  transform than GDAL's approximate transformer (which allows 0.125 px). Both are GDAL's kernels away from no
  data and the renormalized kernel next to it (NaN where the nearest source pixel has no data): one rule for
  every float warp, where GDAL's masked kernel follows rules of its own.
"""

from __future__ import annotations

import numpy as np
import rasterio.warp
from odc.geo.geobox import GeoBox
from pyproj import Transformer
from rasterio.enums import Resampling

from .point_resampling import average_on_axes, resample_on_axes, resample_on_lattice

__all__ = ["RESAMPLING_RADIUS_PX", "warp_block", "assemble_window", "footprint_window"]

#: Source pixels a resampling kernel reaches beyond the pixel it centres on (used to pad block windows so
#: results do not depend on where blocks are cut).
RESAMPLING_RADIUS_PX: dict[str, int] = {
    "nearest": 1, "bilinear": 2, "cubic": 3, "cubic_spline": 3, "lanczos": 4, "average": 2,
}

#: Target pixels between the lattice nodes at which a warp into another CRS transforms coordinates exactly
#: (pyproj); positions between nodes are bilinear. UTM zone to zone at 30 m: ~1e-5 px off the exact transform.
_LATTICE_PX = 16

# GDAL cannot warp these dtypes; they go through a wider twin and come back.
_WARP_DTYPE = {np.dtype(bool): np.dtype(np.uint8), np.dtype(np.int8): np.dtype(np.int16)}


def assemble_window(blocks: list[np.ndarray], n_block_cols: int, rows: slice, cols: slice) -> np.ndarray:
    """Cut a window out of a row-major list of adjacent 2-D blocks (``n_block_cols`` per block row).

    ``rows``/``cols`` are relative to the upper-left block's first pixel. A single block is sliced, not copied.
    """
    if len(blocks) == 1:
        return blocks[0][rows, cols]
    grid = [blocks[i:i + n_block_cols] for i in range(0, len(blocks), n_block_cols)]
    return np.block(grid)[rows, cols]


def warp_block(src: np.ndarray, src_grid: GeoBox, dst_grid: GeoBox, *, resampling: str,
               src_nodata: float | int | None, dst_fill: float | int | bool) -> np.ndarray:
    """Resample a 2-D block on ``src_grid`` to ``dst_grid`` (``src.shape`` must be ``src_grid``'s shape).

    ``average`` is GDAL's area-weighted mean of the source pixels under each target pixel, skipping
    ``src_nodata`` (NaN for floats); the other methods are GDAL's kernels. Target pixels no source pixel reaches
    get ``dst_fill``. Returns an array of ``src``'s dtype.
    """
    if _average_in_kernels(src.dtype, src_grid, dst_grid, resampling, src_nodata):
        return average_on_axes(src, *_axis_positions(src_grid, dst_grid), fill=dst_fill)
    if _sampled_in_kernels(src, src_grid, dst_grid, resampling, src_nodata):
        if not src.size:
            return np.full(dst_grid.shape.yx, dst_fill, dtype=src.dtype)
        if src_grid.crs == dst_grid.crs:
            u, v, _ = _axis_positions(src_grid, dst_grid)
            return resample_on_axes(src, u, v, resampling=resampling, fill=dst_fill)
        return resample_on_lattice(src, *_lattice_positions(src_grid, dst_grid), resampling=resampling,
                                   fill=dst_fill)
    work_dtype = _WARP_DTYPE.get(src.dtype, src.dtype)
    source = np.ascontiguousarray(src, dtype=work_dtype)
    fill = work_dtype.type(dst_fill)
    destination = np.full(dst_grid.shape.yx, fill, dtype=work_dtype)
    if source.size:
        if src_nodata is not None and not _contains(source, src_nodata):
            # GDAL's masked code path is ~2.5x slower and gives the same result when nothing is masked
            src_nodata = None
        rasterio.warp.reproject(
            source, destination,
            src_transform=src_grid.affine, src_crs=str(src_grid.crs), src_nodata=src_nodata,
            dst_transform=dst_grid.affine, dst_crs=str(dst_grid.crs),
            # Without source masks every computed pixel has full density, so GDAL neither blends with nor reads
            # the destination, and a destination nodata only costs its validity mask: 1.6x the time of a
            # cross-CRS cubic warp (1024², 0.096 vs 0.060 s). Target pixels the source misses stay ``fill``.
            dst_nodata=fill if src_nodata is not None else None,
            resampling=Resampling[resampling],
            # the output is pre-filled; GDAL must not re-initialise it with a different value
            init_dest_nodata=False,
        )
    return destination.astype(src.dtype, copy=False)


def _sampled_in_kernels(src: np.ndarray, src_grid: GeoBox, dst_grid: GeoBox, resampling: str,
                        src_nodata: float | int | None) -> bool:
    """Whether a warp goes to :func:`resample_on_axes` (one CRS) or :func:`resample_on_lattice` (two; see the
    module doc): float data whose no data is NaN, bilinear or cubic, metric CRSs, both grids north-up, target
    pixels no coarser than the source's (where GDAL would widen its kernel; L2A averages there instead)."""
    return (resampling in ("bilinear", "cubic") and np.issubdtype(src.dtype, np.floating)
            and (src_nodata is None or np.isnan(src_nodata))
            and all(g.crs.units == ("metre", "metre") and g.affine.b == 0 and g.affine.d == 0
                    for g in (src_grid, dst_grid))
            and abs(dst_grid.affine.a) <= abs(src_grid.affine.a) * 1.01
            and abs(dst_grid.affine.e) <= abs(src_grid.affine.e) * 1.01)


def footprint_window(src_grid: GeoBox, dst_grid: GeoBox, resampling: str, dtype: np.dtype
                     ) -> tuple[slice, slice] | None:
    """The source pixels (rows, cols of ``src_grid``) that :func:`warp_block` reads for ``dst_grid``, when they
    are the pixels under it and no others: an area average of float data within a CRS (the kernel of
    :func:`.point_resampling.average_on_axes`), whose window needs no padding by the kernel's radius, only
    the footprint rounded out to whole pixels (a 30 m block whose edges fall on the edges of 10 m source
    blocks reads exactly one of them). None when the window must be padded."""
    if not _average_in_kernels(np.dtype(dtype), src_grid, dst_grid, resampling, None):
        return None
    ny, nx = dst_grid.shape.yx
    cols, rows = ~src_grid.affine * (dst_grid.affine * (np.array([0.0, nx]), np.array([0.0, ny])))
    # outwards, but not by a pixel the footprint reaches by rounding noise (its weight would be ~1e-10)
    (r0, c0), (r1, c1) = np.floor(np.array([rows[0], cols[0]]) + 1e-9), np.ceil(np.array([rows[1], cols[1]]) - 1e-9)
    n_rows, n_cols = src_grid.shape.yx
    return (slice(int(min(max(r0, 0), n_rows)), int(min(max(r1, 0), n_rows))),
            slice(int(min(max(c0, 0), n_cols)), int(min(max(c1, 0), n_cols))))


def _average_in_kernels(dtype: np.dtype, src_grid: GeoBox, dst_grid: GeoBox, resampling: str,
                        src_nodata: float | int | None) -> bool:
    """Whether a warp goes to :func:`average_on_axes` (see the module doc): float data whose no data is NaN,
    ``average``, both grids in one CRS, north up and not flipped."""
    return (resampling == "average" and np.issubdtype(dtype, np.floating)
            and (src_nodata is None or np.isnan(src_nodata)) and src_grid.crs == dst_grid.crs
            and all(g.affine.b == 0 and g.affine.d == 0 and g.affine.a > 0 and g.affine.e < 0
                    for g in (src_grid, dst_grid)))


def _axis_positions(src_grid: GeoBox, dst_grid: GeoBox) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Source pixel-edge positions of ``dst_grid``'s column and row centres, and its pixel size in source pixels
    (columns, rows), for two grids of one CRS whose axes are parallel."""
    a, s = dst_grid.affine, src_grid.affine
    ny, nx = dst_grid.shape.yx
    u = (a.c + (np.arange(nx) + 0.5) * a.a - s.c) / s.a
    v = (a.f + (np.arange(ny) + 0.5) * a.e - s.f) / s.e
    return u, v, (a.a / s.a, a.e / s.e)


def _lattice_positions(src_grid: GeoBox, dst_grid: GeoBox) -> tuple[np.ndarray, ...]:
    """Source pixel-edge positions on a lattice in ``dst_grid``'s map coordinates, with each target column's and
    row's node index and weight: ``(lattice_u, lattice_v, ix, wx, iy, wy)``. The nodes sit at multiples of
    ``_LATTICE_PX`` target pixels in map coordinates, so a pixel's position does not depend on its block."""
    a = dst_grid.affine
    ny, nx = dst_grid.shape.yx
    xs = a.c + (np.arange(nx) + 0.5) * a.a
    ys = a.f + (np.arange(ny) + 0.5) * a.e
    step_x, step_y = _LATTICE_PX * abs(a.a), _LATTICE_PX * abs(a.e)
    node_x = np.arange(np.floor(xs.min() / step_x), np.floor(xs.max() / step_x) + 2) * step_x
    node_y = np.arange(np.floor(ys.min() / step_y), np.floor(ys.max() / step_y) + 2) * step_y
    grid_x, grid_y = np.meshgrid(node_x, node_y)
    to_source = Transformer.from_crs(dst_grid.crs.to_wkt(), src_grid.crs.to_wkt(), always_xy=True)
    lattice_u, lattice_v = ~src_grid.affine * to_source.transform(grid_x, grid_y)
    fx, fy = (xs - node_x[0]) / step_x, (ys - node_y[0]) / step_y
    ix = np.minimum(np.floor(fx).astype(np.intp), node_x.size - 2)
    iy = np.minimum(np.floor(fy).astype(np.intp), node_y.size - 2)
    return np.asarray(lattice_u), np.asarray(lattice_v), ix, fx - ix, iy, fy - iy


def _contains(values: np.ndarray, nodata: float | int) -> bool:
    if isinstance(nodata, float) and np.isnan(nodata):
        return bool(np.isnan(values).any())
    return bool((values == nodata).any())
