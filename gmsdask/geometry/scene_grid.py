"""A scene's resolution groups and their pixel grids (``odc.geo.GeoBox``), shared by every level that needs them."""

from __future__ import annotations

import re
from collections.abc import Mapping

import dask.array as da
import numpy as np
import odc.geo.xr  # noqa: F401  (registers the .odc accessor: a Dataset's GeoBox)
import rioxarray  # noqa: F401  (registers the .rio accessor: CRS and transform on a grid dataset)
import xarray as xr
from affine import Affine
from dask.array.core import normalize_chunks
from dask.base import tokenize
from odc.geo.geobox import GeoBox

from ..errors import ProcessingError

__all__ = ["RESOLUTION_GROUP", "scene_name", "resolution_groups", "group_geobox", "shift_geobox", "grid_dataset",
           "nested_placement", "nested_within", "nested_nearest", "nested_window"]

#: Names of resolution groups in a scene tree (``r10m``, ``r30m`` ...).
RESOLUTION_GROUP = re.compile(r"^r\d+m$")


def scene_name(scene: xr.DataTree) -> str:
    """The name errors use for a scene: its product id, else its path."""
    return str(scene.attrs.get("product_id") or scene.attrs.get("product_path") or "scene")


def resolution_groups(scene: xr.DataTree, level: str = "L2A") -> dict[str, xr.Dataset]:
    """The scene's resolution groups (``r10m`` ...) as Datasets, finest first; ``level`` names the caller in errors."""
    groups = {name: child.to_dataset() for name, child in scene.children.items() if RESOLUTION_GROUP.match(name)}
    if not groups:
        raise ProcessingError(scene_name(scene), level, "the scene tree has no resolution group (r10m, r30m ...)")
    where = scene_name(scene)
    return dict(sorted(groups.items(),
                       key=lambda item: abs(group_geobox(item[1], f"{where}/{item[0]}", level).resolution.x)))


def group_geobox(ds: xr.Dataset, where: str = "group", level: str = "L2A") -> GeoBox:
    """The pixel grid of a resolution group (from its x/y coordinates and ``spatial_ref``); ``where`` names
    the group in errors (``<product>/r10m``)."""
    gbox = ds.odc.geobox
    if not isinstance(gbox, GeoBox) or gbox.crs is None:
        raise ProcessingError(where, level, "the group has no georeferenced north-up grid (x/y coordinates and a "
                                           "spatial_ref CRS are required, see docs/scene-model.md)")
    return gbox


def shift_geobox(gbox: GeoBox, shift_m: tuple[float, float]) -> GeoBox:
    """The grid with the image content moved back by ``shift_m`` = (dx, dy) metres (x east, y north).

    A shift (dx, dy) means a feature appears dx east and dy north of its true position; the corrected grid
    puts every pixel dx west and dy south of where the product says it is.
    """
    dx, dy = shift_m
    if dx == 0 and dy == 0:
        return gbox
    return GeoBox(gbox.shape, Affine.translation(-dx, -dy) @ gbox.affine, gbox.crs)


def grid_dataset(variables: Mapping[str, xr.DataArray], gbox: GeoBox) -> xr.Dataset:
    """A Dataset on ``gbox`` with pixel-centre x/y coordinates and rioxarray's ``spatial_ref``."""
    affine = gbox.affine
    ny, nx = gbox.shape.yx
    x = affine.c + (np.arange(nx) + 0.5) * affine.a
    y = affine.f + (np.arange(ny) + 0.5) * affine.e
    ds = xr.Dataset(dict(variables), coords={"x": ("x", x, {"units": "m", "axis": "X"}),
                                             "y": ("y", y, {"units": "m", "axis": "Y"})})
    return ds.rio.write_crs(str(gbox.crs)).rio.write_transform(affine)


def nested_placement(src: GeoBox, dst: GeoBox) -> tuple[int, int, int] | None:
    """How ``dst`` nests in ``src``: ``(row, col, k)`` with ``dst``'s pixel size ``src``'s divided by the integer
    ``k`` and ``dst``'s first pixel at ``(row, col)`` in ``dst`` pixels from ``src``'s corner; None when they share
    no CRS, are rotated, or ``dst``'s pixel size or pixel edges do not fall on ``src``'s."""
    a, b = src.affine, dst.affine
    if src.crs != dst.crs or a.b or a.d or b.b or b.d or a.a * b.a <= 0 or a.e * b.e <= 0:
        return None
    factor_x, factor_y = a.a / b.a, a.e / b.e
    k = int(round(factor_x))
    if k < 1 or abs(factor_x - k) > 1e-9 * k or abs(factor_y - k) > 1e-9 * k:
        return None
    col, row = (b.c - a.c) / b.a, (b.f - a.f) / b.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return int(round(row)), int(round(col)), k


def nested_within(src: GeoBox, dst: GeoBox) -> tuple[int, int, int] | None:
    """:func:`nested_placement` of ``dst`` in ``src`` when ``dst`` also lies wholly within ``src``, else None."""
    placement = nested_placement(src, dst)
    if placement is None:
        return None
    row, col, k = placement
    if row < 0 or col < 0 or row + dst.shape.y > src.shape.y * k or col + dst.shape.x > src.shape.x * k:
        return None
    return placement


def nested_nearest(data: xr.DataArray, dst: GeoBox,
                   chunks: tuple[tuple[int, ...], tuple[int, ...]] | None = None) -> xr.DataArray | None:
    """``data`` (on its own ``.odc.geobox``) on the finer grid ``dst`` by nearest neighbour, or None when ``dst``
    does not nest in it (:func:`nested_placement`) or reaches beyond it.

    Each source pixel is repeated ``k x k`` times: exactly what a nearest resampling gives on such grids. A warp
    (GDAL) would compute the same for every target pixel, at many times the cost, e.g. a Sentinel-2 60 m QA layer
    brought onto the 10 m grid. Lazy ``data`` gives a lazy result in ``chunks`` (``(y, x)`` chunks of ``dst``;
    default: the source's chunks times ``k``), each block one task that cuts its pixels from the whole source
    layer (one array, ``k²`` times smaller than the result). Such tasks fuse with the block-wise steps that
    consume them, so the fine blocks are made inside their consumers' tasks instead of ahead of them: a whole
    tile's two 60 m cloud layers on the 10 m grid were ~230 MiB of blocks per worker, made early and held.
    """
    placement = nested_within(data.odc.geobox, dst)
    if placement is None:
        return None
    row0, col0, k = placement
    ny, nx = dst.shape.yx
    values = data.data
    if isinstance(values, da.Array):
        if chunks is None:
            chunks = normalize_chunks(tuple(min(c * k, n) for c, n in zip(values.chunksize[-2:], (ny, nx))),
                                      (ny, nx))
        lead = tuple((n,) for n in values.shape[:-2])
        values = da.map_blocks(_nested_block, chunks=(*lead, *chunks), dtype=values.dtype,
                               name=f"nested-nearest-{tokenize(values.name, dst, chunks)}",
                               meta=np.empty((0,) * values.ndim, dtype=values.dtype), source=values,
                               origin=(row0, col0), factor=k)
    else:
        values = nested_window(np.asarray(values), (row0, row0 + ny), (col0, col0 + nx), k)
    y_dim, x_dim = data.dims[-2], data.dims[-1]
    coords = {y_dim: dst.coords["y"].values, x_dim: dst.coords["x"].values}
    out = xr.DataArray(values, dims=data.dims, coords=coords, attrs=data.attrs, name=data.name)
    return out.odc.assign_crs(dst.crs)


def nested_window(source: np.ndarray, rows: tuple[int, int], cols: tuple[int, int], factor: int) -> np.ndarray:
    """Pixels ``rows`` x ``cols`` (half-open, counted from ``source``'s corner in pixels of the finer grid) of the
    grid ``factor`` times finer than ``source``'s and nested in it, by nearest neighbour (the last two axes)."""
    (top, bottom), (left, right) = rows, cols
    piece = source[..., top // factor:(bottom - 1) // factor + 1, left // factor:(right - 1) // factor + 1]
    if factor > 1:
        piece = np.repeat(np.repeat(piece, factor, axis=-2), factor, axis=-1)
    return piece[..., top % factor:top % factor + bottom - top, left % factor:left % factor + right - left]


def _nested_block(source: np.ndarray, origin: tuple[int, int], factor: int,
                  block_info: dict | None = None) -> np.ndarray:
    (top, bottom), (left, right) = block_info[None]["array-location"][-2:]
    return nested_window(source, (origin[0] + top, origin[0] + bottom), (origin[1] + left, origin[1] + right),
                         factor)
