"""Sentinel-2 MSI products as scene trees: L1C and L2A SAFE (directory or ``.zip``) and the older per-tile
"AWS PDS" L1C layout (``B01.jp2`` .. ``B12.jp2``, tile ``metadata.xml``, ``datastrip/metadata.xml``).

Radiometry (FACTS.md section 2): reflectance ``(DN + offset) / quantification``; L1C TOA with
``QUANTIFICATION_VALUE`` and ``RADIO_ADD_OFFSET``, L2A BOA with ``BOA_QUANTIFICATION_VALUE`` and ``BOA_ADD_OFFSET``
(offsets exist from processing baseline 04.00, -1000; before it they are 0). DN 0 is no data (NaN), DN 65535
is saturated. ESA numbers bands 0..12 in the order B01..B08, B8A, B09..B12 in every ``bandId``/``band_id``.

Opening reads only XML metadata and raster headers; pixels are read by the Dask tasks.
"""

from __future__ import annotations

import io
import json
import logging
import posixpath
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import rasterio
import shapely
import xarray as xr
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from shapely.geometry import Polygon, shape

from ..algorithms.radiometry import earth_sun_distance_au, sentinel2_reflectance
from ..errors import BandFileError, GmsdaskError, MetadataError
from ..sensors import Sensor, get_sensor
from .archive import ProductFiles
from .raster import RasterInfo, raster_info
from .scene import BandSource, MaskSource, build_scene, crs_epsg, normalize_chunks

__all__ = ["open_sentinel2", "ESA_BAND_ORDER"]

log = logging.getLogger(__name__)

#: Band names in ESA's bandId order (the index is the ``bandId``/``band_id`` of the metadata).
ESA_BAND_ORDER: tuple[str, ...] = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A",
                                   "B09", "B10", "B11", "B12")

_SAFE_METADATA = re.compile(r"(^|/)MTD_MSIL(1C|2A)\.xml$")
_AWS_TILE_METADATA = re.compile(r"(^|/)metadata\.xml$")
_IMAGE_FILE_BAND = re.compile(r"_(B\d[\dA])(?:_(\d+)m)?$")
# Parts of a tile id such as S2A_OPER_MSI_L1C_TL_EPAE_20180629T012042_A015757_T56JMM_N02.06
_TILE_MGRS = re.compile(r"_T(\d{2}[A-Z]{3})(?:_|$)")
_TILE_ABSOLUTE_ORBIT = re.compile(r"_A(\d{6})_")
_TILE_BASELINE = re.compile(r"_N(\d{2}\.\d{2})(?:_|$)")
_RESOLUTIONS_M = (10, 20, 60)  # the SAFE resolution folders, finest first
# MSK_CLASSI_B00.jp2 (baseline >= 04.00) holds three 0/1 layers, in this order (ESA product specification).
_CLASSI_LAYERS = (("MSK_CLASSI_OPAQUE", "opaque clouds"), ("MSK_CLASSI_CIRRUS", "cirrus clouds"),
                  ("MSK_CLASSI_SNOW_ICE", "snow and ice"))


# --- XML -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class XmlDoc:
    """A parsed metadata document (namespaces stripped from tag names) and its name for error messages."""

    root: ET.Element
    name: str

    def first(self, tag: str, within: str | None = None) -> ET.Element | None:
        """The first element ``tag`` anywhere (or inside the first ``within`` element)."""
        scope = self.root if within is None else self.first(within)
        return None if scope is None else next(scope.iter(tag), None)

    def optional_text(self, tag: str, within: str | None = None) -> str | None:
        element = self.first(tag, within)
        text = (element.text or "").strip() if element is not None else ""
        return text or None

    def text(self, tag: str, within: str | None = None) -> str:
        """The text of ``tag``; a ``MetadataError`` naming the file when it is missing or empty."""
        text = self.optional_text(tag, within)
        if text is None:
            raise MetadataError(self.name, f"has no {tag}" + (f" in {within}" if within else ""))
        return text

    def number(self, tag: str, within: str | None = None) -> float:
        text = self.text(tag, within)
        try:
            return float(text)
        except ValueError:
            raise MetadataError(self.name, f"{tag} {text!r} is not a number") from None

    def optional_number(self, tag: str) -> float | None:
        return self.number(tag) if self.optional_text(tag) is not None else None

    def per_band(self, tag: str) -> dict[str, float]:
        """``{band name: value}`` of every ``tag`` element with a ``bandId``/``band_id`` attribute."""
        values = {}
        for element in self.root.iter(tag):
            band_id = element.get("bandId", element.get("band_id"))
            try:
                values[ESA_BAND_ORDER[int(band_id)]] = float((element.text or "").strip())
            except (TypeError, ValueError, IndexError):
                raise MetadataError(self.name, f"{tag} bandId={band_id!r} value={element.text!r} is invalid") \
                    from None
        return values


def _strip_namespaces(root: ET.Element) -> ET.Element:
    # ESA qualifies only the top-level sections (n1:General_Info ...); local names make lookups uniform.
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = element.tag.split("}", 1)[1]
    return root


def _read_xml(files: ProductFiles, member: str) -> XmlDoc:
    """A whole XML member; unreadable or malformed XML raises ``MetadataError`` naming the member."""
    name = files.describe(member)
    try:
        root = ET.fromstring(files.read_bytes(member))
    except ET.ParseError as err:
        raise MetadataError(name, f"is not well-formed XML ({err})") from None
    return XmlDoc(_strip_namespaces(root), name)


def _read_xml_head(files: ProductFiles, member: str, last_tag: str) -> XmlDoc:
    """An XML member parsed only up to the end of its first ``last_tag`` element.

    The AWS datastrip metadata is ~13 MB of ancillary data; its radiometric info ends within the first 1 %.
    """
    name = files.describe(member)
    root: ET.Element | None = None
    try:
        for event, element in ET.iterparse(io.BytesIO(files.read_bytes(member)), events=("start", "end")):
            root = element if root is None else root
            if event == "end" and element.tag.rsplit("}", 1)[-1] == last_tag:
                break
    except ET.ParseError as err:
        raise MetadataError(name, f"is not well-formed XML ({err})") from None
    if root is None:
        raise MetadataError(name, "is empty")
    return XmlDoc(_strip_namespaces(root), name)


# --- product layout ---------------------------------------------------------------------------------------
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


def _read_product_doc(files: ProductFiles, layout: Layout) -> XmlDoc:
    if layout.name == "AWS_PDS":
        return _read_xml_head(files, layout.product_member, "Radiometric_Info")
    return _read_xml(files, layout.product_member)


# --- radiometry ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Radiometry:
    """The product's DN -> reflectance coefficients (per band) and solar constants."""

    quantification: float
    offsets: Mapping[str, float]
    solar_irradiance_w_m2_um: Mapping[str, float]
    u: float  # ESA's Earth-Sun distance correction, 1 / d^2
    nodata_dn: int
    saturated_dn: int


def _special_value(doc: XmlDoc, label: str, default: int) -> int:
    for element in doc.root.iter("Special_Values"):
        if (element.findtext("SPECIAL_VALUE_TEXT") or "").strip() == label:
            return int(float(element.findtext("SPECIAL_VALUE_INDEX") or default))
    return default


def read_radiometry(doc: XmlDoc, level: str, sensor: Sensor) -> Radiometry:
    """Quantification, offsets (0 where the product has none: baselines < 04.00), irradiances and U."""
    quantification_tag, offset_tag = (("BOA_QUANTIFICATION_VALUE", "BOA_ADD_OFFSET") if level == "L2A"
                                      else ("QUANTIFICATION_VALUE", "RADIO_ADD_OFFSET"))
    offsets = doc.per_band(offset_tag)
    quantification = doc.number(quantification_tag)
    if quantification <= 0:
        raise MetadataError(doc.name, f"{quantification_tag} {quantification} is not positive")
    return Radiometry(
        quantification=quantification,
        offsets={band: offsets.get(band, 0.0) for band in ESA_BAND_ORDER},
        solar_irradiance_w_m2_um=doc.per_band("SOLAR_IRRADIANCE"),
        u=doc.number("U", within="Reflectance_Conversion"),
        nodata_dn=_special_value(doc, "NODATA", sensor.fill_dn),
        saturated_dn=_special_value(doc, "SATURATED", sensor.saturated_dn),
    )


@dataclass(frozen=True)
class ReflectanceConversion:
    """DN -> reflectance ``(DN + offset) / quantification`` of one band; the fill DN becomes NaN. Picklable."""

    offset: float
    quantification: float
    fill_dn: int

    def __call__(self, dn: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return sentinel2_reflectance(dn, self.offset, self.quantification, self.fill_dn)


# --- band files -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BandFile:
    """One delivered file of a band and the resolution group it belongs to."""

    band: str
    member: str
    group: str


def _safe_band_files(doc: XmlDoc, layout: Layout, sensor: Sensor) -> dict[str, list[BandFile]]:
    """Band -> the files ``IMAGE_FILE`` names for it, finest resolution folder first."""
    files_by_band: dict[str, list[BandFile]] = {}
    for element in [*doc.root.iter("IMAGE_FILE"), *doc.root.iter("IMAGE_FILE_2A")]:  # _2A: Sen2Cor < 2.4
        stem = (element.text or "").strip().removesuffix(".jp2")
        match = _IMAGE_FILE_BAND.search(stem)
        if match is None or match.group(1) not in ESA_BAND_ORDER:
            continue  # TCI, AOT, WVP, SCL
        band, resolution = match.groups()
        # L2A files sit in R10m/R20m/R60m folders; L1C bands have one file on their native grid.
        group = f"r{resolution}m" if resolution else sensor.band(band).group
        files_by_band.setdefault(band, []).append(BandFile(band, posixpath.join(layout.root, stem + ".jp2"), group))
    for candidates in files_by_band.values():
        candidates.sort(key=lambda f: int(f.group[1:-1]))
    return files_by_band


def _aws_band_files(layout: Layout, sensor: Sensor) -> dict[str, list[BandFile]]:
    return {band: [BandFile(band, posixpath.join(layout.root, f"{band}.jp2"), sensor.band(band).group)]
            for band in ESA_BAND_ORDER}


def select_band_files(files: ProductFiles, candidates: Mapping[str, Sequence[BandFile]],
                      *, all_required: bool) -> tuple[list[BandFile], list[str]]:
    """The finest present file of each band, and the bands without any.

    With ``all_required`` (L1C), a band named in the metadata without its file raises ``BandFileError``.
    """
    chosen, missing = [], []
    for band in ESA_BAND_ORDER:
        options = candidates.get(band, ())
        present = [option for option in options if files.has(option.member)]
        if present:
            chosen.append(present[0])
        elif options and all_required:
            raise BandFileError(files.describe(options[0].member), f"band {band} named in the metadata is missing")
        elif options:
            missing.append(band)
    return chosen, missing


def _open_raster(files: ProductFiles, member: str, gdal_path: str | None = None) -> RasterInfo:
    return raster_info(gdal_path or files.gdal_path(member), files.describe(member))


def _band_source(files: ProductFiles, band_file: BandFile, sensor: Sensor, radiometry: Radiometry,
                 level: str) -> BandSource:
    band = sensor.band(band_file.band)
    offset = radiometry.offsets[band.name]
    attrs: dict[str, Any] = {
        "long_name": f"{sensor.platform} {sensor.sensor} band {band.name}",
        "quantity": "surface reflectance" if level == "L2A" else "TOA reflectance",
        "units": "1",
        "central_wavelength_nm": round(sensor.central_wavelength_nm(band.name), 2),
        "fwhm_nm": round(sensor.fwhm_nm(band.name), 2),
        "common_name": band.common_name,
        "native_gsd_m": band.native_gsd_m,
        "radiometric_offset": offset,
        "quantification_value": radiometry.quantification,
        "source_file": posixpath.basename(band_file.member),
    }
    irradiance = radiometry.solar_irradiance_w_m2_um.get(band.name)
    if irradiance is not None:
        attrs["solar_irradiance_w_m2_um"] = irradiance
    return BandSource(band.name, band_file.group, _open_raster(files, band_file.member),
                      ReflectanceConversion(offset, radiometry.quantification, radiometry.nodata_dn),
                      radiometry.saturated_dn, attrs)


# --- masks ------------------------------------------------------------------------------------------------------
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
            return MaskSource(kind.name, f"r{resolution}m", _open_raster(files, found[0]),
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
    return [MaskSource(name, "r60m", _open_raster(files, member, f"vrt://{gdal_path}?bands={index + 1}"),
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
    band_grids = {band.group: (band.raster.shape, band.raster.transform) for band in bands}
    placed = []
    for mask in masks:
        grid = band_grids.get(mask.group)
        if grid is None or grid == (mask.raster.shape, mask.raster.transform):
            placed.append(mask)
        else:
            log.warning("%s: grid %s differs from the %s bands' grid %s; mask left out",
                        mask.raster.name, mask.raster.shape, mask.group, grid[0])
    return placed


# --- angles ---------------------------------------------------------------------------------------------------
def _angle_values(element: ET.Element | None, doc: XmlDoc) -> np.ndarray:
    """A ``Values_List`` grid in degrees (rows north to south; ``NaN`` strings become NaN)."""
    if element is None:
        raise MetadataError(doc.name, "an angle grid lacks its Zenith or Azimuth element")
    try:
        return np.array([[float(v) for v in (row.text or "").split()] for row in element.iter("VALUES")],
                        dtype=np.float64)
    except ValueError as err:
        raise MetadataError(doc.name, f"invalid angle grid ({err})") from None


def _view_vectors(zenith_deg: np.ndarray, azimuth_deg: np.ndarray) -> np.ndarray:
    """Unit viewing vectors ``(east, north, up)`` stacked on the first axis."""
    zenith, azimuth = np.deg2rad(zenith_deg), np.deg2rad(azimuth_deg)
    return np.stack([np.sin(zenith) * np.sin(azimuth), np.sin(zenith) * np.cos(azimuth), np.cos(zenith)])


def _nanmean(stack: np.ndarray) -> np.ndarray:
    """Mean over the first axis ignoring NaN; NaN where every value is NaN (without numpy's warning)."""
    count = np.sum(~np.isnan(stack), axis=0)
    total = np.nansum(stack, axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _mean_view_angles(tile: XmlDoc) -> tuple[np.ndarray, np.ndarray] | None:
    """Viewing zenith and azimuth (degrees), averaged over detectors and bands; None if the tile has none.

    Per band, each detector's grid has values only where that detector sees (NaN elsewhere, small overlaps), so
    the NaN-mean of the detectors merges them; the bands are then NaN-averaged. The means are taken of unit
    viewing vectors, not of angles: near nadir, neighbouring detectors look from opposite sides (azimuths ~180
    degrees apart) and an average of azimuths would be meaningless.
    """
    vectors_by_band: dict[str, list[np.ndarray]] = {}
    for grids in tile.root.iter("Viewing_Incidence_Angles_Grids"):
        vectors = _view_vectors(_angle_values(grids.find("Zenith"), tile),
                                _angle_values(grids.find("Azimuth"), tile))
        vectors_by_band.setdefault(grids.get("bandId", ""), []).append(vectors)
    if not vectors_by_band:
        return None
    try:
        mean = _nanmean(np.stack([_nanmean(np.stack(vectors)) for vectors in vectors_by_band.values()]))
    except ValueError as err:
        raise MetadataError(tile.name, f"viewing angle grids differ in shape ({err})") from None
    zenith = np.rad2deg(np.arctan2(np.hypot(mean[0], mean[1]), mean[2]))
    azimuth = np.rad2deg(np.arctan2(mean[0], mean[1])) % 360.0
    return zenith, azimuth


def angles_dataset(tile: XmlDoc, crs: CRS) -> xr.Dataset | None:
    """Sun and mean viewing angle grids (degrees, float32) on their own ``x``/``y`` in the tile CRS.

    The values are samples at the grid nodes, the first node at the tile's upper-left corner (ULX, ULY): on the
    real products the nodes with a value for a detector are exactly those inside its footprint, which a
    half-step (cell-centre) registration contradicts. 23 nodes at 5000 m span the 109.8 km tile.
    """
    sun = tile.first("Sun_Angles_Grid")
    if sun is None:
        log.warning("%s: no Sun_Angles_Grid; the scene has no angles group", tile.name)
        return None
    sun_zenith = _angle_values(sun.find("Zenith"), tile)
    sun_azimuth = _angle_values(sun.find("Azimuth"), tile)
    col_step = tile.number("COL_STEP", within="Sun_Angles_Grid")
    row_step = tile.number("ROW_STEP", within="Sun_Angles_Grid")
    x = tile.number("ULX") + np.arange(sun_zenith.shape[1]) * col_step
    y = tile.number("ULY") - np.arange(sun_zenith.shape[0]) * row_step
    variables = {"sun_zenith": sun_zenith, "sun_azimuth": sun_azimuth}
    view = _mean_view_angles(tile)
    if view is not None and view[0].shape == sun_zenith.shape:
        variables |= {"view_zenith": view[0], "view_azimuth": view[1]}
    elif view is not None:
        log.warning("%s: viewing angle grids %s differ from the sun grid %s; left out",
                    tile.name, view[0].shape, sun_zenith.shape)
    dataset = xr.Dataset(
        {name: (("y", "x"), values.astype(np.float32), {"units": "degree", "long_name": name.replace("_", " ")})
         for name, values in variables.items()},
        coords={"x": ("x", x, {"units": "m", "axis": "X"}), "y": ("y", y, {"units": "m", "axis": "Y"})},
        attrs={"description": "angle grids of the tile metadata, sampled at the nodes (first node at ULX, ULY); "
                              "viewing angles: mean viewing direction over detectors and bands"},
    )
    return dataset.rio.write_crs(crs)


# --- root attributes -----------------------------------------------------------------------------------------------
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


def _platform(product: XmlDoc, tile_id: str) -> str:
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


# --- entry point ---------------------------------------------------------------------------------------------------
def _band_files(files: ProductFiles, layout: Layout, product: XmlDoc,
                sensor: Sensor) -> tuple[list[BandFile], list[str]]:
    """The band files to read and (L2A) the bands present at no resolution; raises if no band is usable."""
    candidates = (_aws_band_files(layout, sensor) if layout.name == "AWS_PDS"
                  else _safe_band_files(product, layout, sensor))
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
                   chunks: int | Sequence[int] | Mapping[str, int] | None = None) -> xr.DataTree:
    """Open a Sentinel-2 L1C/L2A product lazily (see ``gmsdask.io.open_scene``).

    Parameters
    ----------
    files
        The product container: a ``.SAFE`` directory, a zipped SAFE, or an AWS PDS tile folder/zip.
    chunks
        Dask chunk size in pixels: an int, ``(y, x)`` or ``{"y": .., "x": ..}``; default 2048 x 2048.

    Returns
    -------
    xarray.DataTree
        ``r10m``/``r20m``/``r60m`` groups of float32 reflectance (NaN = no data) with masks, an ``angles``
        group, and the homogenized metadata in root attrs. Only XML metadata and raster headers are read.
    """
    layout = find_layout(files)
    product = _read_product_doc(files, layout)
    tile = _read_xml(files, layout.tile_member)
    platform = _platform(product, tile.optional_text("TILE_ID") or posixpath.basename(layout.root))
    sensor = get_sensor(platform)
    radiometry = read_radiometry(product, layout.level, sensor)
    band_files, missing = _band_files(files, layout, product, sensor)
    bands = [_band_source(files, band_file, sensor, radiometry, layout.level) for band_file in band_files]
    masks = place_masks(mask_sources(files, layout, product), bands)
    crs = bands[0].raster.crs
    if crs is None:
        raise BandFileError(bands[0].raster.name, "band raster has no coordinate reference system")
    attrs = root_attrs(files, layout, product, tile, radiometry, platform, crs_epsg(crs), missing)
    angles = angles_dataset(tile, crs)
    return build_scene(bands, masks, attrs, normalize_chunks(chunks), sensor=sensor,
                       extra_groups={"angles": angles} if angles is not None else None)
