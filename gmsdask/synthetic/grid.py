"""Pixel grids of the products: Sentinel-2 MGRS tiles and Landsat's 15 m-offset UTM grid.

Coordinates are UTM metres. ``PixelGrid`` stores the outer edges of the grid (GDAL's "area" convention), so
its ``transform`` is what rasterio reports for the written files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine

from ..errors import GmsdaskError
from ..mgrs_grid import utm_epsg
from .parameters import SyntheticParameterError

__all__ = [
    "UtmBox",
    "PixelGrid",
    "DEFAULT_TILE",
    "DEFAULT_SENTINEL2_SIZE",
    "SENTINEL2_TILE_SIZE_M",
    "sentinel2_tile_origin",
    "sentinel2_tile_grid",
    "sentinel2_extent",
    "landsat_grid",
    "utm_epsg",
]

#: The default place of the synthetic products: a tile near Berlin, and its upper-left 6 km x 6 km
#: (rows, cols at 10 m) for the Sentinel-2 writers.
DEFAULT_TILE = "33UUU"
DEFAULT_SENTINEL2_SIZE = (600, 600)
#: Side of a Sentinel-2 tile, metres (10980 px at 10 m).
SENTINEL2_TILE_SIZE_M = 109_800.0


@dataclass(frozen=True)
class UtmBox:
    """An axis-aligned rectangle in one UTM zone: ``epsg`` and its bounds in metres."""

    epsg: int
    xmin: float
    ymin: float
    xmax: float
    ymax: float

    def __post_init__(self) -> None:
        if not (self.xmax > self.xmin and self.ymax > self.ymin):
            raise SyntheticParameterError("location", f"empty UTM box {self}")
        zone_base = self.epsg - self.epsg % 100
        if zone_base not in (32600, 32700) or not 1 <= self.epsg % 100 <= 60:
            raise SyntheticParameterError("location", f"EPSG:{self.epsg} is not a WGS 84 / UTM zone")

    @property
    def centre(self) -> tuple[float, float]:
        return (self.xmin + self.xmax) / 2.0, (self.ymin + self.ymax) / 2.0

    @property
    def width(self) -> float:
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        return self.ymax - self.ymin


@dataclass(frozen=True)
class PixelGrid:
    """A north-up grid: ``x0``/``y0`` are the left/top edges (m), ``res`` the pixel size (m)."""

    epsg: int
    x0: float
    y0: float
    res: float
    rows: int
    cols: int

    @property
    def transform(self) -> Affine:
        return Affine(self.res, 0.0, self.x0, 0.0, -self.res, self.y0)

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, self.cols

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` of the outer pixel edges, metres."""
        return self.x0, self.y0 - self.rows * self.res, self.x0 + self.cols * self.res, self.y0

    def x_centres(self) -> np.ndarray:
        """Pixel-centre eastings of all columns, metres (float64)."""
        return self.x0 + (np.arange(self.cols) + 0.5) * self.res

    def y_centres(self, row_start: int = 0, row_stop: int | None = None) -> np.ndarray:
        """Pixel-centre northings of rows ``row_start:row_stop``, metres (float64, decreasing)."""
        row_stop = self.rows if row_stop is None else row_stop
        return self.y0 - (np.arange(row_start, row_stop) + 0.5) * self.res

    def with_shape(self, rows: int, cols: int) -> "PixelGrid":
        return PixelGrid(self.epsg, self.x0, self.y0, self.res, rows, cols)


def sentinel2_tile_origin(tile: str) -> tuple[int, float, float]:
    """``(epsg, ulx, uly)`` of a Sentinel-2 MGRS tile such as ``"33UUU"`` (:func:`gmsdask.mgrs_grid.tile_origin`).

    A malformed tile name raises ``SyntheticParameterError`` naming the ``tile`` parameter.
    """
    from ..mgrs_grid import tile_origin

    try:
        return tile_origin(tile)
    except GmsdaskError as error:
        raise SyntheticParameterError("tile", str(error)) from None


def sentinel2_tile_grid(tile: str, res: float, size_10m: tuple[int, int]) -> PixelGrid:
    """The ``res`` m grid of the upper-left ``size_10m`` (rows, cols at 10 m) part of a tile."""
    epsg, ulx, uly = sentinel2_tile_origin(tile)
    factor = int(round(res / 10.0))
    return PixelGrid(epsg, ulx, uly, float(res), size_10m[0] // factor, size_10m[1] // factor)


def sentinel2_extent(tile: str, size: int | tuple[int, int] = (10980, 10980)) -> UtmBox:
    """Ground covered by a Sentinel-2 product of ``tile`` with ``size`` (rows, cols at 10 m) pixels.

    Pass it as ``location`` to ``write_landsat_l1`` for a Landsat scene that covers the same ground.
    """
    rows, cols = (size, size) if isinstance(size, int) else size
    epsg, ulx, uly = sentinel2_tile_origin(tile)
    return UtmBox(epsg, ulx, uly - rows * 10.0, ulx + cols * 10.0, uly)


def landsat_grid(epsg: int, centre_x: float, centre_y: float, rows: int, cols: int, res: float = 30.0
                 ) -> PixelGrid:
    """A Landsat grid of ``rows`` x ``cols`` pixels centred near ``(centre_x, centre_y)``.

    USGS puts pixel centres on multiples of the pixel size, so the 30 m grid's corners are odd multiples
    of 15 m.
    """
    half = res / 2.0
    x0 = res * round((centre_x - cols * half - half) / res) + half
    y0 = res * round((centre_y + rows * half - half) / res) + half
    return PixelGrid(epsg, x0, y0, res, rows, cols)
