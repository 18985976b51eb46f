"""``open_scene``: the one entry point that recognises a product and hands it to its reader."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import xarray as xr

from ..errors import UnknownProductError
from .archive import ProductFiles
from .decoded_copy import DecodedCopy
from .product_name import LANDSAT_MTL_MEMBER

__all__ = ["open_scene", "detect_product_type"]

_SENTINEL2_SAFE = re.compile(r"(^|/)MTD_MSIL(1C|2A)\.xml$")
_SENTINEL2_AWS = re.compile(r"(^|/)S2[ABC]_OPER_MSI_L1C_TL_[^/]*/metadata\.xml$|^metadata\.xml$")


def detect_product_type(files: ProductFiles) -> str:
    """``"landsat"`` or ``"sentinel2"`` from a container's member names; else ``UnknownProductError``."""
    if any(_SENTINEL2_SAFE.search(m) for m in files.members):
        return "sentinel2"
    if any(LANDSAT_MTL_MEMBER.search(m) for m in files.members):
        return "landsat"
    if any(_SENTINEL2_AWS.search(m) for m in files.members) and any(m.endswith(".jp2") for m in files.members):
        return "sentinel2"
    raise UnknownProductError(files.path, "no Landsat MTL (*_MTL.txt/*_MTL.xml) or Sentinel-2 metadata "
                                          "(MTD_MSIL1C.xml, MTD_MSIL2A.xml, tile metadata.xml) found")


def open_scene(path: str | os.PathLike[str], *,
               chunks: int | Sequence[int] | Mapping[str, int] | None = None,
               overview_m: float | None = None, decoded: DecodedCopy | None = None) -> xr.DataTree:
    """Open a Landsat or Sentinel-2 product lazily as a scene ``DataTree``.

    Parameters
    ----------
    path
        A product directory, ``.tar``/``.tar.gz``/``.zip`` archive (read in place), a ``.SAFE`` directory,
        or a Landsat ``*_MTL.txt``/``*_MTL.xml`` file (its directory is the product).
    chunks
        Dask chunk size in pixels: an int, ``(y, x)`` or ``{"y": .., "x": ..}``; default 2048 x 2048.
    overview_m
        A first look: each resolution group read at the coarsest power-of-two reduction whose pixel is not
        coarser than this many metres, from the file's JPEG 2000 resolution levels or GeoTIFF overviews
        (decoding a 4x reduction costs ~8 % of a full one). Groups keep their native names; each variable's
        attrs say ``overview_m`` and ``decoded_from_overview`` (False: GDAL decoded the full resolution and
        decimated it). Values are the overviews' own (the wavelet low-pass), not pixel samples. None (the
        default) reads the native grids.

    Returns
    -------
    xarray.DataTree
        One group per native resolution (``r10m``, ``r30m``, ...), float32 reflectance (thermal: K), NaN for
        no data, masks, and homogenized metadata in root attrs (``docs/scene-model.md``). No pixel is read.
    """
    from . import landsat, sentinel2

    path = Path(path)
    mtl_file = path if path.is_file() and re.search(r"_MTL\.(txt|xml)$", path.name) else None
    files = ProductFiles.open(path.parent if mtl_file else path)
    kind = "landsat" if mtl_file else detect_product_type(files)
    if kind == "landsat":
        return landsat.open_landsat(files, chunks=chunks, mtl_member=mtl_file.name if mtl_file else None,
                                    overview_m=overview_m, decoded=decoded)
    return sentinel2.open_sentinel2(files, chunks=chunks, overview_m=overview_m, decoded=decoded)
