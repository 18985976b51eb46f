"""Sentinel-2 band files and their radiometry: DN to reflectance, the band files chosen per band."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...algorithms.radiometry import sentinel2_reflectance
from ...errors import BandFileError, MetadataError
from ...sensors import Sensor
from ..archive import ProductFiles
from ..raster import RasterInfo, raster_info
from ..scene import BandSource
from .layout import Layout
from .xml import ESA_BAND_ORDER, XmlDoc

_IMAGE_FILE_BAND = re.compile(r"_(B\d[\dA])(?:_(\d+)m)?$")

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


@dataclass(frozen=True)
class BandFile:
    """One delivered file of a band and the resolution group it belongs to."""

    band: str
    member: str
    group: str


def safe_band_files(doc: XmlDoc, layout: Layout, sensor: Sensor) -> dict[str, list[BandFile]]:
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


def aws_band_files(layout: Layout, sensor: Sensor) -> dict[str, list[BandFile]]:
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


def open_raster(files: ProductFiles, member: str, gdal_path: str | None = None) -> RasterInfo:
    return raster_info(gdal_path or files.gdal_path(member), files.describe(member))


def band_source(files: ProductFiles, band_file: BandFile, sensor: Sensor, radiometry: Radiometry,
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
    return BandSource(band.name, band_file.group, open_raster(files, band_file.member),
                      ReflectanceConversion(offset, radiometry.quantification, radiometry.nodata_dn),
                      radiometry.saturated_dn, attrs)
