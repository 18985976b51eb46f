"""Sentinel-2 quality layers: SCL, MSK_CLDPRB/MSK_SNWPRB and MSK_CLASSI as scene masks."""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rasterio
from rasterio.errors import RasterioError

from ...errors import BandFileError
from ..archive import ProductFiles
from ..scene import BandSource, MaskSource
from .layout import Layout
from .radiometry import open_raster
from .xml import XmlDoc

log = logging.getLogger("gmsdask.io.sentinel2")

# MSK_CLASSI_B00.jp2 (baseline >= 04.00) holds three 0/1 layers, in this order (ESA product specification).
_CLASSI_LAYERS = (("MSK_CLASSI_OPAQUE", "opaque clouds"), ("MSK_CLASSI_CIRRUS", "cirrus clouds"),
                  ("MSK_CLASSI_SNOW_ICE", "snow and ice"))

_RESOLUTIONS_M = (10, 20, 60)  # the SAFE resolution folders, finest first

@dataclass(frozen=True)
class MaskKind:
    """A raster quality layer of L2A products: its variable name, file pattern and attributes."""

    name: str
    pattern: str  # relative to the granule, ``{res}`` = resolution in metres
    attrs: Mapping[str, Any]


_L2A_MASKS = (
    MaskKind("SCL", "IMG_DATA/R{res}m/*_SCL_{res}m.jp2", {"long_name": "Sen2Cor scene classification"}),
    MaskKind("MSK_CLDPRB", "QI_DATA/MSK_CLDPRB_{res}m.jp2", {"long_name": "cloud probability", "units": "%"}),
    MaskKind("MSK_SNWPRB", "QI_DATA/MSK_SNWPRB_{res}m.jp2", {"long_name": "snow probability", "units": "%"}),
)


def _scene_classes(doc: XmlDoc) -> dict[str, Any]:
    """``flag_values``/``flag_meanings`` of SCL from the product's Scene_Classification_List."""
    classes = [(int(e.findtext("SCENE_CLASSIFICATION_INDEX") or -1), (e.findtext("SCENE_CLASSIFICATION_TEXT") or ""))
               for e in doc.root.iter("Scene_Classification_ID")]
    if not classes:
        return {}
    return {"flag_values": [value for value, _ in classes],
            "flag_meanings": " ".join(text.strip().removeprefix("SC_").lower() for _, text in classes)}


def _finest_mask(files: ProductFiles, layout: Layout, kind: MaskKind, attrs: Mapping[str, Any]) -> MaskSource | None:
    for resolution in _RESOLUTIONS_M:
        found = files.find(posixpath.join(layout.granule, kind.pattern.format(res=resolution)))
        if found:
            return MaskSource(kind.name, f"r{resolution}m", open_raster(files, found[0]),
                              {**kind.attrs, **attrs, "source_file": posixpath.basename(found[0])})
    return None


def _layer_count(files: ProductFiles, member: str) -> int:
    """Number of bands of a raster member (header only)."""
    try:
        with rasterio.open(files.gdal_path(member)) as dataset:
            return dataset.count
    except RasterioError as err:
        raise BandFileError(files.describe(member), f"cannot open raster ({err})") from None


def _classi_masks(files: ProductFiles, layout: Layout) -> list[MaskSource]:
    """The baseline >= 04.00 cloud/cirrus/snow classification raster, one 0/1 variable per layer.

    Products before baseline 04.00 deliver these masks as GML vectors (``MSK_CLOUDS_B00.gml``); rasterizing
    vectors is not a reader's job, so they are not read.
    """
    member = posixpath.join(layout.granule, "QI_DATA/MSK_CLASSI_B00.jp2")
    if not files.has(member):
        return []
    gdal_path = files.gdal_path(member)
    # GDAL's vrt:// connection string exposes one layer of the file as a single-band raster, read in place.
    return [MaskSource(name, "r60m", open_raster(files, member, f"vrt://{gdal_path}?bands={index + 1}"),
                       {"long_name": f"{meaning} (1 = flagged)", "flag_values": [0, 1],
                        "source_file": f"{posixpath.basename(member)} layer {index + 1}"})
            for index, (name, meaning) in enumerate(_CLASSI_LAYERS[:_layer_count(files, member)])]


def mask_sources(files: ProductFiles, layout: Layout, product: XmlDoc) -> list[MaskSource]:
    """The product's raster quality layers (L2A: SCL, MSK_CLDPRB, MSK_SNWPRB at the finest resolution)."""
    masks = _classi_masks(files, layout)
    if layout.level == "L2A":
        product_attrs = {"SCL": _scene_classes(product)}
        for kind in _L2A_MASKS:
            mask = _finest_mask(files, layout, kind, product_attrs.get(kind.name, {}))
            if mask is not None:
                masks.append(mask)
    return masks


def place_masks(masks: Iterable[MaskSource], bands: Sequence[BandSource]) -> list[MaskSource]:
    """Masks whose group holds bands on the same grid, or no bands; others are left out with a warning.

    A mask on another grid than its group's bands (e.g. a 60 m mask beside downsampled 60 m bands) cannot share
    the group's ``x``/``y`` coordinates.
    """
    band_grids = {band.group: band.raster.geobox for band in bands}
    placed = []
    for mask in masks:
        grid = band_grids.get(mask.group)
        if grid is None or grid == mask.raster.geobox:
            placed.append(mask)
        else:
            log.warning("%s: grid %s differs from the %s bands' grid %s; mask left out",
                        mask.raster.name, mask.raster.shape, mask.group, grid.shape.yx)
    return placed
