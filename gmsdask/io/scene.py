"""Assembling readers' lazy bands into the scene ``DataTree`` of ``docs/scene-model.md``.

Readers describe each band (its file, its DN -> physical-value conversion, its attributes); this module turns
those descriptions into Dask-backed variables grouped by resolution, with x/y coordinates, CRS and masks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import dask.array as da
import rioxarray  # noqa: F401  (registers the .rio accessor used for CRS and transform)
import numpy as np
import xarray as xr
from affine import Affine
from rasterio.crs import CRS

from ..errors import ProductError
from ..sensors import Sensor
from .raster import RasterInfo, lazy_raster

if TYPE_CHECKING:
    from .decoded_copy import DecodedCopy

__all__ = ["BandSource", "MaskSource", "normalize_chunks", "build_scene", "grid_coords", "overview_factor",
           "decoded_from_overviews"]

#: A conversion of a DN block to physical values; gets the DN block and the block's pixel-centre x/y
#: coordinates (1-D, CRS units), so that conversions can use per-pixel geometry (e.g. solar zenith).
BlockConversion = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class BandSource:
    """One band as a reader found it: its raster, how DNs become physical values, and its attributes."""

    name: str
    group: str
    raster: RasterInfo
    convert: BlockConversion
    saturated_dn: int | None
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MaskSource:
    """A product quality/cloud layer kept as integers (``BQA``, ``QA_PIXEL``, ``SCL``, ``MSK_CLDPRB``)."""

    name: str
    group: str
    raster: RasterInfo
    attrs: Mapping[str, Any] = field(default_factory=dict)


def normalize_chunks(chunks: int | Sequence[int] | Mapping[str, int] | None,
                     default: tuple[int, int] = (2048, 2048)) -> tuple[int, int]:
    """Chunk sizes as ``(rows, cols)`` from an int, a ``(y, x)`` pair, a ``{"y", "x"}`` dict or None."""
    if chunks is None:
        return default
    if isinstance(chunks, int):
        return chunks, chunks
    if isinstance(chunks, Mapping):
        return int(chunks.get("y", default[0])), int(chunks.get("x", default[1]))
    rows, cols = chunks
    return int(rows), int(cols)


def grid_coords(transform: Affine, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre ``x`` (width) and ``y`` (height) coordinates of a north-up grid."""
    x = transform.c + (np.arange(width) + 0.5) * transform.a
    y = transform.f + (np.arange(height) + 0.5) * transform.e
    return x, y


def _convert_block(dn: np.ndarray, convert: BlockConversion, x: np.ndarray, y: np.ndarray,
                   block_info: dict | None = None) -> np.ndarray:
    (row0, row1), (col0, col1) = block_info[0]["array-location"]
    return convert(dn, x[col0:col1], y[row0:row1])


def _physical(band: BandSource, dn: da.Array, x: np.ndarray, y: np.ndarray) -> da.Array:
    return da.map_blocks(_convert_block, dn, convert=band.convert, x=x, y=y, dtype=np.float32,
                         meta=np.empty((0, 0), dtype=np.float32))


def _group_dataset(bands: Sequence[BandSource], masks: Sequence[MaskSource], chunks: tuple[int, int],
                   product: str, decoded: DecodedCopy | None) -> xr.Dataset:
    reference = (bands[0].raster if bands else masks[0].raster)
    for source in [*bands, *masks]:
        if source.raster.geobox != reference.geobox:
            raise ProductError(source.raster.name, f"grid {source.raster.shape} {source.raster.transform} "
                                                   f"differs from the other files of group {source.group}")
    x, y = grid_coords(reference.transform, reference.height, reference.width)
    variables: dict[str, xr.DataArray] = {}
    nodata_parts, saturated_parts = [], []
    for band in bands:
        dn = lazy_raster(band.raster, chunks) if decoded is None else decoded.dn(band.raster)
        values = _physical(band, dn, x, y)
        variables[band.name] = xr.DataArray(values, dims=("y", "x"), attrs=dict(band.attrs))
        # the file the band is decoded from (xarray's backends keep the file name under "source")
        variables[band.name].encoding.update(source=band.raster.path, source_raster=band.raster)
        nodata_parts.append(da.isnan(values))
        if band.saturated_dn is not None:
            saturated_parts.append(dn == band.saturated_dn)
    if bands:
        variables["nodata"] = xr.DataArray(
            da.stack(nodata_parts).any(axis=0), dims=("y", "x"),
            attrs={"long_name": "no data in at least one band of the group", "flag_values": [0, 1]})
        saturated = (da.stack(saturated_parts).any(axis=0) if saturated_parts
                     else da.zeros(reference.shape, dtype=bool, chunks=chunks))
        variables["saturated"] = xr.DataArray(
            saturated, dims=("y", "x"),
            attrs={"long_name": "saturated in at least one band of the group", "flag_values": [0, 1]})
    for mask in masks:
        variables[mask.name] = xr.DataArray(lazy_raster(mask.raster, chunks), dims=("y", "x"),
                                            attrs=dict(mask.attrs))
    dataset = xr.Dataset(variables, coords={"x": ("x", x, {"units": "m", "axis": "X"}),
                                            "y": ("y", y, {"units": "m", "axis": "Y"})})
    if reference.crs is None:
        raise ProductError(reference.name, f"{product}: raster has no coordinate reference system")
    return dataset.rio.write_crs(reference.crs).rio.write_transform(reference.transform)


def overview_factor(native_m: float, overview_m: float) -> int:
    """The largest power-of-two reduction of a ``native_m`` grid whose pixel is not coarser than
    ``overview_m`` (1 when ``overview_m`` is finer than the native pixel)."""
    factor = 1
    while native_m * factor * 2 <= overview_m + 1e-6:
        factor *= 2
    return factor


def _reduced(sources: Sequence[Any], overview_m: float | None) -> list[Any]:
    if overview_m is None:
        return list(sources)
    out = []
    for source in sources:
        raster = source.raster.reduced(overview_factor(source.raster.resolution, overview_m))
        out.append(replace(source, raster=raster, attrs={**source.attrs, "overview_m": float(overview_m),
                                                         "decoded_from_overview": raster.from_overviews}))
    return out


def decoded_from_overviews(tree: xr.DataTree, bands: Iterable[str]) -> bool:
    """True when every one of ``bands`` that a first look (``build_scene(..., overview_m=...)``) holds was
    decoded from its file's own overview: reading it costs a fraction of a full decode. False for a tree read
    at its native grids (no first look at all)."""
    wanted = set(bands)
    return all(bool(node.ds[band].attrs.get("decoded_from_overview")) for node in tree.children.values()
               for band in node.ds.data_vars if band in wanted)


def build_scene(bands: Sequence[BandSource], masks: Sequence[MaskSource], attrs: Mapping[str, Any],
                chunks: tuple[int, int], *, sensor: Sensor,
                extra_groups: Mapping[str, xr.Dataset] | None = None,
                overview_m: float | None = None, decoded: DecodedCopy | None = None) -> xr.DataTree:
    """The scene tree: one group per resolution, bands in the sensor's order, masks, root ``attrs``.

    ``overview_m`` makes a first look: every group read at the coarsest power-of-two reduction whose pixel is
    not coarser than ``overview_m`` metres (:func:`overview_factor`, :meth:`RasterInfo.reduced`), keeping its
    native group name; each variable's attrs say ``overview_m`` and whether it was ``decoded_from_overview``
    (the file's own overview) rather than decimated from a full decode. ``decoded``: read the bands it covers
    from that copy of their decoded values (:class:`~gmsdask.io.decoded_copy.DecodedCopy`, whose chunks are the
    scene's). Each band variable's ``encoding`` holds its file (``source``) and ``source_raster``."""
    if decoded is not None and tuple(decoded.scene_chunks) != tuple(chunks):
        raise ValueError(f"a decoded copy read in chunks {decoded.scene_chunks} cannot serve a scene in chunks "
                         f"{chunks}")
    bands, masks = _reduced(bands, overview_m), _reduced(masks, overview_m)
    order = {name: index for index, name in enumerate(sensor.band_names)}
    group_names = sorted({s.group for s in [*bands, *masks]}, key=lambda g: int(g[1:-1]))
    children: dict[str, xr.DataTree] = {}
    for group in group_names:
        group_bands = sorted((b for b in bands if b.group == group), key=lambda b: order.get(b.name, 99))
        group_masks = [m for m in masks if m.group == group]
        product = str(attrs.get("product_id", ""))
        children[group] = xr.DataTree(_group_dataset(group_bands, group_masks, chunks, product, decoded))
    for name, dataset in (extra_groups or {}).items():
        children[name] = xr.DataTree(dataset)
    root_attrs = dict(attrs)
    root_attrs["band_names"] = sorted((b.name for b in bands), key=lambda n: order.get(n, 99))
    return xr.DataTree(dataset=xr.Dataset(attrs=root_attrs), children=children)


def crs_epsg(crs: CRS | None) -> int:
    """EPSG code of a CRS, 0 where it has none."""
    return int(crs.to_epsg() or 0) if crs is not None else 0
