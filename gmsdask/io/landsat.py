"""Landsat Collection 1 and 2, Level-1 and Level-2 products (TM, ETM+, OLI/TIRS) as scene trees.

Radiometry (FACTS.md section 2):

- Level-1 reflective bands: TOA reflectance ``(REFLECTANCE_MULT * Q + REFLECTANCE_ADD) / cos(theta_z)`` with the
  **per-pixel** solar zenith ``theta_z``, computed from the acquisition time and each pixel's position on a 5 km
  grid and interpolated bilinearly (USGS' scene-centre ``SUN_ELEVATION`` is off by up to ~1 degree at the
  scene edges).
- Level-1 thermal bands: brightness temperature ``K2 / ln(K1 / L + 1)``, ``L = RADIANCE_MULT * Q + RADIANCE_ADD``.
- Level-2: surface reflectance and surface temperature through the ``LEVEL2_*_PARAMETERS`` rescaling.
- ``Q = 0`` is fill (NaN); ``Q = QUANTIZE_CAL_MAX`` is saturated.

Angles: the ``angles`` group holds the solar angles on the 5 km grid and, when the product's ``_ANG.txt``
carries the USGS angle coefficients (every real Collection 1/2 product, OLI and TM/ETM+ alike), the view
angles of the red band on the same nodes (``gmsdask.io.landsat_ang``; extrapolated to the nodes next to the
imaged swath, NaN beyond).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import xarray as xr
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from shapely.geometry import Polygon

from ..algorithms.interpolation import bilinear_from_grid
from ..algorithms.radiometry import (
    brightness_temperature,
    earth_sun_distance_au,
    landsat_toa_reflectance,
    scaled_reflectance,
    solar_position,
)
from ..errors import BandFileError, MetadataError
from ..sensors import Band, Sensor, get_sensor
from .archive import ProductFiles
from .decoded_copy import DecodedCopy
from .landsat_ang import ang_angles_at
from .mtl import LandsatMetadata, parse_mtl_xml, parse_odl
from .product_name import LANDSAT_PRODUCT_ID
from .raster import RasterInfo, raster_info
from .scene import BandSource, MaskSource, build_scene, crs_epsg, normalize_chunks

__all__ = ["open_landsat", "read_landsat_metadata", "SunAngleGrid"]

log = logging.getLogger(__name__)

_FILE_GROUPS = ("PRODUCT_CONTENTS", "PRODUCT_METADATA")
_L1_RESCALING = ("LEVEL1_RADIOMETRIC_RESCALING", "RADIOMETRIC_RESCALING")
_L1_PIXEL_RANGE = ("LEVEL1_MIN_MAX_PIXEL_VALUE", "MIN_MAX_PIXEL_VALUE")
_THERMAL_CONSTANTS = ("LEVEL1_THERMAL_CONSTANTS", "TIRS_THERMAL_CONSTANTS", "THERMAL_CONSTANTS")
_L2_REFLECTANCE = ("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS",)
_L2_TEMPERATURE = ("LEVEL2_SURFACE_TEMPERATURE_PARAMETERS",)
_PROJECTION = ("PROJECTION_ATTRIBUTES", "PRODUCT_METADATA", "PROJECTION_PARAMETERS")
_QUALITY_FILES = {  # metadata key -> variable name
    "FILE_NAME_BAND_QUALITY": "BQA",
    "FILE_NAME_QUALITY_L1_PIXEL": "QA_PIXEL",
    "FILE_NAME_QUALITY_L1_RADIOMETRIC_SATURATION": "QA_RADSAT",
}
_SUN_GRID_SPACING_M = 5000.0


def read_landsat_metadata(files: ProductFiles, mtl_member: str | None = None) -> tuple[LandsatMetadata, str]:
    """The product's MTL (``_MTL.txt`` preferred, else ``_MTL.xml``) and its member name."""
    if mtl_member is None:
        candidates = files.find("*_MTL.txt") or files.find("*_MTL.xml")
        if not candidates:
            raise MetadataError(files.path, "no Landsat metadata file (*_MTL.txt or *_MTL.xml)")
        if len(candidates) > 1:
            raise MetadataError(files.path, f"several MTL files, open one of them directly: {', '.join(candidates)}")
        mtl_member = candidates[0]
    source = files.describe(mtl_member)
    text = files.read_text(mtl_member)
    tree = parse_mtl_xml(text, source) if mtl_member.endswith(".xml") else parse_odl(text, source)
    return LandsatMetadata(tree, source), mtl_member


@functools.lru_cache(maxsize=64)
def _transformer_to_lonlat(crs_wkt: str) -> Transformer:
    return Transformer.from_crs(ProjCRS.from_wkt(crs_wkt), "EPSG:4326", always_xy=True)


class SunAngleGrid:
    """Solar zenith/azimuth (degrees) on a coarse regular grid in the scene CRS, at one UTC instant.

    Interpolating a 5 km grid bilinearly is within 0.001 degree of the exact per-pixel position and costs one
    compiled pass over the chunk's pixels (:func:`gmsdask.algorithms.interpolation.bilinear_from_grid`).
    """

    def __init__(self, crs_wkt: str, left: float, top: float, right: float, bottom: float,
                 time: datetime) -> None:
        self.x = np.linspace(left, right, max(2, int(np.ceil((right - left) / _SUN_GRID_SPACING_M)) + 1))
        self.y = np.linspace(top, bottom, max(2, int(np.ceil((top - bottom) / _SUN_GRID_SPACING_M)) + 1))
        grid_x, grid_y = np.meshgrid(self.x, self.y)
        lon, lat = _transformer_to_lonlat(crs_wkt).transform(grid_x, grid_y)
        self.zenith, self.azimuth = solar_position(lat, lon, time)
        self.cos_zenith = np.cos(np.deg2rad(self.zenith))

    def cos_zenith_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Cosine of the solar zenith at every pixel centre of the rectilinear grid ``y`` x ``x`` (float32)."""
        return bilinear_from_grid(self.y, self.x, self.cos_zenith, y, x)  # float32 already

    def as_dataset(self) -> xr.Dataset:
        coords = {"y": ("y", self.y, {"units": "m"}), "x": ("x", self.x, {"units": "m"})}
        return xr.Dataset(
            {"sun_zenith": (("y", "x"), self.zenith.astype(np.float32), {"units": "degree"}),
             "sun_azimuth": (("y", "x"), self.azimuth.astype(np.float32), {"units": "degree"})},
            coords=coords,
            attrs={"description": "solar angles computed per grid node from the acquisition time"},
        )


def _read_ang(files: ProductFiles) -> LandsatMetadata | None:
    """The product's parsed ``_ANG.txt``, or None without one."""
    members = files.find("*_ANG.txt")
    if not members:
        return None
    source = files.describe(members[0])
    return LandsatMetadata(parse_odl(files.read_text(members[0]), source), source)


def _angles_group(sun: SunAngleGrid, ang: LandsatMetadata | None, sensor: Sensor) -> xr.Dataset:
    """The coarse ``angles`` group: computed sun angles and, where the ANG file has the coefficients, the view
    angles of the sensor's red band (towards the sensor, clockwise from north; NaN beyond the nodes next to the
    swath)."""
    angles = sun.as_dataset()
    red = [band for band in sensor.bands if band.common_name == "red"]
    if ang is None or not red:
        return angles
    band = int(red[0].name[1:])
    grid_x, grid_y = np.meshgrid(sun.x, sun.y)
    # nodes up to one diagonal node spacing outside the swath get extrapolated angles: the pixels between the
    # last node inside and the swath edge are then interpolated, not held at the last node's angles (0.5 deg)
    view = ang_angles_at(ang, band, grid_x, grid_y, extrapolate_m=1.5 * _SUN_GRID_SPACING_M)
    if view is None:  # an ANG file without satellite coefficients (synthetic products)
        return angles
    for name in ("view_zenith", "view_azimuth"):
        angles[name] = (("y", "x"), view[name].astype(np.float32), {"units": "degree"})
    return angles.assign_attrs(
        description="solar angles computed per grid node from the acquisition time; view angles (towards the "
                    f"sensor, clockwise from north) from the ANG.txt coefficients of band {band}",
        view_angles_source=f"ANG.txt coefficients (band B{band}, 5 km nodes)")


def _toa_block(dn: np.ndarray, x: np.ndarray, y: np.ndarray, *, mult: float, add: float,
               sun: SunAngleGrid, fill_dn: int) -> np.ndarray:
    return landsat_toa_reflectance(dn, mult, add, sun.cos_zenith_at(x, y), fill_dn)


def _thermal_block(dn: np.ndarray, x: np.ndarray, y: np.ndarray, *, mult: float, add: float, k1: float,
                   k2: float, fill_dn: int) -> np.ndarray:
    return brightness_temperature(dn, mult, add, k1, k2, fill_dn)


def _rescaled_block(dn: np.ndarray, x: np.ndarray, y: np.ndarray, *, mult: float, add: float,
                    fill_dn: int) -> np.ndarray:
    return scaled_reflectance(dn, mult, add, fill_dn)


def _band_key(band: Band, level2: bool) -> str:
    suffix = band.name[1:]
    return f"ST_B{suffix}" if level2 and band.kind == "thermal" else suffix


def _acquisition_time(meta: LandsatMetadata) -> datetime:
    date = meta.text("DATE_ACQUIRED")
    clock = meta.text("SCENE_CENTER_TIME").rstrip("Z")
    clock = re.sub(r"(\.\d{6})\d+", r"\1", clock)
    try:
        return datetime.fromisoformat(f"{date}T{clock}").replace(tzinfo=timezone.utc)
    except ValueError:
        raise MetadataError(meta.source, f"DATE_ACQUIRED/SCENE_CENTER_TIME {date} {clock} is no valid time") \
            from None


def _footprint(ang: LandsatMetadata | None, meta: LandsatMetadata, crs_wkt: str) -> tuple[str, str]:
    """WKT lon/lat polygon of the true data corners (from ``_ANG.txt``), else of the product corners."""
    to_lonlat = _transformer_to_lonlat(crs_wkt)
    # OLI/TIRS ANG files carry the true image corners; TM/ETM+ ANG files do not.
    if ang is not None and isinstance(ang.find("BAND01_L1T_IMAGE_CORNER_LINES"), list):
        lines = ang.numbers("BAND01_L1T_IMAGE_CORNER_LINES")
        samples = ang.numbers("BAND01_L1T_IMAGE_CORNER_SAMPS")
        # MTL corner coordinates are pixel centres; ANG lines/samples count from that centre.
        ulx = meta.number("CORNER_UL_PROJECTION_X_PRODUCT", _PROJECTION)
        uly = meta.number("CORNER_UL_PROJECTION_Y_PRODUCT", _PROJECTION)
        cell = meta.number("GRID_CELL_SIZE_REFLECTIVE", _PROJECTION)
        xs = [ulx + s * cell for s in samples]
        ys = [uly - line * cell for line in lines]
        lon, lat = to_lonlat.transform(xs, ys)
        return Polygon(zip(lon, lat)).wkt, "ANG.txt true image corners"
    corners = ("UL", "UR", "LR", "LL")
    lon = [meta.number(f"CORNER_{c}_LON_PRODUCT", _PROJECTION) for c in corners]
    lat = [meta.number(f"CORNER_{c}_LAT_PRODUCT", _PROJECTION) for c in corners]
    return Polygon(zip(lon, lat)).wkt, "MTL product corners (no true corners in the metadata)"


def _open_raster(files: ProductFiles, member: str) -> RasterInfo:
    if not files.has(member):
        raise BandFileError(files.describe(member), "band file named in the metadata is missing")
    return raster_info(files.gdal_path(member), files.describe(member))


def _band_sources(files: ProductFiles, meta: LandsatMetadata, product_dir: str, sensor: Sensor, level2: bool,
                  sun: SunAngleGrid | None, missing: list[str]) -> list[BandSource]:
    sources = []
    for band in sensor.bands:
        key = _band_key(band, level2)
        file_name = meta.find(f"FILE_NAME_BAND_{key}", _FILE_GROUPS)
        if file_name is None:
            continue
        member = product_dir + str(file_name)
        if level2 and band.kind == "thermal" and not files.has(member):
            # USGS distributes the surface-temperature layers as separate downloads; SR alone is a product.
            missing.append(band.name)
            continue
        raster = _open_raster(files, member)
        attrs: dict[str, Any] = {
            "long_name": f"{sensor.platform} {sensor.sensor} band {band.name}",
            "central_wavelength_nm": round(sensor.central_wavelength_nm(band.name), 2),
            "fwhm_nm": round(sensor.fwhm_nm(band.name), 2),
            "common_name": band.common_name,
            "native_gsd_m": band.native_gsd_m,
            "source_file": str(file_name),
        }
        saturated_dn: int | None = None
        if level2:
            groups = _L2_TEMPERATURE if band.kind == "thermal" else _L2_REFLECTANCE
            prefix = "TEMPERATURE" if band.kind == "thermal" else "REFLECTANCE"
            mult = meta.number(f"{prefix}_MULT_BAND_{key}", groups)
            add = meta.number(f"{prefix}_ADD_BAND_{key}", groups)
            convert = functools.partial(_rescaled_block, mult=mult, add=add, fill_dn=sensor.fill_dn)
            attrs |= {"units": "K" if band.kind == "thermal" else "1", "scale_mult": mult, "scale_add": add,
                      "quantity": "surface temperature" if band.kind == "thermal" else "surface reflectance"}
        elif band.kind == "thermal":
            mult = meta.number(f"RADIANCE_MULT_BAND_{key}", _L1_RESCALING)
            add = meta.number(f"RADIANCE_ADD_BAND_{key}", _L1_RESCALING)
            k1 = meta.number(f"K1_CONSTANT_BAND_{key}", _THERMAL_CONSTANTS)
            k2 = meta.number(f"K2_CONSTANT_BAND_{key}", _THERMAL_CONSTANTS)
            convert = functools.partial(_thermal_block, mult=mult, add=add, k1=k1, k2=k2, fill_dn=sensor.fill_dn)
            attrs |= {"units": "K", "quantity": "brightness temperature", "radiance_mult": mult,
                      "radiance_add": add, "k1": k1, "k2": k2}
        else:
            assert sun is not None
            mult = meta.number(f"REFLECTANCE_MULT_BAND_{key}", _L1_RESCALING)
            add = meta.number(f"REFLECTANCE_ADD_BAND_{key}", _L1_RESCALING)
            convert = functools.partial(_toa_block, mult=mult, add=add, sun=sun, fill_dn=sensor.fill_dn)
            attrs |= {"units": "1", "quantity": "TOA reflectance", "reflectance_mult": mult,
                      "reflectance_add": add, "solar_zenith": "per pixel, computed (5 km grid, bilinear)"}
        if not level2:
            qcal_max = meta.find(f"QUANTIZE_CAL_MAX_BAND_{key}", _L1_PIXEL_RANGE)
            saturated_dn = int(float(qcal_max)) if qcal_max is not None else sensor.saturated_dn
        sources.append(BandSource(band.name, band.group, raster, convert, saturated_dn, attrs))
    if not sources:
        raise BandFileError(files.describe(meta.source), "the metadata names no band files of this sensor")
    return sources


def _mask_sources(files: ProductFiles, meta: LandsatMetadata, product_dir: str,
                  missing: list[str]) -> list[MaskSource]:
    masks = []
    for key, name in _QUALITY_FILES.items():
        file_name = meta.find(key, _FILE_GROUPS)
        if file_name is None:
            continue
        member = product_dir + str(file_name)
        if not files.has(member):
            missing.append(name)
            continue
        masks.append(MaskSource(name, "r30m", _open_raster(files, member),
                                {"long_name": f"Landsat {name} quality bits", "source_file": str(file_name)}))
    return masks


def _platform(meta: LandsatMetadata) -> str:
    spacecraft = meta.text("SPACECRAFT_ID").upper().replace("LANDSAT8", "LANDSAT_8")
    return re.sub(r"^LANDSAT_?(\d)$", r"LANDSAT_\1", spacecraft)


def open_landsat(files: ProductFiles, *, chunks: int | Sequence[int] | Mapping[str, int] | None = None,
                 mtl_member: str | None = None, overview_m: float | None = None,
                 decoded: DecodedCopy | None = None) -> xr.DataTree:
    """Open a Landsat product lazily (see ``gmsdask.io.open_scene``; ``overview_m`` reads a first look,
    ``decoded`` a copy of the decoded bands: it covers JPEG 2000 files only, none of Landsat's)."""
    meta, mtl_member = read_landsat_metadata(files, mtl_member)
    platform = _platform(meta)
    try:
        sensor = get_sensor(platform)
    except Exception:
        raise MetadataError(meta.source, f"SPACECRAFT_ID {platform} is not a supported Landsat platform") from None
    level = meta.find("PROCESSING_LEVEL", ("PRODUCT_CONTENTS",)) or meta.text("DATA_TYPE", ("PRODUCT_METADATA",))
    level2 = str(level).startswith("L2")
    product_id = meta.find("LANDSAT_PRODUCT_ID") or LANDSAT_PRODUCT_ID.search(mtl_member).group(0)  # type: ignore[union-attr]
    time = _acquisition_time(meta)
    chunk_rows_cols = normalize_chunks(chunks)
    product_dir = mtl_member.rsplit("/", 1)[0] + "/" if "/" in mtl_member else ""  # files sit beside the MTL
    missing: list[str] = []

    # The grid of the first band fixes the CRS and the extent of the solar-angle grid.
    named = [meta.find(f"FILE_NAME_BAND_{_band_key(band, level2)}", _FILE_GROUPS) for band in sensor.bands
             if band.product_gsd_m == 30]
    named = [name for name in named if name is not None]
    if not named:
        raise MetadataError(meta.source, "the metadata names no 30 m band files (FILE_NAME_BAND_n)")
    probe = _open_raster(files, product_dir + str(named[0]))
    if probe.crs is None:
        raise BandFileError(probe.name, "band raster has no coordinate reference system")
    left, top = probe.transform.c, probe.transform.f
    right, bottom = left + probe.width * probe.transform.a, top + probe.height * probe.transform.e
    sun = SunAngleGrid(probe.crs.to_wkt(), left, top, right, bottom, time)

    bands = _band_sources(files, meta, product_dir, sensor, level2, sun, missing)
    masks = _mask_sources(files, meta, product_dir, missing)
    ang = _read_ang(files)
    footprint, footprint_source = _footprint(ang, meta, probe.crs.to_wkt())
    if missing:
        log.warning("%s: files named in the metadata are not present and are left out: %s",
                    files.path, ", ".join(missing))
    attrs: dict[str, Any] = {
        "platform": platform,
        "sensor": sensor.sensor,
        "product_id": str(product_id),
        "product_path": str(files.path),
        "processing_level": str(level),
        "acquisition_time": time.isoformat().replace("+00:00", "Z"),
        "sun_elevation_deg": meta.number("SUN_ELEVATION"),
        "sun_azimuth_deg": meta.number("SUN_AZIMUTH"),
        "earth_sun_distance_au": earth_sun_distance_au(time),
        "cloud_cover_pct": meta.number("CLOUD_COVER"),
        "footprint": footprint,
        "footprint_source": footprint_source,
        "footprint_exact": footprint_source.startswith("ANG.txt"),
        "processing_baseline": "",
        "epsg": crs_epsg(probe.crs),
        "mgrs_tile": "",
        "wrs_path": int(meta.number("WRS_PATH")),
        "wrs_row": int(meta.number("WRS_ROW")),
        "collection": int(meta.number("COLLECTION_NUMBER")),
        "metadata_file": mtl_member,
        "missing_bands": missing,
        "fill_dn": sensor.fill_dn,
    }
    return build_scene(bands, masks, attrs, chunk_rows_cols, sensor=sensor,
                       extra_groups={"angles": _angles_group(sun, ang, sensor).rio.write_crs(probe.crs)},
                       overview_m=overview_m, decoded=decoded)
