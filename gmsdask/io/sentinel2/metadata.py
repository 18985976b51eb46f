"""Sentinel-2 root metadata: platform, sensing time, cloud cover, footprint, ids (the homogenized attrs)."""

from __future__ import annotations

import json
import posixpath
import re
from datetime import datetime, timezone
from typing import Any

import shapely
from pyproj import Transformer
from shapely.geometry import Polygon, shape

from ...algorithms.radiometry import earth_sun_distance_au
from ...errors import GmsdaskError, MetadataError
from ...sensors import get_sensor
from ..archive import ProductFiles
from .layout import Layout
from .radiometry import Radiometry
from .xml import XmlDoc

_TILE_BASELINE = re.compile(r"_N(\d{2}\.\d{2})(?:_|$)")

_TILE_ABSOLUTE_ORBIT = re.compile(r"_A(\d{6})_")

# Parts of a tile id such as S2A_OPER_MSI_L1C_TL_EPAE_20180629T012042_A015757_T56JMM_N02.06
_TILE_MGRS = re.compile(r"_T(\d{2}[A-Z]{3})(?:_|$)")

def _safe_footprint(product: XmlDoc) -> tuple[str, str]:
    """WKT lon/lat polygon from ``Global_Footprint/EXT_POS_LIST`` (ESA lists ``lat lon`` pairs)."""
    text = product.text("EXT_POS_LIST", within="Global_Footprint")
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        raise MetadataError(product.name, "EXT_POS_LIST holds non-numbers") from None
    if len(values) < 6 or len(values) % 2:
        raise MetadataError(product.name, f"EXT_POS_LIST has {len(values)} numbers, not lat/lon pairs")
    return (Polygon(zip(values[1::2], values[0::2])).wkt,
            f"{posixpath.basename(product.name)} Global_Footprint EXT_POS_LIST (true data footprint)")


def _aws_footprint(files: ProductFiles, layout: Layout) -> tuple[str, str]:
    """WKT lon/lat polygon of ``tileInfo.json`` ``tileDataGeometry`` (given in the tile's UTM CRS)."""
    member = posixpath.join(layout.root, "tileInfo.json")
    try:
        geometry = json.loads(files.read_text(member))["tileDataGeometry"]
        epsg = int(str(geometry["crs"]["properties"]["name"]).rsplit(":", 1)[-1])
        polygon = shape({"type": geometry["type"], "coordinates": geometry["coordinates"]})
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise MetadataError(files.describe(member), f"no usable tileDataGeometry ({err!r})") from None
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    lonlat = shapely.transform(polygon, to_lonlat.transform, interleaved=False)
    return lonlat.wkt, "tileInfo.json tileDataGeometry (true data footprint)"


def _footprint(files: ProductFiles, layout: Layout, product: XmlDoc) -> tuple[str, str]:
    return _aws_footprint(files, layout) if layout.name == "AWS_PDS" else _safe_footprint(product)


def platform_of(product: XmlDoc, tile_id: str) -> str:
    """``SENTINEL_2A``/``2B``/``2C`` from SPACECRAFT_NAME (``Sentinel-2A``), else from the tile id (``S2A_``)."""
    spacecraft = product.optional_text("SPACECRAFT_NAME") or f"Sentinel-{tile_id[1:3]}"
    platform = spacecraft.upper().replace("-", "_")
    try:
        get_sensor(platform)
    except GmsdaskError:
        raise MetadataError(product.name, f"spacecraft {spacecraft!r} is no supported Sentinel-2") from None
    return platform


def _sensing_time(tile: XmlDoc) -> datetime:
    text = tile.text("SENSING_TIME")
    try:
        return datetime.fromisoformat(text).astimezone(timezone.utc)
    except ValueError:
        raise MetadataError(tile.name, f"SENSING_TIME {text!r} is no valid time") from None


def _cloud_cover(files: ProductFiles, layout: Layout, product: XmlDoc, tile: XmlDoc) -> float:
    """The tile's cloudy-pixel percentage, else the product's assessment (AWS: else ``tileInfo.json``)."""
    for doc, tag in ((tile, "CLOUDY_PIXEL_PERCENTAGE"), (product, "Cloud_Coverage_Assessment")):
        value = doc.optional_number(tag)
        if value is not None:
            return value
    if layout.name == "AWS_PDS":
        member = posixpath.join(layout.root, "tileInfo.json")
        try:
            return float(json.loads(files.read_text(member))["cloudyPixelPercentage"])
        except (ValueError, KeyError, TypeError):
            pass
    raise MetadataError(tile.name, "has no CLOUDY_PIXEL_PERCENTAGE (nor the product a cloud assessment)")


def _search(pattern: re.Pattern[str], text: str) -> str:
    """The first group of ``pattern`` in ``text``, ``""`` when it does not occur."""
    match = pattern.search(text)
    return match.group(1) if match else ""


def _product_id(layout: Layout, product: XmlDoc, tile_id: str) -> str:
    if layout.name == "AWS_PDS":
        return posixpath.basename(layout.root) or tile_id
    uri = product.optional_text("PRODUCT_URI") or posixpath.basename(layout.root)
    return uri.removesuffix(".SAFE")


def _baseline(product: XmlDoc, tile_id: str) -> str:
    return product.optional_text("PROCESSING_BASELINE") or _search(_TILE_BASELINE, tile_id)


def root_attrs(files: ProductFiles, layout: Layout, product: XmlDoc, tile: XmlDoc, radiometry: Radiometry,
               platform: str, epsg: int, missing: list[str]) -> dict[str, Any]:
    """The homogenized metadata of ``docs/scene-model.md`` plus Sentinel-2 specifics (JSON-serializable)."""
    tile_id = tile.text("TILE_ID")
    time = _sensing_time(tile)
    footprint, footprint_source = _footprint(files, layout, product)
    datatake = next((e for tag in ("Datatake", "Datatake_Info")  # SAFE / AWS datastrip
                     if (e := product.first(tag)) is not None), None)
    orbit = product.optional_text("SENSING_ORBIT_NUMBER")
    return {
        "platform": platform,
        "sensor": "MSI",
        "product_id": _product_id(layout, product, tile_id),
        "product_path": str(files.path),
        "processing_level": layout.level,
        "acquisition_time": time.isoformat().replace("+00:00", "Z"),
        "sun_elevation_deg": 90.0 - tile.number("ZENITH_ANGLE", within="Mean_Sun_Angle"),
        "sun_azimuth_deg": tile.number("AZIMUTH_ANGLE", within="Mean_Sun_Angle"),
        "earth_sun_distance_au": earth_sun_distance_au(time),
        "cloud_cover_pct": _cloud_cover(files, layout, product, tile),
        "footprint": footprint,
        "footprint_source": footprint_source,
        "footprint_exact": True,  # EXT_POS_LIST and tileDataGeometry outline the valid pixels
        "processing_baseline": _baseline(product, tile_id),
        "epsg": epsg,
        "mgrs_tile": _search(_TILE_MGRS, tile_id),
        "wrs_path": 0,
        "wrs_row": 0,
        "collection": 0,
        "metadata_file": layout.product_member,
        "tile_metadata_file": layout.tile_member,
        "product_layout": layout.name,
        "tile_id": tile_id,
        "datatake_id": datatake.get("datatakeIdentifier", "") if datatake is not None else "",
        "relative_orbit": int(orbit) if orbit and orbit.isdigit() else 0,
        "absolute_orbit": int(_search(_TILE_ABSOLUTE_ORBIT, tile_id) or 0),
        "orbit_direction": product.optional_text("SENSING_ORBIT_DIRECTION") or "",
        "reflectance_conversion_u": radiometry.u,
        "missing_bands": missing,
        "fill_dn": radiometry.nodata_dn,
        "saturated_dn": radiometry.saturated_dn,
    }
