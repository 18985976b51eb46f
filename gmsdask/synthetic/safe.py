"""The XML of a Sentinel-2 SAFE: ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``, the granule's ``MTD_TL.xml`` and
``manifest.safe``, modelled on real products (L1C 02.06 T56JMM, L2A 04.00 T29UNU) at processing baseline
05.10: radiometric offsets of -1000, NODATA 0, SATURATED 65535.
"""

from __future__ import annotations

import hashlib
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from ..sensors import get_sensor, spectral_response
from .grid import PixelGrid
from .pipeline import utc_iso

__all__ = ["SafeInfo", "product_metadata_xml", "tile_metadata_xml", "manifest_xml", "MTD_BAND_NAMES",
           "SCENE_CLASSES"]

_NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_PSD = "https://psd-14.sentinel2.eo.esa.int/PSD"
#: The MTD's physical band names, in bandId order (the files use B01 ... B8A ... B12).
MTD_BAND_NAMES = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
#: Exoatmospheric solar irradiance per bandId, W m-2 um-1, as written in ESA's L1C/L2A metadata
#: (S2A from the real T29UNU product here; S2B as ESA publishes it; S2C taken equal to S2B).
_SOLAR_IRRADIANCE = {
    "SENTINEL_2A": (1884.69, 1959.66, 1823.24, 1512.06, 1424.64, 1287.61, 1162.08, 1041.63, 955.32, 812.92,
                    367.15, 245.59, 85.25),
    "SENTINEL_2B": (1874.30, 1959.75, 1824.93, 1512.79, 1425.78, 1291.13, 1175.57, 1041.28, 953.93, 817.58,
                    365.41, 247.08, 87.75),
}
_SOLAR_IRRADIANCE["SENTINEL_2C"] = _SOLAR_IRRADIANCE["SENTINEL_2B"]
#: PHYSICAL_GAINS of the real S2A product (not used by any conversion; kept for layout fidelity).
_PHYSICAL_GAINS = (4.10589348, 3.75167664, 4.17821228, 4.50978749, 5.19090354, 4.85492584, 4.51619442,
                   6.13591171, 5.1160038, 8.49525017, 54.83199041, 35.15974393, 106.2130944)
#: Sen2Cor scene classification codes.
SCENE_CLASSES = ("NODATA", "SATURATED_DEFECTIVE", "DARK_FEATURE_SHADOW", "CLOUD_SHADOW", "VEGETATION",
                 "NOT_VEGETATED", "WATER", "UNCLASSIFIED", "CLOUD_MEDIUM_PROBA", "CLOUD_HIGH_PROBA", "THIN_CIRRUS",
                 "SNOW_ICE")


@dataclass(frozen=True)
class SafeInfo:
    """What the SAFE metadata say about one product."""

    level: str                    # "L1C" or "L2A"
    platform: str
    tile: str
    product_name: str             # without .SAFE
    granule_name: str
    sensing_time: datetime
    generation_time: datetime
    baseline: str                 # "05.10"
    relative_orbit: int
    absolute_orbit: int
    image_files: list[str]        # relative to the SAFE, without .jp2
    mask_files: list[tuple[str, str]]  # (type, path relative to the SAFE)
    grids: dict[int, PixelGrid]   # resolution -> grid
    footprint_latlon: list[tuple[float, float]]
    cloud_cover_pct: float
    earth_sun_distance_au: float
    quality: dict[str, float]     # Image_Content_QI percentages and values

    @property
    def mission(self) -> str:
        return "S2" + self.platform[-1]

    @property
    def datastrip_id(self) -> str:
        level = "L2A" if self.level == "L2A" else "L1C"
        return (f"{self.mission}_OPER_MSI_{level}_DS_SYNT_{self.generation_time:%Y%m%dT%H%M%S}_"
                f"S{self.sensing_time:%Y%m%dT%H%M%S}_N{self.baseline}")

    def tile_id(self, level: str) -> str:
        return (f"{self.mission}_OPER_MSI_{level}_TL_SYNT_{self.generation_time:%Y%m%dT%H%M%S}_"
                f"A{self.absolute_orbit:06d}_T{self.tile}_N{self.baseline}")


def _sub(parent: ET.Element, tag: str, text: object | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = str(text)
    return element


def _serialize(root: ET.Element) -> bytes:
    ET.indent(root, space="  ")
    return b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"


def _root(tag: str, schema: str) -> tuple[ET.Element, str]:
    ns = f"{_PSD}/{schema}.xsd"
    ET.register_namespace("n1", ns)
    ET.register_namespace("xsi", _NS_XSI)
    root = ET.Element(f"{{{ns}}}{tag}", {f"{{{_NS_XSI}}}schemaLocation": ns})
    return root, ns


def _spectral_information(parent: ET.Element, platform: str) -> None:
    sensor = get_sensor(platform)
    info_list = _sub(parent, "Spectral_Information_List")
    for band_id, mtd_name in enumerate(MTD_BAND_NAMES):
        band = _file_band(mtd_name)
        srf = spectral_response(platform, band)
        relevant = np.flatnonzero(srf.response >= 0.001 * srf.response.max())
        lo, hi = relevant[0], relevant[-1]
        info = _sub(info_list, "Spectral_Information", bandId=str(band_id), physicalBand=mtd_name)
        _sub(info, "RESOLUTION", int(sensor.band(band).native_gsd_m))
        wavelength = _sub(info, "Wavelength")
        _sub(wavelength, "MIN", int(srf.wavelength_nm[lo]), unit="nm")
        _sub(wavelength, "MAX", int(srf.wavelength_nm[hi]), unit="nm")
        _sub(wavelength, "CENTRAL", f"{srf.central_wavelength_nm:.1f}", unit="nm")
        response = _sub(info, "Spectral_Response")
        _sub(response, "STEP", 1, unit="nm")
        values = srf.response[lo:hi + 1] / srf.response.max()
        _sub(response, "VALUES", " ".join(f"{v:.8g}" for v in values))


def _file_band(mtd_name: str) -> str:
    """``B1`` -> ``B01``, ``B8A`` -> ``B8A``."""
    return mtd_name if mtd_name == "B8A" else f"B{int(mtd_name[1:]):02d}"


def product_metadata_xml(info: SafeInfo) -> bytes:
    """``MTD_MSIL1C.xml`` or ``MTD_MSIL2A.xml``."""
    l2a = info.level == "L2A"
    root, ns = _root("Level-2A_User_Product" if l2a else "Level-1C_User_Product",
                     "User_Product_Level-2A" if l2a else "User_Product_Level-1C")
    general = _sub(root, f"{{{ns}}}General_Info")
    product = _sub(general, "Product_Info")
    _sub(product, "PRODUCT_START_TIME", utc_iso(info.sensing_time))
    _sub(product, "PRODUCT_STOP_TIME", utc_iso(info.sensing_time))
    _sub(product, "PRODUCT_URI", info.product_name + ".SAFE")
    _sub(product, "PROCESSING_LEVEL", "Level-2A" if l2a else "Level-1C")
    _sub(product, "PRODUCT_TYPE", "S2MSI2A" if l2a else "S2MSI1C")
    _sub(product, "PROCESSING_BASELINE", info.baseline)
    _sub(product, "PRODUCT_DOI", f"https://doi.org/10.5270/S2_-{'znk9xsj' if l2a else '742ikth'}")
    _sub(product, "GENERATION_TIME", utc_iso(info.generation_time, 6))
    _sub(product, "PREVIEW_IMAGE_URL", "Not applicable")
    _sub(product, "PREVIEW_GEO_INFO", "Not applicable")
    datatake = _sub(product, "Datatake", datatakeIdentifier=f"G{info.mission}_{info.sensing_time:%Y%m%dT%H%M%S}_"
                                                            f"{info.absolute_orbit:06d}_N{info.baseline}")
    _sub(datatake, "SPACECRAFT_NAME", f"Sentinel-{info.platform[-2:]}")
    _sub(datatake, "DATATAKE_TYPE", "INS-NOBS")
    _sub(datatake, "DATATAKE_SENSING_START", utc_iso(info.sensing_time))
    _sub(datatake, "SENSING_ORBIT_NUMBER", info.relative_orbit)
    _sub(datatake, "SENSING_ORBIT_DIRECTION", "DESCENDING")
    _sub(_sub(product, "Query_Options", completeSingleTile="true"), "PRODUCT_FORMAT", "SAFE_COMPACT")
    granule = _sub(_sub(_sub(product, "Product_Organisation"), "Granule_List"), "Granule",
                   datastripIdentifier=info.datastrip_id, granuleIdentifier=info.tile_id(info.level),
                   imageFormat="JPEG2000")
    for name in info.image_files:
        _sub(granule, "IMAGE_FILE", name)

    image = _sub(general, "Product_Image_Characteristics")
    for text, index in (("NODATA", 0), ("SATURATED", 65535)):
        special = _sub(image, "Special_Values")
        _sub(special, "SPECIAL_VALUE_TEXT", text)
        _sub(special, "SPECIAL_VALUE_INDEX", index)
    order = _sub(image, "Image_Display_Order")
    for channel, value in (("RED_CHANNEL", 3), ("GREEN_CHANNEL", 2), ("BLUE_CHANNEL", 1)):
        _sub(order, channel, value)
    if l2a:
        quantification = _sub(image, "QUANTIFICATION_VALUES_LIST")
        _sub(quantification, "BOA_QUANTIFICATION_VALUE", 10000, unit="none")
        _sub(quantification, "AOT_QUANTIFICATION_VALUE", "1000.0", unit="none")
        _sub(quantification, "WVP_QUANTIFICATION_VALUE", "1000.0", unit="cm")
        offsets = _sub(image, "BOA_ADD_OFFSET_VALUES_LIST")
        for band_id in range(13):
            _sub(offsets, "BOA_ADD_OFFSET", -1000, band_id=str(band_id))
    else:
        _sub(image, "QUANTIFICATION_VALUE", 10000, unit="none")
        offsets = _sub(image, "Radiometric_Offset_List")
        for band_id in range(13):
            _sub(offsets, "RADIO_ADD_OFFSET", -1000, band_id=str(band_id))
    conversion = _sub(image, "Reflectance_Conversion")
    _sub(conversion, "U", repr(1.0 / info.earth_sun_distance_au ** 2))
    irradiance = _sub(conversion, "Solar_Irradiance_List")
    for band_id, value in enumerate(_SOLAR_IRRADIANCE[info.platform]):
        _sub(irradiance, "SOLAR_IRRADIANCE", f"{value:.2f}", bandId=str(band_id), unit="W/m²/µm")
    _spectral_information(image, info.platform)
    for band_id, gain in enumerate(_PHYSICAL_GAINS):
        _sub(image, "PHYSICAL_GAINS", gain, bandId=str(band_id))
    _sub(image, "REFERENCE_BAND", 3)
    if l2a:
        classes = _sub(image, "Scene_Classification_List")
        for index, name in enumerate(SCENE_CLASSES):
            entry = _sub(classes, "Scene_Classification_ID")
            _sub(entry, "SCENE_CLASSIFICATION_TEXT", f"SC_{name}")
            _sub(entry, "SCENE_CLASSIFICATION_INDEX", index)

    geometric = _sub(root, f"{{{ns}}}Geometric_Info")
    footprint = _sub(_sub(geometric, "Product_Footprint"), "Product_Footprint")
    ring = info.footprint_latlon + info.footprint_latlon[:1]
    _sub(_sub(footprint, "Global_Footprint"), "EXT_POS_LIST", " ".join(f"{lat!r} {lon!r}" for lat, lon in ring))
    _sub(geometric.find("Product_Footprint"), "RASTER_CS_TYPE", "POINT")
    _sub(geometric.find("Product_Footprint"), "PIXEL_ORIGIN", 1)
    crs = _sub(geometric, "Coordinate_Reference_System")
    _sub(crs, "GEO_TABLES", "EPSG", version="1")
    _sub(crs, "HORIZONTAL_CS_TYPE", "GEOGRAPHIC")

    auxiliary = _sub(root, f"{{{ns}}}Auxiliary_Data_Info")
    _sub(auxiliary, "GIPP_List")
    _sub(auxiliary, "PRODUCTION_DEM_TYPE", "CopernicusDEM30")
    _sub(auxiliary, "IERS_BULLETIN_FILENAME", "None")
    _sub(auxiliary, "ECMWF_DATA_REF", "None")

    quality = _sub(root, f"{{{ns}}}Quality_Indicators_Info")
    _sub(quality, "Cloud_Coverage_Assessment", f"{info.cloud_cover_pct:.6f}")
    technical = _sub(quality, "Technical_Quality_Assessment")
    _sub(technical, "DEGRADED_ANC_DATA_PERCENTAGE", "0.0")
    _sub(technical, "DEGRADED_MSI_DATA_PERCENTAGE", 0)
    checks = _sub(_sub(quality, "Quality_Control_Checks"), "Quality_Inspections")
    for check in ("FORMAT_CORRECTNESS", "GENERAL_QUALITY", "GEOMETRIC_QUALITY", "RADIOMETRIC_QUALITY",
                  "SENSOR_QUALITY"):
        _sub(checks, "quality_check", "PASSED", checkType=check)
    if l2a:
        content = _sub(quality, "Image_Content_QI")
        for key, value in info.quality.items():
            _sub(content, key, f"{value:.6f}")
    return _serialize(root)


def _values_list(parent: ET.Element, values: np.ndarray, fmt: str = ".4f") -> None:
    _sub(parent, "COL_STEP", 5000, unit="m")
    _sub(parent, "ROW_STEP", 5000, unit="m")
    values_list = _sub(parent, "Values_List")
    for row in values:
        _sub(values_list, "VALUES", " ".join("NaN" if not math.isfinite(v) else format(v, fmt) for v in row))


def tile_metadata_xml(info: SafeInfo, sun_zenith: np.ndarray, sun_azimuth: np.ndarray, mean_sun: tuple[float, float],
                      view_zenith: np.ndarray, view_azimuth: np.ndarray, detector: np.ndarray,
                      mean_view: tuple[float, float]) -> bytes:
    """``MTD_TL.xml``: tile geocoding, 5 km sun and view angle grids (view per band and detector), QI."""
    l2a = info.level == "L2A"
    root, ns = _root("Level-2A_Tile_ID" if l2a else "Level-1C_Tile_ID",
                     "S2_PDI_Level-2A_Tile_Metadata" if l2a else "S2_PDI_Level-1C_Tile_Metadata")
    general = _sub(root, f"{{{ns}}}General_Info")
    if l2a:
        _sub(general, "L1C_TILE_ID", info.tile_id("L1C"), metadataLevel="Brief")
    _sub(general, "TILE_ID", info.tile_id(info.level), metadataLevel="Brief")
    _sub(general, "DATASTRIP_ID", info.datastrip_id, metadataLevel="Standard")
    _sub(general, "DOWNLINK_PRIORITY", "NOMINAL", metadataLevel="Standard")
    _sub(general, "SENSING_TIME", utc_iso(info.sensing_time, 6), metadataLevel="Standard")
    archiving = _sub(general, "Archiving_Info", metadataLevel="Expertise")
    _sub(archiving, "ARCHIVING_CENTRE", "SYNT")
    _sub(archiving, "ARCHIVING_TIME", utc_iso(info.generation_time, 6))

    geometric = _sub(root, f"{{{ns}}}Geometric_Info")
    geocoding = _sub(geometric, "Tile_Geocoding", metadataLevel="Brief")
    epsg = info.grids[10].epsg
    _sub(geocoding, "HORIZONTAL_CS_NAME", f"WGS84 / UTM zone {epsg % 100}{'N' if epsg < 32700 else 'S'}")
    _sub(geocoding, "HORIZONTAL_CS_CODE", f"EPSG:{epsg}")
    for res, grid in sorted(info.grids.items()):
        size = _sub(geocoding, "Size", resolution=str(res))
        _sub(size, "NROWS", grid.rows)
        _sub(size, "NCOLS", grid.cols)
    for res, grid in sorted(info.grids.items()):
        position = _sub(geocoding, "Geoposition", resolution=str(res))
        _sub(position, "ULX", f"{grid.x0:.0f}")
        _sub(position, "ULY", f"{grid.y0:.0f}")
        _sub(position, "XDIM", f"{grid.res:.0f}")
        _sub(position, "YDIM", f"{-grid.res:.0f}")

    angles = _sub(geometric, "Tile_Angles", metadataLevel="Standard")
    sun = _sub(angles, "Sun_Angles_Grid")
    _values_list(_sub(sun, "Zenith"), sun_zenith)
    _values_list(_sub(sun, "Azimuth"), sun_azimuth)
    mean = _sub(angles, "Mean_Sun_Angle")
    _sub(mean, "ZENITH_ANGLE", repr(mean_sun[0]), unit="deg")
    _sub(mean, "AZIMUTH_ANGLE", repr(mean_sun[1]), unit="deg")
    detectors = [int(d) for d in np.unique(detector[detector > 0])]
    for band_id in range(13):
        for det in detectors:
            on_detector = detector == det
            grids = _sub(angles, "Viewing_Incidence_Angles_Grids", bandId=str(band_id), detectorId=str(det))
            _values_list(_sub(grids, "Zenith"), np.where(on_detector, view_zenith, np.nan))
            _values_list(_sub(grids, "Azimuth"), np.where(on_detector, view_azimuth, np.nan))
    mean_list = _sub(angles, "Mean_Viewing_Incidence_Angle_List")
    for band_id in range(13):
        mean_view_band = _sub(mean_list, "Mean_Viewing_Incidence_Angle", bandId=str(band_id))
        _sub(mean_view_band, "ZENITH_ANGLE", repr(mean_view[0]), unit="deg")
        _sub(mean_view_band, "AZIMUTH_ANGLE", repr(mean_view[1]), unit="deg")

    quality = _sub(root, f"{{{ns}}}Quality_Indicators_Info", metadataLevel="Standard")
    content = _sub(quality, "Image_Content_QI")
    _sub(content, "CLOUDY_PIXEL_PERCENTAGE", f"{info.cloud_cover_pct:.6f}")
    if l2a:
        for key, value in info.quality.items():
            _sub(content, key, f"{value:.6f}")
    _sub(content, "DEGRADED_MSI_DATA_PERCENTAGE", 0)
    pixel_qi = _sub(quality, "Pixel_Level_QI", geometry="FULL_RESOLUTION")
    for mask_type, name in info.mask_files:
        _sub(pixel_qi, "MASK_FILENAME", name, type=mask_type)
    return _serialize(root)


def manifest_xml(info: SafeInfo, safe_folder: Path) -> bytes:
    """``manifest.safe``: acquisition, orbit, platform, processing, footprint, and every file with its size
    and SHA3-256 checksum (so it must be written last)."""
    ET.register_namespace("xfdu", "urn:ccsds:schema:xfdu:1")
    ET.register_namespace("safe", "http://www.esa.int/safe/sentinel/1.1")
    ET.register_namespace("gml", "http://www.opengis.net/gml")
    xfdu, safe = "{urn:ccsds:schema:xfdu:1}", "{http://www.esa.int/safe/sentinel/1.1}"
    gml = "{http://www.opengis.net/gml}"
    level = "2a" if info.level == "L2A" else "1c"
    root = ET.Element(f"{xfdu}XFDU",
                      {"version": f"esa/safe/sentinel/1.1/sentinel-2/msi/archive_l{level}_user_product"})
    package = _sub(_sub(root, "informationPackageMap"), f"{xfdu}contentUnit",
                   unitType=f"Product_Level-{level.upper()}",
                   textInfo=f"SENTINEL-2 MSI Level-{level.upper()} User Product", dmdID="acquisitionPeriod platform",
                   pdiID="processing")
    files = sorted(p for p in safe_folder.rglob("*") if p.is_file() and p.name != "manifest.safe")
    for index, file in enumerate(files):
        unit = _sub(package, f"{xfdu}contentUnit", ID=f"Unit{index}", unitType="Data Unit")
        _sub(unit, "dataObjectPointer", dataObjectID=f"Object{index}")
    metadata = _sub(root, "metadataSection")

    def wrapped(object_id: str, category: str, classification: str) -> ET.Element:
        obj = _sub(metadata, "metadataObject", ID=object_id, category=category, classification=classification)
        return _sub(_sub(obj, "metadataWrap", mimeType="text/xml", vocabularyName="Sentinel-SAFE"), "xmlData")

    _sub(_sub(wrapped("acquisitionPeriod", "DMD", "DESCRIPTION"), f"{safe}acquisitionPeriod"), f"{safe}startTime",
         utc_iso(info.sensing_time))
    orbit = _sub(wrapped("measurementOrbitReference", "DMD", "DESCRIPTION"), f"{safe}orbitReference")
    _sub(orbit, f"{safe}orbitNumber", f"{info.absolute_orbit:06d}", groundTrackDirection="descending", type="start")
    _sub(orbit, f"{safe}relativeOrbitNumber", f"{info.relative_orbit:03d}", type="start")
    platform = _sub(wrapped("platform", "DMD", "DESCRIPTION"), f"{safe}platform")
    _sub(platform, f"{safe}familyName", "SENTINEL")
    _sub(platform, f"{safe}number", info.platform[-2:])
    _sub(_sub(platform, f"{safe}instrument"), f"{safe}familyName", "Multi-Spectral Instrument", abbreviation="MSI")
    _sub(wrapped("processing", "PDI", "PROVENANCE"), f"{safe}processing",
         name=f"Generation of Level-{level.upper()} User Product", start=utc_iso(info.generation_time, 6))
    frame = _sub(_sub(wrapped("measurementFrameSet", "DMD", "DESCRIPTION"), f"{safe}frameSet"), f"{safe}footPrint",
                 srsName="http://www.opengis.net/gml/srs/epsg.xml#4326")
    ring = info.footprint_latlon + info.footprint_latlon[:1]
    _sub(frame, f"{gml}coordinates", " ".join(f"{lat!r} {lon!r}" for lat, lon in ring))
    objects = _sub(root, "dataObjectSection")
    for index, file in enumerate(files):
        stream = _sub(_sub(objects, "dataObject", ID=f"Object{index}"), "byteStream",
                      mimeType="application/octet-stream" if file.suffix == ".jp2" else "text/xml",
                      size=str(file.stat().st_size))
        _sub(stream, "fileLocation", href="./" + file.relative_to(safe_folder).as_posix(), locatorType="URL")
        _sub(stream, "checksum", _sha3(file), checksumName="SHA3-256")
    return _serialize(root)


def _sha3(path: Path) -> str:
    digest = hashlib.sha3_256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()
