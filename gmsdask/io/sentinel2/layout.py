"""Where a Sentinel-2 product keeps its files: the SAFE and the AWS-PDS per-tile layouts."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from ...errors import MetadataError
from ..archive import ProductFiles
from .xml import XmlDoc, read_xml, read_xml_head

_AWS_TILE_METADATA = re.compile(r"(^|/)metadata\.xml$")

_SAFE_METADATA = re.compile(r"(^|/)MTD_MSIL(1C|2A)\.xml$")

@dataclass(frozen=True)
class Layout:
    """Where a product's metadata lives inside its container.

    Attributes
    ----------
    name
        ``"SAFE"`` or ``"AWS_PDS"``.
    level
        ``"L1C"`` or ``"L2A"``.
    root
        Folder of the product inside the container (``""`` when it is the container itself).
    product_member
        ``MTD_MSIL1C.xml``/``MTD_MSIL2A.xml``; AWS: the datastrip ``metadata.xml`` (radiometry lives there).
    tile_member
        ``GRANULE/*/MTD_TL.xml``; AWS: the tile ``metadata.xml`` (same schema).
    """

    name: str
    level: str
    root: str
    product_member: str
    tile_member: str

    @property
    def granule(self) -> str:
        """Folder of the tile's image and quality data."""
        return posixpath.dirname(self.tile_member)


def find_layout(files: ProductFiles) -> Layout:
    """The SAFE or AWS layout of a container; ``MetadataError`` when its metadata files are missing."""
    safe = [(m, match.group(2)) for m in files.members if (match := _SAFE_METADATA.search(m))]
    if len(safe) > 1:
        raise MetadataError(files.path, "more than one Sentinel-2 product metadata file: "
                                        f"{', '.join(m for m, _ in safe)}")
    if safe:
        (member, level), = safe
        root = posixpath.dirname(member)
        tile = files.find_one(posixpath.join(root, "GRANULE/*/MTD_TL.xml"), "tile metadata MTD_TL.xml")
        return Layout("SAFE", f"L{level}", root, member, tile)
    tiles = [m for m in files.members if _AWS_TILE_METADATA.search(m)
             and posixpath.basename(posixpath.dirname(m)) not in ("datastrip", "qi")]
    if len(tiles) != 1:
        raise MetadataError(files.path, "no Sentinel-2 metadata found (MTD_MSIL1C.xml, MTD_MSIL2A.xml or one tile "
                                        f"metadata.xml){': found ' + ', '.join(tiles) if tiles else ''}")
    root = posixpath.dirname(tiles[0])
    datastrip = files.find_one(posixpath.join(root, "datastrip/metadata.xml"), "datastrip metadata.xml")
    return Layout("AWS_PDS", "L1C", root, datastrip, tiles[0])


def read_product_doc(files: ProductFiles, layout: Layout) -> XmlDoc:
    if layout.name == "AWS_PDS":
        return read_xml_head(files, layout.product_member, "Radiometric_Info")
    return read_xml(files, layout.product_member)
