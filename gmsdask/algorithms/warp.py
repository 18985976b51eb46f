"""Resampling of one in-memory raster block onto another pixel grid (numpy in, numpy out; GDAL does the work).

No xarray or Dask here: :mod:`gmsdask.geometry.lazy_warp` cuts scenes into blocks and calls :func:`warp_block`
per block. Grids are ``odc.geo.GeoBox`` values.
"""

from __future__ import annotations

import numpy as np
import rasterio.warp
from odc.geo.geobox import GeoBox
from rasterio.enums import Resampling

__all__ = ["RESAMPLING_RADIUS_PX", "warp_block", "assemble_window"]

#: Source pixels a resampling kernel reaches beyond the pixel it centres on (used to pad block windows so
#: results do not depend on where blocks are cut).
RESAMPLING_RADIUS_PX: dict[str, int] = {
    "nearest": 1, "bilinear": 2, "cubic": 3, "cubic_spline": 3, "lanczos": 4, "average": 2,
}

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


def _contains(values: np.ndarray, nodata: float | int) -> bool:
    if isinstance(nodata, float) and np.isnan(nodata):
        return bool(np.isnan(values).any())
    return bool((values == nodata).any())
