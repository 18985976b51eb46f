"""Synthetic Landsat 8/9 OLI-TIRS Collection 2 Level-1 (L1TP) products, laid out as USGS delivers them.

``<ID>/<ID>_B1.TIF ... _B11.TIF, _QA_PIXEL.TIF, _QA_RADSAT.TIF, _MTL.txt, _MTL.xml, _ANG.txt`` or a plain
``<ID>.tar`` of those files. Grid: UTM with pixel centres on multiples of the pixel size (30 m corners at odd
multiples of 15 m), the 15 m panchromatic grid sharing the outer pixel centres (2n - 1 lines), thermal bands
on the 30 m grid. The data area is the swath-aligned rectangle inside the north-up grid, fill (DN 0)
around it, as in real scenes.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from pyproj import Transformer
from scipy import ndimage

from ..sensors import get_sensor
from .archive import write_tar
from .clouds import CloudField
from .grid import DEFAULT_SENTINEL2_SIZE, DEFAULT_TILE, PixelGrid, UtmBox, landsat_grid, sentinel2_extent, utm_epsg
from .landscape import Landscape
from .noise import derive_seed
from .odl import Raw, Tree, number, to_odl, to_usgs_xml
from .orbits import LANDSAT_ORBIT, Overpass, plan_overpass, wrs2_row
from .parameters import SyntheticParameterError, check_fraction, check_positive, check_shift, check_size
from .pipeline import GridJob, GridResult, parse_acquisition_time, prepare_output, render_grid, round_angle
from .radiometry import LandsatThermal, landsat_reflectance_quantization
from .rasters import write_all, write_landsat_geotiff
from .render import Geometry, Scene
from .spectra import MATERIAL_NAMES
from .sun import earth_sun_distance_au, solar_angles
from .truth import SyntheticProduct, TruthStore, write_truth_json

__all__ = ["write_landsat_l1", "LANDSAT_SCENE_SIZE"]

#: A typical full WRS-2 scene (reflective lines, samples), e.g. LC09 010/065.
LANDSAT_SCENE_SIZE = (7741, 7611)
_REFLECTIVE = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B9"]
_THERMAL = ["B10", "B11"]
_ALL_BANDS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11"]
_EDGE_MARGIN_PX = 1.0
_MAX_SIZE = 16_000


@dataclass(frozen=True)
class _Calibration:
    """Per-platform constants, read off real Collection 2 MTLs (LC08 047/027 2020, LC09 010/065 2022).

    ``radiance_mult_1au`` is RADIANCE_MULT_BAND_n * d^2 of those files: the radiance per DN at 1 AU, from
    which each scene's RADIANCE_MULT/ADD follow for its Earth-Sun distance (REFLECTANCE_MULT/ADD are fixed).
    """

    mission: str
    radiance_mult_1au: tuple[float, ...]
    thermal_k: dict[str, tuple[float, float]]
    thermal_radiance_mult: dict[str, float]
    thermal_radiance_max: dict[str, float]


def _per_1au(d: float, mults: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(m * d * d for m in mults)


_CALIBRATION = {
    "LANDSAT_8": _Calibration(
        "8", _per_1au(0.9854607, (1.2929e-2, 1.3239e-2, 1.2200e-2, 1.0288e-2, 6.2956e-3, 1.5657e-3, 5.2771e-4,
                                  1.1643e-2, 2.4605e-3)),
        {"B10": (774.8853, 1321.0789), "B11": (480.8883, 1201.1442)}, {"B10": 3.342e-4, "B11": 3.342e-4},
        {"B10": 22.00180, "B11": 22.00180}),
    "LANDSAT_9": _Calibration(
        "9", _per_1au(0.9849984, (1.2925e-2, 1.3275e-2, 1.2198e-2, 1.0339e-2, 6.3429e-3, 1.5846e-3, 5.3504e-4,
                                  1.1703e-2, 2.6313e-3)),
        {"B10": (799.0284, 1329.2405), "B11": (475.6581, 1198.3494)}, {"B10": 3.8e-4, "B11": 3.49e-4},
        {"B10": 25.00330, "B11": 22.97172}),
}
_REFLECTANCE_MULT, _REFLECTANCE_ADD, _THERMAL_RADIANCE_ADD = 2.0e-5, -0.1, 0.1


@dataclass(frozen=True)
class _Footprint:
    """The swath-aligned data rectangle: centre (m), along-track unit vector, half length and half width (m)."""

    centre: tuple[float, float]
    along: tuple[float, float]
    half_length: float
    half_width: float

    @property
    def across(self) -> tuple[float, float]:
        return self.along[1], -self.along[0]

    def nodata(self, grid: PixelGrid, row_start: int, row_stop: int) -> np.ndarray:
        x = grid.x_centres()[None, :] - self.centre[0]
        y = grid.y_centres(row_start, row_stop)[:, None] - self.centre[1]
        (ax, ay), (cx, cy) = self.along, self.across
        return (np.abs(x * ax + y * ay) > self.half_length) | (np.abs(x * cx + y * cy) > self.half_width)

    def corners(self) -> list[tuple[float, float]]:
        (ax, ay), (cx, cy) = self.along, self.across
        return [(self.centre[0] + sa * self.half_length * ax + sc * self.half_width * cx,
                 self.centre[1] + sa * self.half_length * ay + sc * self.half_width * cy)
                for sa, sc in ((-1, -1), (-1, 1), (1, 1), (1, -1))]


def _swath_geometry(box_w: float, box_h: float, along: tuple[float, float], size: tuple[int, int] | None,
                    res: float, reach_m: float) -> tuple[tuple[int, int], float, float]:
    """Grid size and half length/width of the tilted data rectangle.

    Without ``size``: the smallest rectangle that covers the box grown by ``reach_m`` on every side, and the
    grid around it. With ``size``: the largest rectangle inscribed in that grid.
    """
    ax, ay = abs(along[0]), abs(along[1])
    margin = (_EDGE_MARGIN_PX + 1.0) * res
    if size is None:
        half_length = ax * box_w / 2 + ay * box_h / 2 + reach_m
        half_width = ay * box_w / 2 + ax * box_h / 2 + reach_m
        cols = int(math.ceil((2 * (ax * half_length + ay * half_width) + 2 * margin) / res))
        rows = int(math.ceil((2 * (ay * half_length + ax * half_width) + 2 * margin) / res))
        return (rows, cols), half_length, half_width
    rows, cols = size
    gx, gy = cols * res / 2 - margin, rows * res / 2 - margin
    det = ay * ay - ax * ax  # solve [[ax, ay], [ay, ax]] @ [half_length, half_width] = [gx, gy]
    if abs(det) < 1e-6:
        half_length = half_width = min(gx, gy) / (ax + ay)
    else:
        half_length = (ay * gy - ax * gx) / det
        half_width = (ay * gx - ax * gy) / det
    if half_length <= 0 or half_width <= 0:
        raise SyntheticParameterError("size", f"{size} is too elongated for a swath tilted like this one")
    return size, half_length, half_width


def _ids(platform: str, path: int, row: int, acquired: datetime, processed: datetime) -> tuple[str, str]:
    mission = _CALIBRATION[platform].mission
    product_id = (f"LC0{mission}_L1TP_{path:03d}{row:03d}_{acquired:%Y%m%d}_{processed:%Y%m%d}_02_T1")
    scene_id = f"LC{mission}{path:03d}{row:03d}{acquired:%Y%j}LGN00"
    return product_id, scene_id


def write_landsat_l1(path: str | Path, *, platform: str = "LANDSAT_9",
                     acquisition_time: date | datetime | str | None = None,
                     location: str | UtmBox | None = None, size: int | tuple[int, int] | None = None,
                     shift_m: tuple[float, float] = (0.0, 0.0), cloud_fraction: float = 0.0, aot550: float = 0.1,
                     seed: int = 0, archive: bool = False, processing_time: datetime | None = None,
                     overwrite: bool = False) -> SyntheticProduct:
    """Write a synthetic Landsat Collection 2 L1TP product into the directory ``path``.

    Parameters
    ----------
    path
        Output directory; the product is ``path/<product id>`` (or ``.tar``), the truth beside it.
    platform
        ``LANDSAT_8`` or ``LANDSAT_9``.
    acquisition_time
        A date (the overpass time of the nearest WRS-2 path is used), or a UTC datetime; default 2024-06-01.
    location
        The ground to cover: a ``UtmBox``, or an MGRS tile name (the whole 109.8 km tile). A Sentinel-2 product
        of ``tile`` and ``size`` covers ``sentinel2_extent(tile, size)``: pass that for a Landsat scene of the
        same place. Default: the ground of the default Sentinel-2 product (``DEFAULT_TILE``,
        ``DEFAULT_SENTINEL2_SIZE``).
    size
        ``(lines, samples)`` of the 30 m grid (an int: square), centred on ``location``; ``None``: the smallest
        scene whose tilted data area covers ``location``; ``LANDSAT_SCENE_SIZE`` is a full WRS-2 scene.
    shift_m
        ``(dx, dy)``: the product shows the ground displaced by this many metres east and north.
    cloud_fraction
        Share of the data area under cloud, 0-1.
    aot550
        Aerosol optical thickness at 550 nm.
    seed
        Selects the landscape (same seed: same ground for every product) and the clouds.
    archive
        Write ``<product id>.tar`` instead of a folder.
    processing_time
        Date of processing in the product id and metadata; default the day after acquisition.
    overwrite
        Replace an existing product of the same name.
    """
    if platform not in _CALIBRATION:
        raise SyntheticParameterError("platform", f"{platform!r} is not supported; use LANDSAT_8 or LANDSAT_9")
    when = parse_acquisition_time(acquisition_time)
    if size is not None:
        size = check_size("size", size, maximum=_MAX_SIZE)
    shift = check_shift("shift_m", shift_m)
    cloud_fraction = check_fraction("cloud_fraction", cloud_fraction)
    aot550 = check_positive("aot550", aot550, upper=5.0)
    if location is None:
        location = sentinel2_extent(DEFAULT_TILE, DEFAULT_SENTINEL2_SIZE)
    box = sentinel2_extent(location) if isinstance(location, str) else location
    if not isinstance(box, UtmBox):
        raise SyntheticParameterError("location", f"expected an MGRS tile name or a UtmBox, got {location!r}")

    # USGS grids southern scenes in the northern UTM zone, with negative northings
    zone, northern = box.epsg % 100, box.epsg < 32700
    northing_offset = 0.0 if northern else 10_000_000.0
    epsg = utm_epsg(zone, True)
    centre_x, centre_y = box.centre[0], box.centre[1] - northing_offset
    overpass = plan_overpass(LANDSAT_ORBIT, box.epsg, *box.centre, when)
    along = overpass.along_track_xy
    # a shifted product shows the box's ground displaced: cover that too, plus a pixel of fringe
    reach = math.hypot(*shift) + 30.0
    (rows, cols), half_length, half_width = _swath_geometry(box.width, box.height, along, size, 30.0, reach)
    if max(rows, cols) > _MAX_SIZE:
        raise SyntheticParameterError("location", f"covering {box} needs a {rows} x {cols} grid (max {_MAX_SIZE})")
    grid30 = landsat_grid(epsg, centre_x, centre_y, rows, cols, 30.0)
    grid15 = PixelGrid(epsg, grid30.x0 + 7.5, grid30.y0 - 7.5, 15.0, 2 * rows - 1, 2 * cols - 1)
    footprint = _Footprint((centre_x, centre_y), along, half_length, half_width)

    acquired = overpass.time
    processed = processing_time or datetime.combine(acquired.date() + timedelta(days=1),
                                                    datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=5, minutes=41, seconds=7)
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    lon, lat = to_lonlat.transform(centre_x, centre_y)
    sun_zenith, sun_azimuth = (float(v) for v in solar_angles(acquired, lat, lon))
    sun_elevation = round_angle(90.0 - sun_zenith)
    sun_azimuth = round_angle(sun_azimuth)
    if sun_elevation < 5.0:
        raise SyntheticParameterError("acquisition_time", f"the sun is {sun_elevation:.1f} deg above the horizon")
    view_zenith, view_azimuth = _mean_view_angles(overpass, footprint, northing_offset)
    geometry = Geometry(90.0 - sun_elevation, sun_azimuth, view_zenith, view_azimuth)
    xmin, ymin, xmax, ymax = grid30.bounds
    clouds = CloudField.for_area(derive_seed(seed, "clouds", platform, acquired.isoformat()), cloud_fraction,
                                 (xmin - shift[0], ymin - shift[1] + northing_offset, xmax - shift[0],
                                  ymax - shift[1] + northing_offset), geometry.sun_zenith_deg, sun_azimuth)
    scene = Scene(platform, Landscape(seed), clouds, aot550, geometry, shift, northing_offset)

    path_number, row_number = overpass.track, wrs2_row(lat)
    product_id, scene_id = _ids(platform, path_number, row_number, acquired, processed)
    final, staging = prepare_output(path, product_id, product_id + (".tar" if archive else ""), overwrite)
    folder = staging / product_id
    truth_store_path = Path(path) / f"{product_id}_truth.zarr"
    truth = TruthStore(truth_store_path)

    calibration = _CALIBRATION[platform]
    d_au = round(earth_sun_distance_au(acquired), 7)
    reflectance_code = landsat_reflectance_quantization(sun_elevation)
    thermal = {band: LandsatThermal(*calibration.thermal_k[band], calibration.thermal_radiance_mult[band],
                                    _THERMAL_RADIANCE_ADD) for band in _THERMAL}
    encoders = {band: reflectance_code.encode for band in _REFLECTIVE + ["B8"]}
    encoders.update({band: thermal[band].encode for band in _THERMAL})
    r30 = render_grid(scene, GridJob("r30m", grid30, _REFLECTIVE, encoders, _THERMAL, keep_masks=True,
                                     nodata=footprint.nodata), truth)
    r15 = render_grid(scene, GridJob("r15m", grid15, ["B8"], encoders, nodata=footprint.nodata), truth)

    names = {band: f"{product_id}_{band}.TIF" for band in _ALL_BANDS}
    jobs = [(write_landsat_geotiff, folder / names[b], (r15 if b == "B8" else r30).dn[b],
             grid15 if b == "B8" else grid30) for b in _ALL_BANDS]
    jobs.append((write_landsat_geotiff, folder / f"{product_id}_QA_PIXEL.TIF", _qa_pixel(r30), grid30, None))
    jobs.append((write_landsat_geotiff, folder / f"{product_id}_QA_RADSAT.TIF", np.zeros(grid30.shape, np.uint16),
                 grid30, None))
    write_all(jobs)

    cloud_cover = round(r30.cloud_cover_pct, 2)
    land = r30.valid_pixels - r30.class_pixels.get(1, 0)
    cloud_cover_land = round(100.0 * r30.cloud_pixels / land, 2) if land else 0.0
    mtl = _mtl_tree(product_id, scene_id, platform, path_number, row_number, acquired, processed, grid30, grid15,
                    cloud_cover, cloud_cover_land, sun_azimuth, sun_elevation, d_au, calibration, to_lonlat)
    (folder / f"{product_id}_MTL.txt").write_text(to_odl(mtl))
    (folder / f"{product_id}_MTL.xml").write_text(to_usgs_xml(mtl))
    (folder / f"{product_id}_ANG.txt").write_text(_ang_text(scene_id, platform, grid30, footprint, acquired, d_au))

    if archive:
        write_tar(staging / final.name, folder, processed)
        (staging / final.name).replace(final)
    else:
        folder.replace(final)
    shutil.rmtree(staging)

    footprint_lonlat = [to_lonlat.transform(*corner) for corner in footprint.corners()]
    footprint_wkt = "POLYGON ((" + ", ".join(f"{x:.6f} {y:.6f}" for x, y in footprint_lonlat + footprint_lonlat[:1]) + "))"
    product = SyntheticProduct(
        path=final, product_id=product_id, platform=platform, processing_level="L1TP", acquisition_time=acquired,
        seed=seed, shift_m=shift, aot550=aot550, cloud_fraction=cloud_fraction, cloud_cover_pct=cloud_cover,
        sun_zenith_deg=geometry.sun_zenith_deg, sun_azimuth_deg=sun_azimuth, view_zenith_deg=view_zenith,
        view_azimuth_deg=view_azimuth, epsg=epsg, footprint_wkt=footprint_wkt,
        truth_json=Path(path) / f"{product_id}_truth.json", truth_store=truth_store_path,
        surface_reflectance=truth.open("surface_reflectance"), toa=truth.open("toa"), scene=truth.open("scene"),
        extra={"wrs_path": path_number, "wrs_row": row_number, "earth_sun_distance_au": d_au,
               "sun_elevation_deg": sun_elevation, "grids": {"r30m": grid30, "r15m": grid15},
               "cloud_height_m": clouds.height_m, "shadow_pct": round(100.0 * r30.shadow_pixels / max(r30.valid_pixels, 1), 2)})
    write_truth_json(product.truth_json, _truth_scalars(product))
    return product


def _mean_view_angles(overpass: Overpass, footprint: _Footprint, northing_offset: float) -> tuple[float, float]:
    """Mean view zenith and azimuth over the data rectangle (sampled on a 21 x 21 lattice)."""
    steps = np.linspace(-1.0, 1.0, 21)
    (ax, ay), (cx, cy) = footprint.along, footprint.across
    sa, sc = np.meshgrid(steps * footprint.half_length, steps * footprint.half_width)
    x = footprint.centre[0] + sa * ax + sc * cx
    y = footprint.centre[1] + sa * ay + sc * cy + northing_offset
    zenith, azimuth = overpass.view_angles(x.ravel(), y.ravel())
    mean_azimuth = math.degrees(math.atan2(np.mean(np.sin(np.radians(azimuth)) * zenith),
                                           np.mean(np.cos(np.radians(azimuth)) * zenith))) % 360.0
    return round_angle(float(np.mean(zenith))), round_angle(mean_azimuth)


def _qa_pixel(r30: GridResult) -> np.ndarray:
    """Collection 2 QA_PIXEL: bit 0 fill, 1 dilated cloud, 3 cloud, 4 cloud shadow, 6 clear, 7 water,
    8-9 cloud confidence, 10-11 shadow confidence, 12-13 snow confidence, 14-15 cirrus confidence."""
    cloud = r30.cloud_opacity >= 0.1
    high = r30.cloud_opacity >= 0.35
    dilated = ndimage.binary_dilation(cloud, iterations=3) & ~cloud
    shadow = (r30.shadow_fraction >= 0.1) & ~cloud
    water = (r30.land_cover == 1) & ~cloud
    low, medium, high_conf = np.uint16(1), np.uint16(2), np.uint16(3)
    qa = np.full(r30.land_cover.shape, (low << 8) | (low << 10) | (low << 12) | (low << 14), dtype=np.uint16)
    qa[cloud] = (qa[cloud] & ~np.uint16(0x300)) | (medium << 8)
    qa[high] = (qa[high] & ~np.uint16(0x300)) | (high_conf << 8)
    qa[shadow] = (qa[shadow] & ~np.uint16(0xC00)) | (high_conf << 10)
    qa |= (cloud.astype(np.uint16) << 3) | (dilated.astype(np.uint16) << 1) | (shadow.astype(np.uint16) << 4)
    qa |= (~(cloud | dilated)).astype(np.uint16) << 6
    qa |= water.astype(np.uint16) << 7
    qa[r30.nodata] = 1
    return qa


def _mtl_tree(product_id: str, scene_id: str, platform: str, path: int, row: int, acquired: datetime,
              processed: datetime, grid30: PixelGrid, grid15: PixelGrid, cloud_cover: float, cloud_cover_land: float,
              sun_azimuth: float, sun_elevation: float, d_au: float, calibration: _Calibration,
              to_lonlat: Transformer) -> Tree:
    bands = range(1, 12)
    fname = {b: f"{product_id}_B{b}.TIF" for b in bands}
    doi_l1 = "https://doi.org/10.5066/P975CC9B"
    origin = "Image courtesy of the U.S. Geological Survey"
    files: Tree = [(f"FILE_NAME_BAND_{b}", fname[b]) for b in bands] + [
        ("FILE_NAME_QUALITY_L1_PIXEL", f"{product_id}_QA_PIXEL.TIF"),
        ("FILE_NAME_QUALITY_L1_RADIOMETRIC_SATURATION", f"{product_id}_QA_RADSAT.TIF"),
        ("FILE_NAME_ANGLE_COEFFICIENT", f"{product_id}_ANG.txt"),
        ("FILE_NAME_METADATA_ODL", f"{product_id}_MTL.txt"),
        ("FILE_NAME_METADATA_XML", f"{product_id}_MTL.xml"),
    ]
    # grid corners as USGS gives them: the centres of the corner pixels
    x_left, y_top = grid30.x0 + 15.0, grid30.y0 - 15.0
    x_right, y_bottom = x_left + (grid30.cols - 1) * 30.0, y_top - (grid30.rows - 1) * 30.0
    corners = {"UL": (x_left, y_top), "UR": (x_right, y_top), "LL": (x_left, y_bottom), "LR": (x_right, y_bottom)}
    corner_items: Tree = []
    for key, (x, y) in corners.items():
        lon, lat = to_lonlat.transform(x, y)
        corner_items += [(f"CORNER_{key}_LAT_PRODUCT", number(lat, ".5f")), (f"CORNER_{key}_LON_PRODUCT", number(lon, ".5f"))]
    for key, (x, y) in corners.items():
        corner_items += [(f"CORNER_{key}_PROJECTION_X_PRODUCT", number(x, ".3f")),
                         (f"CORNER_{key}_PROJECTION_Y_PRODUCT", number(y, ".3f"))]
    reflective = range(1, 10)
    radiance_mult = {b: calibration.radiance_mult_1au[b - 1] / (d_au * d_au) for b in reflective}
    radiance_add = {b: radiance_mult[b] / _REFLECTANCE_MULT * _REFLECTANCE_ADD for b in reflective}
    thermal_mult = {10: calibration.thermal_radiance_mult["B10"], 11: calibration.thermal_radiance_mult["B11"]}
    max_radiance = {b: radiance_add[b] + radiance_mult[b] * 65535 for b in reflective}
    min_radiance = {b: radiance_add[b] + radiance_mult[b] for b in reflective}
    for b in (10, 11):
        max_radiance[b] = calibration.thermal_radiance_max[f"B{b}"]
        min_radiance[b] = _THERMAL_RADIANCE_ADD + thermal_mult[b]
    projection: Tree = [("MAP_PROJECTION", "UTM"), ("DATUM", "WGS84"), ("ELLIPSOID", "WGS84"),
                        ("UTM_ZONE", Raw(str(grid30.epsg % 100)))]
    return [("LANDSAT_METADATA_FILE", [
        ("PRODUCT_CONTENTS", [
            ("ORIGIN", origin), ("DIGITAL_OBJECT_IDENTIFIER", doi_l1), ("LANDSAT_PRODUCT_ID", product_id),
            ("PROCESSING_LEVEL", "L1TP"), ("COLLECTION_NUMBER", Raw("02")), ("COLLECTION_CATEGORY", "T1"),
            ("OUTPUT_FORMAT", "GEOTIFF"), *files,
            *[(f"DATA_TYPE_BAND_{b}", "UINT16") for b in bands],
            ("DATA_TYPE_QUALITY_L1_PIXEL", "UINT16"), ("DATA_TYPE_QUALITY_L1_RADIOMETRIC_SATURATION", "UINT16"),
        ]),
        ("IMAGE_ATTRIBUTES", [
            ("SPACECRAFT_ID", platform), ("SENSOR_ID", "OLI_TIRS"), ("WRS_TYPE", Raw("2")),
            ("WRS_PATH", Raw(str(path))), ("WRS_ROW", Raw(str(row))), ("NADIR_OFFNADIR", "NADIR"),
            ("TARGET_WRS_PATH", Raw(str(path))), ("TARGET_WRS_ROW", Raw(str(row))),
            ("DATE_ACQUIRED", Raw(f"{acquired:%Y-%m-%d}")),
            ("SCENE_CENTER_TIME", acquired.strftime("%H:%M:%S.%f") + "0Z"), ("STATION_ID", "LGN"),
            ("CLOUD_COVER", number(cloud_cover, ".2f")), ("CLOUD_COVER_LAND", number(cloud_cover_land, ".2f")),
            ("IMAGE_QUALITY_OLI", Raw("9")), ("IMAGE_QUALITY_TIRS", Raw("9")),
            *[(f"SATURATION_BAND_{b}", "N") for b in reflective],
            ("ROLL_ANGLE", Raw("-0.001")), ("SUN_AZIMUTH", number(sun_azimuth, ".8f")),
            ("SUN_ELEVATION", number(sun_elevation, ".8f")), ("EARTH_SUN_DISTANCE", number(d_au, ".7f")),
            ("TRUNCATION_OLI", "UPPER"), ("TIRS_SSM_MODEL", "FINAL"), ("TIRS_SSM_POSITION_STATUS", "ESTIMATED"),
        ]),
        ("PROJECTION_ATTRIBUTES", [
            *projection,
            ("GRID_CELL_SIZE_PANCHROMATIC", Raw("15.00")), ("GRID_CELL_SIZE_REFLECTIVE", Raw("30.00")),
            ("GRID_CELL_SIZE_THERMAL", Raw("30.00")),
            ("PANCHROMATIC_LINES", Raw(str(grid15.rows))), ("PANCHROMATIC_SAMPLES", Raw(str(grid15.cols))),
            ("REFLECTIVE_LINES", Raw(str(grid30.rows))), ("REFLECTIVE_SAMPLES", Raw(str(grid30.cols))),
            ("THERMAL_LINES", Raw(str(grid30.rows))), ("THERMAL_SAMPLES", Raw(str(grid30.cols))),
            ("ORIENTATION", "NORTH_UP"), *corner_items,
        ]),
        ("LEVEL1_PROCESSING_RECORD", [
            ("ORIGIN", origin), ("DIGITAL_OBJECT_IDENTIFIER", doi_l1), ("REQUEST_ID", f"SYN{processed:%Y%m%d}_00001"),
            ("LANDSAT_SCENE_ID", scene_id), ("LANDSAT_PRODUCT_ID", product_id), ("PROCESSING_LEVEL", "L1TP"),
            ("COLLECTION_CATEGORY", "T1"), ("OUTPUT_FORMAT", "GEOTIFF"),
            ("DATE_PRODUCT_GENERATED", f"{processed:%Y-%m-%dT%H:%M:%SZ}"),
            ("PROCESSING_SOFTWARE_VERSION", "gmsdask.synthetic"), *files,
            ("DATA_SOURCE_ELEVATION", "GLS2000"), ("GROUND_CONTROL_POINTS_VERSION", Raw("5")),
            ("GROUND_CONTROL_POINTS_MODEL", Raw("500")), ("GEOMETRIC_RMSE_MODEL", Raw("5.000")),
            ("GEOMETRIC_RMSE_MODEL_Y", Raw("3.500")), ("GEOMETRIC_RMSE_MODEL_X", Raw("3.500")),
        ]),
        ("LEVEL1_MIN_MAX_RADIANCE", [item for b in bands for item in (
            (f"RADIANCE_MAXIMUM_BAND_{b}", number(max_radiance[b], ".5f")),
            (f"RADIANCE_MINIMUM_BAND_{b}", number(min_radiance[b], ".5f")))]),
        ("LEVEL1_MIN_MAX_REFLECTANCE", [item for b in reflective for item in (
            (f"REFLECTANCE_MAXIMUM_BAND_{b}", number(_REFLECTANCE_ADD + _REFLECTANCE_MULT * 65535, ".6f")),
            (f"REFLECTANCE_MINIMUM_BAND_{b}", number(_REFLECTANCE_ADD + _REFLECTANCE_MULT, ".6f")))]),
        ("LEVEL1_MIN_MAX_PIXEL_VALUE", [item for b in bands for item in (
            (f"QUANTIZE_CAL_MAX_BAND_{b}", Raw("65535")), (f"QUANTIZE_CAL_MIN_BAND_{b}", Raw("1")))]),
        ("LEVEL1_RADIOMETRIC_RESCALING", [
            *[(f"RADIANCE_MULT_BAND_{b}", number(radiance_mult[b], ".4E")) for b in reflective],
            *[(f"RADIANCE_MULT_BAND_{b}", number(thermal_mult[b], ".4E")) for b in (10, 11)],
            *[(f"RADIANCE_ADD_BAND_{b}", number(radiance_add[b], ".5f")) for b in reflective],
            *[(f"RADIANCE_ADD_BAND_{b}", number(_THERMAL_RADIANCE_ADD, ".5f")) for b in (10, 11)],
            *[(f"REFLECTANCE_MULT_BAND_{b}", number(_REFLECTANCE_MULT, ".4E")) for b in reflective],
            *[(f"REFLECTANCE_ADD_BAND_{b}", number(_REFLECTANCE_ADD, ".6f")) for b in reflective],
        ]),
        ("LEVEL1_THERMAL_CONSTANTS", [
            (f"K{k}_CONSTANT_BAND_{b}", number(calibration.thermal_k[f"B{b}"][k - 1], ".4f"))
            for b in (10, 11) for k in (1, 2)]),
        ("LEVEL1_PROJECTION_PARAMETERS", [
            *projection, ("GRID_CELL_SIZE_PANCHROMATIC", Raw("15.00")), ("GRID_CELL_SIZE_REFLECTIVE", Raw("30.00")),
            ("GRID_CELL_SIZE_THERMAL", Raw("30.00")), ("ORIENTATION", "NORTH_UP"),
            ("RESAMPLING_OPTION", "CUBIC_CONVOLUTION")]),
    ])]


def _ang_text(scene_id: str, platform: str, grid30: PixelGrid, footprint: _Footprint, acquired: datetime,
              d_au: float) -> str:
    """``ANG.txt``: header groups and, per band, the image size and the true data corners (line, sample)."""
    def pixel(x: float, y: float, res: float, x0: float, y0: float) -> tuple[float, float]:
        return (y0 - res / 2 - y) / res, (x - (x0 + res / 2)) / res

    corners30 = [pixel(x, y, 30.0, grid30.x0, grid30.y0) for x, y in footprint.corners()]
    # USGS order: the top, right, bottom and left vertices of the tilted data area
    ordered = [min(corners30, key=lambda c: c[0]), max(corners30, key=lambda c: c[1]),
               max(corners30, key=lambda c: c[0]), min(corners30, key=lambda c: c[1])]
    x_left, y_top = grid30.x0 + 15.0, grid30.y0 - 15.0
    x_right, y_bottom = x_left + (grid30.cols - 1) * 30.0, y_top - (grid30.rows - 1) * 30.0
    seconds = acquired.hour * 3600 + acquired.minute * 60 + acquired.second + acquired.microsecond / 1e6

    def tuple_text(values: list[float], fmt: str) -> Raw:
        return Raw("(" + ", ".join(format(v, fmt) for v in values) + ")")

    tree: Tree = [
        ("FILE_HEADER", [("LANDSAT_SCENE_ID", scene_id), ("SPACECRAFT_ID", platform), ("NUMBER_OF_BANDS", Raw("11")),
                         ("BAND_LIST", Raw("(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)"))]),
        ("PROJECTION", [
            ("ELLIPSOID_AXES", Raw("(6378137.000000, 6356752.314200)")), ("MAP_PROJECTION", "UTM"),
            ("PROJECTION_UNITS", "METERS"), ("DATUM", "WGS84"), ("ELLIPSOID", "WGS84"),
            ("UTM_ZONE", Raw(str(grid30.epsg % 100))),
            ("PROJECTION_PARAMETERS", tuple_text([0.0] * 15, ".6f")),
            ("UL_CORNER", tuple_text([x_left, y_top], "11.3f")), ("UR_CORNER", tuple_text([x_right, y_top], "11.3f")),
            ("LL_CORNER", tuple_text([x_left, y_bottom], "11.3f")),
            ("LR_CORNER", tuple_text([x_right, y_bottom], "11.3f"))]),
        ("EPHEMERIS", [("EPHEMERIS_EPOCH_YEAR", Raw(f"{acquired:%Y}")), ("EPHEMERIS_EPOCH_DAY", Raw(f"{acquired:%j}")),
                       ("EPHEMERIS_EPOCH_SECONDS", number(seconds, ".6f")), ("NUMBER_OF_POINTS", Raw("0"))]),
        ("SOLAR_VECTOR", [("SOLAR_EPOCH_YEAR", Raw(f"{acquired:%Y}")), ("SOLAR_EPOCH_DAY", Raw(f"{acquired:%j}")),
                          ("SOLAR_EPOCH_SECONDS", number(seconds, ".6f")),
                          ("EARTH_SUN_DISTANCE", number(d_au, ".8f")), ("NUMBER_OF_POINTS", Raw("0"))]),
    ]
    for b in range(1, 12):
        scale = 2.0 if b == 8 else 1.0  # the pan grid shares the corner pixel centres at twice the density
        lines, samples = (2 * grid30.rows - 1, 2 * grid30.cols - 1) if b == 8 else grid30.shape
        tree.append((f"RPC_BAND{b:02d}", [
            (f"BAND{b:02d}_NUMBER_OF_SCAS", Raw("14" if b < 10 else "3")),
            (f"BAND{b:02d}_NUM_L1T_LINES", Raw(str(lines))), (f"BAND{b:02d}_NUM_L1T_SAMPS", Raw(str(samples))),
            (f"BAND{b:02d}_L1T_IMAGE_CORNER_LINES", tuple_text([c[0] * scale for c in ordered], "12.6f")),
            (f"BAND{b:02d}_L1T_IMAGE_CORNER_SAMPS", tuple_text([c[1] * scale for c in ordered], "12.6f")),
            (f"BAND{b:02d}_PIXEL_SIZE", number(15.0 if b == 8 else 30.0, ".3f")),
        ]))
    return to_odl(tree)


def _truth_scalars(product: SyntheticProduct) -> dict:
    grids = product.extra["grids"]
    return {
        "product": product.path.name, "product_id": product.product_id, "platform": product.platform,
        "sensor": get_sensor(product.platform).sensor, "processing_level": product.processing_level,
        "acquisition_time": product.acquisition_time, "seed": product.seed, "shift_m": list(product.shift_m),
        "aot550": product.aot550, "angstrom_exponent": 1.3, "cloud_fraction_requested": product.cloud_fraction,
        "cloud_cover_pct": product.cloud_cover_pct, "cloud_shadow_pct": product.extra["shadow_pct"],
        "cloud_height_m": product.extra["cloud_height_m"],
        "sun_zenith_deg": product.sun_zenith_deg, "sun_azimuth_deg": product.sun_azimuth_deg,
        "sun_elevation_deg": product.extra["sun_elevation_deg"], "view_zenith_deg": product.view_zenith_deg,
        "view_azimuth_deg": product.view_azimuth_deg, "earth_sun_distance_au": product.extra["earth_sun_distance_au"],
        "epsg": product.epsg, "footprint": product.footprint_wkt, "wrs_path": product.extra["wrs_path"],
        "wrs_row": product.extra["wrs_row"],
        "grids": {name: {"epsg": g.epsg, "transform": list(g.transform)[:6], "shape": list(g.shape)}
                  for name, g in grids.items()},
        "land_cover_classes": {str(code): name for code, name in MATERIAL_NAMES.items()},
        "truth_arrays": product.truth_store.name,
        "atmosphere_model": "gmsdask.synthetic.atmosphere (Rayleigh + Angstrom aerosol, Lambertian coupling)",
    }
