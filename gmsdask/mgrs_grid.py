"""The Sentinel-2 MGRS tile grid: tile names, origins, pixel grids and the tiles a footprint touches.

A Sentinel-2 tile is a 109 800 m square in the UTM zone of its MGRS 100 km grid square. Its upper-left corner is
the 100 km square's upper-left corner with x floored, and y (relative to the false northing: 10 000 000 m in the
southern hemisphere, 0 in the northern) ceiled, to a multiple of 60 m, so 10/20/30/60 m grids nest into every
tile exactly. Real origins: T29UNU (499980, 5900040), T56JMM (399960, 6700000), T55JGF (699960, 6600040).

A 100 km square that crosses a latitude-band boundary has one Sentinel-2 tile only, named after the band that
holds the square's centre (e.g. T50TMK, whose south-west part lies in band S; plain MGRS names points there
``50SMK``). The same rule resolves the 2000 km ambiguity of the row letter when parsing a tile name.
"""

from __future__ import annotations

import functools
import math
import re

import numpy as np
import shapely
import shapely.ops
import shapely.wkt
from affine import Affine
from odc.geo.geobox import GeoBox
from pyproj import CRS, Transformer
from shapely.geometry import Polygon, box

from .errors import GmsdaskError

__all__ = ["TILE_SIZE_M", "TILE_GRID_M", "normalize_tile", "tile_origin", "tile_epsg", "tile_geobox", "tile_polygon",
           "tiles_intersecting", "grid_anchor", "tile_core_polygon", "footprint_reaches_core", "utm_epsg", "utm_zone_of", "utm_epsg_at"]

#: Edge length of a Sentinel-2 tile, metres.
TILE_SIZE_M = 109_800
#: Tile origins are multiples of this (metres), so every GSD dividing it nests into every tile.
TILE_GRID_M = 60
_SQUARE_M = 100_000
_SOUTH_FALSE_NORTHING = 10_000_000

_BANDS = "CDEFGHJKLMNPQRSTUVWX"  # 8 degrees each from 80 S, X is 12 degrees (72-84 N)
_COLUMN_SETS = ("STUVWXYZ", "ABCDEFGH", "JKLMNPQR")  # indexed by zone % 3
_ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUV"
_TILE_NAME = re.compile(r"^T?(\d{1,2})([C-HJ-NP-X])([A-HJ-NP-Z])([A-HJ-NP-V])$")


def _band_limits(band: str) -> tuple[float, float]:
    """South and north latitude of a latitude band, degrees."""
    south = -80.0 + 8.0 * _BANDS.index(band)
    return south, (84.0 if band == "X" else south + 8.0)


def _band_of_latitude(lat: float) -> str | None:
    if not -80.0 <= lat < 84.0:
        return None
    return _BANDS[min(int((lat + 80.0) // 8.0), len(_BANDS) - 1)]


def utm_epsg(zone: int, north: bool) -> int:
    """EPSG code of WGS 84 / UTM ``zone`` in the northern or southern hemisphere."""
    return (32600 if north else 32700) + zone


def utm_zone_of(lon: float | np.ndarray) -> int | np.ndarray:
    """The standard (not Norway/Svalbard-adjusted) UTM zone, 1-60, of a longitude in degrees."""
    zone = np.clip((np.asarray(lon, dtype=float) + 180.0) // 6.0, 0, 59).astype(int) + 1
    return zone if zone.ndim else int(zone)


def utm_epsg_at(lon: float, lat: float) -> int:
    """EPSG code of the standard UTM zone of a point (degrees): the hemisphere from the latitude's sign."""
    return utm_epsg(int(utm_zone_of(lon)), lat >= 0)


@functools.lru_cache(maxsize=256)
def _to_lonlat(epsg: int) -> Transformer:
    return Transformer.from_crs(epsg, 4326, always_xy=True)


@functools.lru_cache(maxsize=256)
def _from_lonlat(epsg: int) -> Transformer:
    return Transformer.from_crs(4326, epsg, always_xy=True)


def _parse(tile: str) -> tuple[int, str, str, str]:
    match = _TILE_NAME.match(tile.strip().upper())
    if match is None:
        raise GmsdaskError(f"MGRS tile {tile!r}: not a Sentinel-2 tile name such as '29UNU' or 'T29UNU'")
    zone, band, column, row = int(match[1]), match[2], match[3], match[4]
    if not 1 <= zone <= 60:
        raise GmsdaskError(f"MGRS tile {tile!r}: UTM zone {zone} is outside 1..60")
    if column not in _COLUMN_SETS[zone % 3]:
        raise GmsdaskError(f"MGRS tile {tile!r}: column letter {column!r} does not exist in UTM zone {zone} "
                           f"(allowed: {_COLUMN_SETS[zone % 3]})")
    return zone, band, column, row


def normalize_tile(tile: str) -> str:
    """A tile name in the canonical form ``29UNU`` (from ``T29UNU``, ``t29unu``, ``1CCV`` -> ``01CCV``)."""
    zone, band, column, row = _parse(tile)
    return f"{zone:02d}{band}{column}{row}"


def _square_centre_latitude(zone: int, north: bool, column: int, row: int) -> float:
    """Latitude (degrees) of the centre of 100 km square (column, row) of a UTM zone."""
    _, lat = _to_lonlat(utm_epsg(zone, north)).transform((column + 0.5) * _SQUARE_M, (row + 0.5) * _SQUARE_M)
    return float(lat)


@functools.lru_cache(maxsize=4096)
def _square_of_tile(tile: str) -> tuple[int, bool, int, int]:
    """``(zone, north, column, row)`` of a tile's 100 km square; row counts from the hemisphere's origin."""
    zone, band, column_letter, row_letter = _parse(tile)
    north = band >= "N"
    column = _COLUMN_SETS[zone % 3].index(column_letter) + 1
    row_mod20 = (_ROW_LETTERS.index(row_letter) - (5 if zone % 2 == 0 else 0)) % 20
    south_lat, north_lat = _band_limits(band)
    # the row letter repeats every 2000 km; the band holding the square's centre picks the repetition
    for row in range(row_mod20, 100, 20):
        if south_lat <= _square_centre_latitude(zone, north, column, row) < north_lat:
            return zone, north, column, row
    raise GmsdaskError(f"MGRS tile {tile!r}: no 100 km square with row letter {row_letter!r} has its centre "
                       f"in latitude band {band} ({south_lat}..{north_lat} deg) of UTM zone {zone}")


def tile_epsg(tile: str) -> int:
    """EPSG code of a tile's UTM zone (326zz north of the equator, 327zz south)."""
    zone, band, _, _ = _parse(tile)
    return utm_epsg(zone, band >= "N")


def tile_origin(tile: str) -> tuple[int, float, float]:
    """``(EPSG, upper-left x, upper-left y)`` of a Sentinel-2 tile, metres in its UTM zone.

    >>> tile_origin("29UNU")
    (32629, 499980.0, 5900040.0)
    """
    zone, north, column, row = _square_of_tile(tile)
    false_northing = 0 if north else _SOUTH_FALSE_NORTHING
    ulx = math.floor(column * _SQUARE_M / TILE_GRID_M) * TILE_GRID_M
    uly_true = (row + 1) * _SQUARE_M - false_northing  # northing counted from the equator
    uly = math.ceil(uly_true / TILE_GRID_M) * TILE_GRID_M + false_northing
    return utm_epsg(zone, north), float(ulx), float(uly)


def tile_geobox(tile: str, gsd: float = 30.0, *, buffer_px: int = 0) -> GeoBox:
    """The pixel grid of a tile at ``gsd`` metres (3660 x 3660 at 30 m), grown by ``buffer_px`` on each side.

    The grid starts at the tile's upper-left corner; ``gsd`` must divide the 109 800 m tile edge.
    """
    size_px = TILE_SIZE_M / gsd
    if gsd <= 0 or abs(size_px - round(size_px)) > 1e-9:
        raise GmsdaskError(f"MGRS tile {tile}: a GSD of {gsd} m does not divide the {TILE_SIZE_M} m tile edge")
    if buffer_px < 0:
        raise GmsdaskError(f"MGRS tile {tile}: buffer_px must be >= 0, got {buffer_px}")
    epsg, ulx, uly = tile_origin(tile)
    n = int(round(size_px)) + 2 * buffer_px
    affine = Affine(gsd, 0.0, ulx - buffer_px * gsd, 0.0, -gsd, uly + buffer_px * gsd)
    return GeoBox((n, n), affine, f"EPSG:{epsg}")


def tile_polygon(tile: str) -> Polygon:
    """The tile's 109.8 km square in its own UTM CRS (metres)."""
    _, ulx, uly = tile_origin(tile)
    return box(ulx, uly - TILE_SIZE_M, ulx + TILE_SIZE_M, uly)


def tile_core_polygon(tile: str) -> Polygon:
    """The tile's own 100 km square in its UTM CRS (metres): the tile without the 9.8 km strips it shares with
    its eastern and southern neighbours."""
    _, ulx, uly = tile_origin(tile)
    return box(ulx, uly - _SQUARE_M, ulx + _SQUARE_M, uly)


def footprint_reaches_core(footprint_wkt: str, tile: str) -> bool:
    """Whether a lon/lat footprint covers part of the tile's own 100 km square (not only the overlap strips)."""
    epsg = tile_epsg(tile)
    footprint = shapely.ops.transform(_from_lonlat(epsg).transform, shapely.wkt.loads(footprint_wkt))
    return footprint.intersection(tile_core_polygon(tile)).area > 0


def grid_anchor(epsg: int) -> tuple[float, float]:
    """Coordinates (x, y) that pixel corners of a grid nesting into the MGRS tiles sit on, modulo the GSD.

    Tile origins are multiples of 60 m in x and in y relative to the false northing, so in a southern UTM zone
    the y anchor is 10 000 000 m (not a multiple of 60 m or 30 m); elsewhere it is (0, 0).
    """
    zone = CRS.from_epsg(epsg).utm_zone
    return (0.0, float(_SOUTH_FALSE_NORTHING)) if zone is not None and zone.upper().endswith("S") else (0.0, 0.0)


# --- which tiles does a footprint touch ------------------------------------------------------------------------

def _zone_region(zone: int) -> Polygon:
    """Longitude/latitude area of a UTM zone in the MGRS (with the Norway and Svalbard exceptions)."""
    west = -180.0 + 6.0 * (zone - 1)
    parts = [box(west, -80.0, west + 6.0, 56.0), box(west, 64.0, west + 6.0, 72.0)]
    band_v = {31: (0.0, 3.0), 32: (3.0, 12.0)}.get(zone, (west, west + 6.0))
    parts.append(box(band_v[0], 56.0, band_v[1], 64.0))
    band_x = {31: (0.0, 9.0), 33: (9.0, 21.0), 35: (21.0, 33.0), 37: (33.0, 42.0),
              32: None, 34: None, 36: None}.get(zone, (west, west + 6.0))
    if band_x is not None:
        parts.append(box(band_x[0], 72.0, band_x[1], 84.0))
    return shapely.union_all(parts)


def _square_lonlat(zone: int, north: bool, column: int, row: int) -> Polygon:
    x0, y0 = column * _SQUARE_M, row * _SQUARE_M
    edge = np.linspace(0.0, _SQUARE_M, 21)
    xs = np.concatenate([x0 + edge, np.full(21, x0 + _SQUARE_M), x0 + edge[::-1], np.full(21, x0)])
    ys = np.concatenate([np.full(21, y0), y0 + edge, np.full(21, y0 + _SQUARE_M), y0 + edge[::-1]])
    lon, lat = _to_lonlat(utm_epsg(zone, north)).transform(xs, ys)
    return Polygon(zip(lon, lat))


@functools.lru_cache(maxsize=65536)
def _tile_of_square(zone: int, north: bool, column: int, row: int) -> str | None:
    """Name of the Sentinel-2 tile of a 100 km square, or None where the grid has no such tile."""
    if not 1 <= column <= 8:
        return None
    if north and row < 0:  # a square south of the equator seen from the northern projection
        north, row = False, row + _SOUTH_FALSE_NORTHING // _SQUARE_M
    elif not north and row >= _SOUTH_FALSE_NORTHING // _SQUARE_M:
        north, row = True, row - _SOUTH_FALSE_NORTHING // _SQUARE_M
    band = _band_of_latitude(_square_centre_latitude(zone, north, column, row))
    if band is None or (band >= "N") != north:
        return None
    if not _square_lonlat(zone, north, column, row).intersection(_zone_region(zone)).area > 0:
        return None
    row_letter = _ROW_LETTERS[(row + (5 if zone % 2 == 0 else 0)) % 20]
    return f"{zone:02d}{band}{_COLUMN_SETS[zone % 3][column - 1]}{row_letter}"


def _sample_lonlat(footprint: Polygon, spacing_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Points on the boundary (densified) and on a regular grid inside a lon/lat polygon."""
    boundary = shapely.segmentize(footprint, spacing_deg / 5.0)
    coords = np.asarray(shapely.get_coordinates(boundary))
    minx, miny, maxx, maxy = footprint.bounds
    gx, gy = np.meshgrid(np.arange(minx, maxx + spacing_deg, spacing_deg),
                         np.arange(miny, maxy + spacing_deg, spacing_deg))
    inside = shapely.contains_xy(footprint, gx.ravel(), gy.ravel())
    lon = np.concatenate([coords[:, 0], gx.ravel()[inside]])
    lat = np.concatenate([coords[:, 1], gy.ravel()[inside]])
    return lon, lat


def _candidate_tiles(lon: np.ndarray, lat: np.ndarray) -> set[str]:
    """Tiles of the squares holding the sample points and of their neighbours, in the points' zones +-1."""
    standard_zone = utm_zone_of(lon)
    zones = {int((z + dz - 1) % 60 + 1) for z in np.unique(standard_zone) for dz in (-1, 0, 1)}
    if np.any((lat >= 56.0) & (lon >= 0.0) & (lon < 42.0)):
        zones |= {31, 32, 33, 35, 37}
    candidates: set[str] = set()
    for zone in sorted(zones):
        for north in (True, False):
            in_hemisphere = (lat >= 0.0) if north else (lat < 0.0)
            if not in_hemisphere.any():
                continue
            x, y = _from_lonlat(utm_epsg(zone, north)).transform(lon[in_hemisphere], lat[in_hemisphere])
            finite = np.isfinite(x) & np.isfinite(y)
            squares = {(int(c), int(r)) for c, r in zip(np.floor(x[finite] / _SQUARE_M),
                                                        np.floor(y[finite] / _SQUARE_M))}
            # a tile reaches 9.8 km beyond its square to the east and south: neighbours cover that reach
            neighbours = {(c + dc, r + dr) for c, r in squares for dc in (-1, 0, 1) for dr in (-1, 0, 1)}
            for column, row in neighbours:
                name = _tile_of_square(zone, north, column, row)
                if name is not None:
                    candidates.add(name)
    return candidates


def tiles_intersecting(footprint_wkt: str) -> list[str]:
    """Every Sentinel-2 tile whose 109.8 km square overlaps a lon/lat WKT polygon (sorted names).

    Includes neighbouring tiles reached through the 9.8 km overlap and tiles of neighbouring UTM zones.
    Touching along an edge only is no overlap. Footprints crossing the antimeridian are not supported.
    """
    try:
        footprint = shapely.wkt.loads(footprint_wkt)
    except shapely.errors.ShapelyError as err:
        raise GmsdaskError(f"footprint {footprint_wkt[:80]!r}: not valid WKT: {err}") from None
    if footprint.is_empty or footprint.area <= 0:
        raise GmsdaskError(f"footprint {footprint_wkt[:80]!r}: empty or without area")
    if footprint.bounds[2] - footprint.bounds[0] > 180.0:
        raise GmsdaskError(f"footprint {footprint_wkt[:80]!r}: spans more than 180 deg of longitude "
                           "(crossing the antimeridian is not supported)")
    lon, lat = _sample_lonlat(footprint, spacing_deg=0.05)
    hits = []
    for name in sorted(_candidate_tiles(lon, lat)):
        epsg = tile_epsg(name)
        to_utm = _from_lonlat(epsg)
        # densify before projecting so long footprint edges follow the map projection's curvature
        projected = shapely.transform(shapely.segmentize(footprint, 0.01), to_utm.transform, interleaved=False)
        if projected.intersection(tile_polygon(name)).area > 0:
            hits.append(name)
    return hits
