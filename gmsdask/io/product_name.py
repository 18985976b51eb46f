"""Landsat and Sentinel-2 product names: one set of patterns for recognising products, their metadata
members and their ids (discovery, the readers and the catalogue all use these)."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ARCHIVE_SUFFIXES", "product_stem", "LANDSAT_PRODUCT_ID", "LANDSAT_PRECOLLECTION_ID", "SENTINEL2_PRODUCT_NAME", "LANDSAT_MTL_MEMBER",
           "ProductName", "parse_product_name", "is_product_stem"]

#: Archive suffixes a product may be delivered in, longest first.
ARCHIVE_SUFFIXES: tuple[str, ...] = (".tar.gz", ".tgz", ".tar", ".zip")

#: Collection 1/2 product ids of the sensors gmsdask reads: L[CTEO] (OLI/TIRS combined, TM, ETM+, OLI; no MSS),
#: satellite 04-09,
#: level, path/row, acquisition and processing dates, collection, tier (``LC08_L1TP_016037_20170813_...``).
LANDSAT_PRODUCT_ID = re.compile(
    r"L(?P<sensor>[CTEO])0(?P<satellite>[4-9])_(?P<level>[A-Z0-9]{4})_(?P<path>\d{3})(?P<row>\d{3})_"
    r"(?P<date>\d{8})_\d{8}_(?P<collection>\d{2})_(?P<tier>[A-Z0-9]{2})")
#: Pre-collection scene ids (``LC80160372017225LGN00``).
LANDSAT_PRECOLLECTION_ID = re.compile(r"L(?P<sensor>[CTEO])(?P<satellite>[4-9])(?P<path>\d{3})(?P<row>\d{3})"
                                      r"(?P<year>\d{4})(?P<doy>\d{3})[A-Z]{3}\d{2}")
#: Sentinel-2 product names: compact SAFE names and the older ``OPER`` product/tile names.
SENTINEL2_PRODUCT_NAME = re.compile(
    r"S2(?P<unit>[ABC])_(?:MSI(?P<level>L1C|L2A)_(?P<date>\d{8})T\d{6}_\w+"
    r"|OPER_(?:PRD_)?MSI_?(?P<oper_level>L1C|L2A)?[\w.\-]*)")
#: A Landsat MTL file inside a product (by product id or pre-collection scene id).
LANDSAT_MTL_MEMBER = re.compile(r"(?:^|/)(?:L[CTEO]0[4-9]_[A-Z0-9]{4}_\d{6}_\d{8}_\w*"
                                r"|L[CTEO][4-9]\d{13}[A-Z]{3}\d{2})_MTL\.(?:txt|xml)$")

@dataclass(frozen=True)
class ProductName:
    """What a product's name says: mission (``landsat``, ``sentinel2``), platform (``LANDSAT_8``,
    ``SENTINEL_2A``) and the product id itself."""

    mission: str
    platform: str
    product_id: str


def product_stem(name: str) -> str:
    """A file or folder name without its archive suffix and without ``.SAFE``."""
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name[: -len(".SAFE")] if name.upper().endswith(".SAFE") else name


def parse_product_name(stem: str) -> ProductName | None:
    """The mission and platform a product name (without archive suffix or ``.SAFE``) stands for, or None."""
    if match := LANDSAT_PRODUCT_ID.fullmatch(stem) or LANDSAT_PRECOLLECTION_ID.fullmatch(stem):
        return ProductName("landsat", f"LANDSAT_{match['satellite']}", stem)
    if match := SENTINEL2_PRODUCT_NAME.fullmatch(stem):
        return ProductName("sentinel2", f"SENTINEL_2{match['unit']}", stem)
    return None


def is_product_stem(stem: str) -> bool:
    """Whether ``stem`` is named like a Landsat or Sentinel-2 product."""
    return parse_product_name(stem) is not None
