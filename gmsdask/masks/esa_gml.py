"""ESA's vector cloud mask of Sentinel-2 L1C before baseline 04.00 (``MSK_CLOUDS_B00.gml``) as a raster.

Products before 04.00 deliver the L1C cloud mask as GML polygons (``OPAQUE`` and ``CIRRUS`` mask features,
``gml:posList`` rings in the tile's UTM CRS) instead of the ``MSK_CLASSI`` raster; this module reads them
with the standard library's XML parser and burns them into any grid of the scene with
``rasterio.features.rasterize`` (a pixel is cloud where its centre lies in a polygon).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from os import PathLike

import numpy as np
import rasterio.features
import xarray as xr
from affine import Affine
from shapely.geometry import Polygon

from ..errors import MetadataError
from ..io.archive import ProductFiles

__all__ = ["rasterize_esa_cloud_mask", "read_esa_cloud_polygons"]

_GML = "{http://www.opengis.net/gml/3.2}"
_EOP = "{http://www.opengis.net/eop/2.0}"
_CLOUD_TYPES = ("OPAQUE", "CIRRUS")


def _ring(element: ET.Element, source: str) -> list[tuple[float, float]]:
    pos_list = element.find(f".//{_GML}posList")
    try:
        values = [float(v) for v in (pos_list.text or "").split()] if pos_list is not None else []
    except ValueError:
        raise MetadataError(source, "a gml:posList holds a value that is not a number") from None
    if len(values) < 6 or len(values) % 2:
        raise MetadataError(source, f"a gml:posList has {len(values)} values; a ring needs >= 3 x/y pairs")
    return list(zip(values[0::2], values[1::2]))


def read_esa_cloud_polygons(product: str | PathLike[str],
                            mask_types: Sequence[str] = _CLOUD_TYPES) -> list[Polygon]:
    """The cloud polygons (scene CRS, metres) of a Sentinel-2 L1C product's ``MSK_CLOUDS_B00.gml``.

    ``product`` is the SAFE/AWS folder or zip; ``mask_types`` the ``eop:maskType`` values to keep. A mask
    without features ("no clouds") gives an empty list.

    Raises
    ------
    MetadataError
        When the product has no ``MSK_CLOUDS_B00.gml`` or it is malformed.
    """
    files = ProductFiles.open(product)
    member = files.find_one("*MSK_CLOUDS_B00.gml", "cloud mask MSK_CLOUDS_B00.gml")
    source = files.describe(member)
    try:
        root = ET.fromstring(files.read_bytes(member))
    except ET.ParseError as err:
        raise MetadataError(source, f"is not well-formed XML ({err})") from None
    polygons = []
    for feature in root.iter(f"{_EOP}MaskFeature"):
        kind = (feature.findtext(f"{_EOP}maskType") or "").strip()
        if kind not in mask_types:
            continue
        for polygon in feature.iter(f"{_GML}Polygon"):
            exterior = polygon.find(f"{_GML}exterior")
            if exterior is None:
                raise MetadataError(source, "a gml:Polygon has no gml:exterior")
            holes = [_ring(hole, source) for hole in polygon.findall(f"{_GML}interior")]
            polygons.append(Polygon(_ring(exterior, source), holes))
    return polygons


def rasterize_esa_cloud_mask(product: str | PathLike[str], grid: xr.Dataset) -> np.ndarray:
    """ESA's L1C cloud polygons burnt into ``grid`` (a scene group with pixel-centre ``x``/``y``), bool."""
    x, y = grid.x.values, grid.y.values
    dx, dy = x[1] - x[0], y[1] - y[0]
    transform = Affine(dx, 0.0, x[0] - dx / 2, 0.0, dy, y[0] - dy / 2)
    polygons = read_esa_cloud_polygons(product)
    if not polygons:
        return np.zeros((y.size, x.size), dtype=bool)
    burnt = rasterio.features.rasterize(((p, 1) for p in polygons), out_shape=(y.size, x.size),
                                        transform=transform, fill=0, dtype="uint8")
    return burnt.astype(bool)
