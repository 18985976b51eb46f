"""Opening a Sentinel-2 product: its layout, metadata, band files, masks and angles assembled into a scene."""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Mapping, Sequence

import xarray as xr

from ...errors import BandFileError, MetadataError
from ...sensors import Sensor, get_sensor
from ..archive import ProductFiles
from ..decoded_copy import DecodedCopy
from ..scene import build_scene, crs_epsg, normalize_chunks
from .angles import angles_dataset
from .layout import Layout, find_layout, read_product_doc
from .masks import mask_sources, place_masks
from .metadata import platform_of, root_attrs
from .radiometry import (
    BandFile,
    aws_band_files,
    band_source,
    read_radiometry,
    safe_band_files,
    select_band_files,
)
from .xml import XmlDoc, read_xml

__all__ = ["open_sentinel2"]

log = logging.getLogger("gmsdask.io.sentinel2")


def _band_files(files: ProductFiles, layout: Layout, product: XmlDoc,
                sensor: Sensor) -> tuple[list[BandFile], list[str]]:
    """The band files to read and (L2A) the bands present at no resolution; raises if no band is usable."""
    candidates = (aws_band_files(layout, sensor) if layout.name == "AWS_PDS"
                  else safe_band_files(product, layout, sensor))
    if not candidates:
        raise MetadataError(product.name, "names no band image files (IMAGE_FILE)")
    chosen, missing = select_band_files(files, candidates, all_required=layout.level == "L1C")
    if not chosen:
        looked_for = ", ".join(sorted({posixpath.dirname(c.member) for cs in candidates.values() for c in cs}))
        raise BandFileError(files.describe(layout.granule),
                            f"no spectral band file is present (looked in {looked_for})")
    if missing:
        log.warning("%s: bands %s have no file at any resolution and are left out",
                    files.path, ", ".join(missing))
    return chosen, missing


def open_sentinel2(files: ProductFiles, *,
                   chunks: int | Sequence[int] | Mapping[str, int] | None = None,
                   overview_m: float | None = None, decoded: DecodedCopy | None = None) -> xr.DataTree:
    """Open a Sentinel-2 L1C/L2A product lazily (see ``gmsdask.io.open_scene``).

    Parameters
    ----------
    files
        The product container: a ``.SAFE`` directory, a zipped SAFE, or an AWS PDS tile folder/zip.
    chunks
        Dask chunk size in pixels: an int, ``(y, x)`` or ``{"y": .., "x": ..}``; default 2048 x 2048.
    overview_m
        Read a first look instead (see ``gmsdask.io.open_scene``).
    decoded
        A copy of the decoded bands to read them from (see ``gmsdask.io.open_scene``).

    Returns
    -------
    xarray.DataTree
        ``r10m``/``r20m``/``r60m`` groups of float32 reflectance (NaN = no data) with masks, an ``angles``
        group, and the homogenized metadata in root attrs. Only XML metadata and raster headers are read.
    """
    layout = find_layout(files)
    product = read_product_doc(files, layout)
    tile = read_xml(files, layout.tile_member)
    platform = platform_of(product, tile.optional_text("TILE_ID") or posixpath.basename(layout.root))
    sensor = get_sensor(platform)
    radiometry = read_radiometry(product, layout.level, sensor)
    band_files, missing = _band_files(files, layout, product, sensor)
    bands = [band_source(files, band_file, sensor, radiometry, layout.level) for band_file in band_files]
    masks = place_masks(mask_sources(files, layout, product), bands)
    crs = bands[0].raster.crs
    if crs is None:
        raise BandFileError(bands[0].raster.name, "band raster has no coordinate reference system")
    attrs = root_attrs(files, layout, product, tile, radiometry, platform, crs_epsg(crs), missing)
    angles = angles_dataset(tile, crs)
    return build_scene(bands, masks, attrs, normalize_chunks(chunks), sensor=sensor,
                       extra_groups={"angles": angles} if angles is not None else None, overview_m=overview_m,
                       decoded=decoded)
