"""The common pixel grid two images are matched on, and both images brought onto it lazily.

Rule (AROSICS's): the reference's CRS and the coarser of the two pixel sizes. When the target already lies in
the reference's CRS at that pixel size, the common grid is the target's own grid cropped to the overlap, so tie
points sit exactly on target pixels and the target is only sliced; otherwise the grid is anchored on the
reference's pixel corners. An image whose grid is an integer-offset crop of the common grid is sliced (no
resampling, no copy); any other is resampled with odc-geo's ``xr_reproject`` (cubic, lazily when it is
Dask-backed). Nothing here reads pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import odc.geo.xr  # noqa: F401  (registers the .odc accessor)
import rioxarray  # noqa: F401  (registers the .rio accessor: declared no-data values)
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_reproject
from pyproj import CRS, Transformer

from ..errors import GmsdaskError

__all__ = ["CoregInputError", "CommonGrid", "image_geobox", "common_grid", "as_float_image", "on_grid"]

# Two grids whose corners differ by less than this fraction of a pixel are the same grid.
_ALIGN_TOLERANCE = 1e-6


class CoregInputError(GmsdaskError, ValueError):
    """An image given to co-registration is not a georeferenced 2-D north-up raster."""


@dataclass(frozen=True)
class CommonGrid:
    """Where two images are matched.

    ``geobox``: the common grid (reference CRS, coarser pixel size, covering the overlap of both images).
    ``target_geobox``: the target's own grid. ``is_target_grid``: the common grid is a crop of the target's
    grid (same CRS and pixel size; tie points then sit on target pixels).
    """

    geobox: GeoBox
    target_geobox: GeoBox
    is_target_grid: bool

    @property
    def gsd(self) -> float:
        """Pixel size of the common grid, CRS units (metres)."""
        return abs(self.geobox.resolution.x)

    def map_xy(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates (common CRS) of the centres of common-grid pixels ``rows``, ``cols``."""
        x, y = self.geobox.affine * (np.asarray(cols, dtype=float) + 0.5, np.asarray(rows, dtype=float) + 0.5)
        return np.asarray(x), np.asarray(y)

    def target_correction(self, rows: np.ndarray, cols: np.ndarray, dx: np.ndarray, dy: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """A correction of (``dx``, ``dy``) common-grid pixels found at common-grid pixels ``rows``, ``cols``, as
        AROSICS states it for the target: ``(x_shift_px, y_shift_px)`` in target pixels (x right, y down) and
        ``(x_shift_m, y_shift_m)`` added to the target's map origin, in the target's CRS units.

        On the same CRS this is ``dx * gsd_common / gsd_target`` (AROSICS's ``gsd_factor``) and
        ``(dx * gsd, -dy * gsd)``; across CRSs the vector is carried through the projection at the point, so
        the rotation between two UTM zones is accounted for.
        """
        rows, cols = np.asarray(rows, dtype=float), np.asarray(cols, dtype=float)
        x0, y0 = self.geobox.affine * (cols + 0.5, rows + 0.5)
        x1, y1 = self.geobox.affine * (cols + 0.5 + np.asarray(dx), rows + 0.5 + np.asarray(dy))
        src_crs, dst_crs = _crs(self.geobox), _crs(self.target_geobox)
        if src_crs != dst_crs:
            transform = Transformer.from_crs(src_crs, dst_crs, always_xy=True).transform
            x0, y0 = transform(x0, y0)
            x1, y1 = transform(x1, y1)
        dx_m, dy_m = np.asarray(x1) - np.asarray(x0), np.asarray(y1) - np.asarray(y0)
        a = self.target_geobox.affine
        return dx_m / a.a, dy_m / a.e, dx_m, dy_m

    def target_image_xy(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(column, row) of common-grid pixel centres in the target image, in target pixel indices (the centre
        of target pixel ``[r, c]`` is ``(c, r)``; integers when the common grid is the target's own grid)."""
        x, y = self.map_xy(rows, cols)
        src_crs, dst_crs = _crs(self.geobox), _crs(self.target_geobox)
        if src_crs != dst_crs:
            x, y = Transformer.from_crs(src_crs, dst_crs, always_xy=True).transform(x, y)
        col, row = ~self.target_geobox.affine * (np.asarray(x), np.asarray(y))
        return np.asarray(col) - 0.5, np.asarray(row) - 0.5


def image_geobox(image: xr.DataArray, name: str) -> GeoBox:
    """The north-up pixel grid of a georeferenced 2-D DataArray (rioxarray/odc CRS and x/y coordinates)."""
    if image.ndim != 2:
        raise CoregInputError(f"{name}: expected a 2-D (y, x) image, got dims {image.dims}")
    try:
        gbox = image.odc.geobox
    except Exception as err:  # odc raises assorted errors for arrays without usable coordinates
        raise CoregInputError(f"{name}: no pixel grid ({err}); x/y coordinates and a CRS are required") from None
    if not isinstance(gbox, GeoBox) or gbox.crs is None:
        raise CoregInputError(f"{name}: not georeferenced (x/y coordinates and a CRS, e.g. rioxarray's "
                              f"spatial_ref, are required)")
    if not gbox.axis_aligned:
        raise CoregInputError(f"{name}: the grid is rotated; only north-up grids are supported")
    return gbox


def _crs(gbox: GeoBox) -> CRS:
    return CRS.from_user_input(str(gbox.crs))


def _bounds_in(gbox: GeoBox, crs: CRS) -> tuple[float, float, float, float]:
    box = gbox.footprint(str(crs) if crs.to_epsg() is None else f"EPSG:{crs.to_epsg()}").boundingbox
    return box.left, box.bottom, box.right, box.top


def _pixel_size_in(gbox: GeoBox, crs: CRS) -> float:
    """Mean side of a pixel of ``gbox`` at its centre, measured in ``crs`` units."""
    rows, cols = gbox.shape
    px = np.array([cols / 2, cols / 2 + 1, cols / 2])
    py = np.array([rows / 2, rows / 2, rows / 2 + 1])
    x, y = gbox.affine * (px, py)
    x, y = Transformer.from_crs(_crs(gbox), crs, always_xy=True).transform(x, y)
    return 0.5 * (math.hypot(x[1] - x[0], y[1] - y[0]) + math.hypot(x[2] - x[0], y[2] - y[0]))


def common_grid(reference: GeoBox, target: GeoBox) -> CommonGrid | None:
    """The common grid of two images, or None when their footprints do not overlap."""
    ref_crs = _crs(reference)
    gsd_ref = abs(reference.resolution.x)
    if _crs(target) == ref_crs:
        gsd_tgt = abs(target.resolution.x)
    else:
        gsd_tgt = _pixel_size_in(target, ref_crs)
    gsd = max(gsd_ref, gsd_tgt)
    r_left, r_bottom, r_right, r_top = _bounds_in(reference, ref_crs)
    t_left, t_bottom, t_right, t_top = _bounds_in(target, ref_crs)
    left, right = max(r_left, t_left), min(r_right, t_right)
    bottom, top = max(r_bottom, t_bottom), min(r_top, t_top)
    if right - left < gsd or top - bottom < gsd:
        return None
    if _crs(target) == ref_crs and math.isclose(abs(target.resolution.x), gsd, rel_tol=1e-9):
        anchor = target.affine  # tie points on target pixels; the target is only sliced
    else:
        anchor = reference.affine if math.isclose(gsd_ref, gsd, rel_tol=1e-9) else Affine(
            gsd, 0, reference.affine.c, 0, -gsd, reference.affine.f)
    tol = 1e-6
    x0 = anchor.c + math.ceil((left - anchor.c) / gsd - tol) * gsd
    x1 = anchor.c + math.floor((right - anchor.c) / gsd + tol) * gsd
    y1 = anchor.f - math.ceil((anchor.f - top) / gsd - tol) * gsd
    y0 = anchor.f - math.floor((anchor.f - bottom) / gsd + tol) * gsd
    shape = (int(round((y1 - y0) / gsd)), int(round((x1 - x0) / gsd)))
    if min(shape) < 1:
        return None
    geobox = GeoBox(shape, Affine(gsd, 0, x0, 0, -gsd, y1), reference.crs)
    return CommonGrid(geobox, target, _integer_offset(target, geobox) is not None)


def as_float_image(image: xr.DataArray) -> xr.DataArray:
    """float32 copy (lazy for Dask) with the array's declared no-data value (rioxarray ``nodata``/``_FillValue``)
    turned into NaN."""
    nodata = image.rio.nodata if hasattr(image, "rio") else None
    out = image.astype(np.float32)
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        out = out.where(image != nodata)
    return out


def _integer_offset(src: GeoBox, dst: GeoBox) -> tuple[int, int] | None:
    """(row, col) of ``dst``'s first pixel in ``src`` when ``dst`` is an integer-offset crop of ``src``."""
    if _crs(src) != _crs(dst):
        return None
    a, b = src.affine, dst.affine
    if not (math.isclose(a.a, b.a, rel_tol=1e-9) and math.isclose(a.e, b.e, rel_tol=1e-9)):
        return None
    col, row = (b.c - a.c) / a.a, (b.f - a.f) / a.e
    if abs(col - round(col)) > _ALIGN_TOLERANCE or abs(row - round(row)) > _ALIGN_TOLERANCE:
        return None
    row, col = int(round(row)), int(round(col))
    if row < 0 or col < 0 or row + dst.shape[0] > src.shape[0] or col + dst.shape[1] > src.shape[1]:
        return None
    return row, col


def on_grid(image: xr.DataArray, src: GeoBox, dst: GeoBox) -> xr.DataArray:
    """``image`` (float32, NaN = no data) on grid ``dst``: a slice when ``dst`` is a crop of its grid ``src``,
    else a cubic resampling by odc-geo (lazy for Dask-backed images). Dims ``(y, x)``."""
    image = as_float_image(image)
    offset = _integer_offset(src, dst)
    if offset is not None:
        row, col = offset
        return image.isel({image.dims[0]: slice(row, row + dst.shape[0]),
                           image.dims[1]: slice(col, col + dst.shape[1])})
    return xr_reproject(image, dst, resampling="cubic", dst_nodata=np.nan)
