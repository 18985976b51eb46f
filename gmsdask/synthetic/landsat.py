"""Synthetic Landsat 8/9 OLI-TIRS Collection 2 Level-1 (L1TP) products, laid out as USGS delivers them.

``<ID>/<ID>_B1.TIF ... _B11.TIF, _QA_PIXEL.TIF, _QA_RADSAT.TIF, _MTL.txt, _MTL.xml, _ANG.txt`` or a plain
``<ID>.tar`` of those files. Grid: UTM with pixel centres on multiples of the pixel size (30 m corners at odd
multiples of 15 m), the 15 m panchromatic grid sharing the outer pixel centres (2n - 1 lines), thermal bands
on the 30 m grid. The data area is the swath-aligned rectangle inside the north-up grid, fill (DN 0)
around it, as in real scenes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import numpy as np
from pyproj import Transformer
from scipy import ndimage

from .archive import write_tar
from .brdf import SurfaceBRDF, brdf_truth_scalars
from .clouds import CloudField
from .grid import DEFAULT_SENTINEL2_SIZE, DEFAULT_TILE, PixelGrid, UtmBox, landsat_grid, sentinel2_extent, utm_epsg
from .landscape import Landscape
from .landsat_mtl import CALIBRATION, THERMAL_RADIANCE_ADD, ang_text, mtl_tree
from .odl import to_odl, to_usgs_xml
from .orbits import LANDSAT_ORBIT, plan_overpass, wrs2_row
from .parameters import SyntheticParameterError, check_size
from .pipeline import (GridJob, GridResult, check_scene_parameters, cloud_seed, lonlat_polygon_wkt,
                       parse_acquisition_time, prepare_output, publish, render_grid, round_angle)
from .radiometry import LandsatThermal, landsat_reflectance_quantization
from .rasters import write_all, write_landsat_geotiff
from .render import Geometry, Scene
from ..algorithms.radiometry import earth_sun_distance_au, solar_position
from .truth import SyntheticProduct, TruthStore, truth_paths, write_truth_json

__all__ = ["write_landsat_l1", "LANDSAT_SCENE_SIZE", "LandsatPlan"]

#: A typical full WRS-2 scene (reflective lines, samples), e.g. LC09 010/065.
LANDSAT_SCENE_SIZE = (7741, 7611)
_REFLECTIVE = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B9"]
_THERMAL = ["B10", "B11"]
_ALL_BANDS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11"]
_EDGE_MARGIN_PX = 1.0
_MAX_SIZE = 16_000


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

    def sample_points(self, count: int = 21) -> tuple[np.ndarray, np.ndarray]:
        """A ``count`` x ``count`` lattice of points spanning the rectangle (m)."""
        steps = np.linspace(-1.0, 1.0, count)
        (ax, ay), (cx, cy) = self.along, self.across
        along, across = np.meshgrid(steps * self.half_length, steps * self.half_width)
        return self.centre[0] + along * ax + across * cx, self.centre[1] + along * ay + across * cy

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
    mission = CALIBRATION[platform].mission
    product_id = (f"LC0{mission}_L1TP_{path:03d}{row:03d}_{acquired:%Y%m%d}_{processed:%Y%m%d}_02_T1")
    scene_id = f"LC{mission}{path:03d}{row:03d}{acquired:%Y%j}LGN00"
    return product_id, scene_id


@dataclass(frozen=True)
class LandsatPlan:
    """Everything decided before rendering: grids, swath, geometry, scene, identifiers."""

    platform: str
    grid30: PixelGrid
    grid15: PixelGrid
    footprint: _Footprint
    scene: Scene
    acquired: datetime
    processed: datetime
    path: int
    row: int
    product_id: str
    scene_id: str
    earth_sun_distance_au: float
    to_lonlat: Transformer


def write_landsat_l1(path: str | Path, *, platform: str = "LANDSAT_9",
                     acquisition_time: date | datetime | str | None = None,
                     location: str | UtmBox | None = None, size: int | tuple[int, int] | None = None,
                     shift_m: tuple[float, float] = (0.0, 0.0), cloud_fraction: float = 0.0, aot550: float = 0.1,
                     seed: int = 0, archive: bool = False, processing_time: datetime | None = None,
                     overwrite: bool = False, brdf: bool = False) -> SyntheticProduct:
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
    brdf
        Give the surface a known BRDF (``gmsdask.synthetic.brdf``: kernel weights per material), applied with
        each pixel's sun and view angles; the truth then gains ``nbar`` (nadir view, HLS's normalized sun
        zenith) and ``surface_reflectance`` is the directional reflectance. Default: a Lambertian surface.
    """
    if platform not in CALIBRATION:
        raise SyntheticParameterError("platform", f"{platform!r} is not supported; use LANDSAT_8 or LANDSAT_9")
    when = parse_acquisition_time(acquisition_time)
    size = None if size is None else check_size("size", size, maximum=_MAX_SIZE)
    shift, cloud_fraction, aot550, seed = check_scene_parameters(shift_m, cloud_fraction, aot550, seed)
    plan = _plan(platform, when, location, size, shift, cloud_fraction, aot550, seed, processing_time, brdf)

    final, staging = prepare_output(path, plan.product_id, plan.product_id + (".tar" if archive else ""), overwrite)
    truth_json, truth_store_path = truth_paths(path, plan.product_id)
    truth = TruthStore(truth_store_path)
    r30, r15 = _render(plan, truth)
    _write_files(plan, staging / plan.product_id, r30, r15)
    publish(staging, staging / plan.product_id, final, write_tar if archive else None, plan.processed)

    g = plan.scene.geometry
    product = SyntheticProduct(
        path=final, product_id=plan.product_id, platform=platform, processing_level="L1TP",
        acquisition_time=plan.acquired, seed=seed, shift_m=shift, aot550=aot550, cloud_fraction=cloud_fraction,
        cloud_cover_pct=round(r30.cloud_cover_pct, 2),
        cloud_shadow_pct=round(100.0 * r30.shadow_pixels / max(r30.valid_pixels, 1), 2),
        cloud_height_m=plan.scene.clouds.height_m, sun_zenith_deg=g.sun_zenith_deg, sun_azimuth_deg=g.sun_azimuth_deg,
        view_zenith_deg=g.view_zenith_deg, view_azimuth_deg=g.view_azimuth_deg, epsg=plan.grid30.epsg,
        footprint_wkt=lonlat_polygon_wkt([plan.to_lonlat.transform(*c) for c in plan.footprint.corners()]),
        grids={"r30m": plan.grid30, "r15m": plan.grid15}, truth_json=truth_json, truth_store=truth_store_path,
        surface_reflectance=truth.open("surface_reflectance"), toa=truth.open("toa"), scene=truth.open("scene"),
        nbar=truth.open("nbar") if brdf else {},
        extra={"wrs_path": plan.path, "wrs_row": plan.row, "earth_sun_distance_au": plan.earth_sun_distance_au,
               "sun_elevation_deg": round_angle(g.sun_elevation_deg), **brdf_truth_scalars(plan.scene.brdf)})
    write_truth_json(product)
    return product


def _plan(platform: str, when: date | datetime, location: str | UtmBox | None, size: tuple[int, int] | None,
          shift: tuple[float, float], cloud_fraction: float, aot550: float, seed: int,
          processing_time: datetime | None, brdf: bool = False) -> LandsatPlan:
    if location is None:
        location = sentinel2_extent(DEFAULT_TILE, DEFAULT_SENTINEL2_SIZE)
    try:
        box = sentinel2_extent(location) if isinstance(location, str) else location
    except SyntheticParameterError as error:
        raise SyntheticParameterError("location", error.problem) from None
    if not isinstance(box, UtmBox):
        raise SyntheticParameterError("location", f"expected an MGRS tile name or a UtmBox, got {location!r}")
    # USGS grids southern scenes in the northern UTM zone, with negative northings
    northing_offset = 0.0 if box.epsg < 32700 else 10_000_000.0
    epsg = utm_epsg(box.epsg % 100, True)
    centre_x, centre_y = box.centre[0], box.centre[1] - northing_offset
    overpass = plan_overpass(LANDSAT_ORBIT, box.epsg, *box.centre, when)
    # a shifted product shows the box's ground displaced: cover that too, plus a pixel of fringe
    reach = math.hypot(*shift) + 30.0
    (rows, cols), half_length, half_width = _swath_geometry(box.width, box.height, overpass.along_track_xy, size,
                                                            30.0, reach)
    if max(rows, cols) > _MAX_SIZE:
        raise SyntheticParameterError("location", f"covering {box} needs a {rows} x {cols} grid (max {_MAX_SIZE})")
    grid30 = landsat_grid(epsg, centre_x, centre_y, rows, cols, 30.0)
    grid15 = PixelGrid(epsg, grid30.x0 + 7.5, grid30.y0 - 7.5, 15.0, 2 * rows - 1, 2 * cols - 1)
    footprint = _Footprint((centre_x, centre_y), overpass.along_track_xy, half_length, half_width)

    acquired = overpass.time
    processed = processing_time or datetime.combine(acquired.date() + timedelta(days=1), time(5, 41, 7),
                                                    tzinfo=timezone.utc)
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    lon, lat = to_lonlat.transform(centre_x, centre_y)
    sun_zenith, sun_azimuth = (float(v) for v in solar_position(lat, lon, acquired))
    # the angles as the MTL carries them, so that the truth follows from what a reader parses
    sun_elevation, sun_azimuth = round_angle(90.0 - sun_zenith), round_angle(sun_azimuth)
    if sun_elevation < 5.0:
        raise SyntheticParameterError("acquisition_time", f"the sun is {sun_elevation:.1f} deg above the horizon")
    x, y = footprint.sample_points()
    view_zenith, view_azimuth = overpass.mean_view_angles(x, y + northing_offset)
    geometry = Geometry(90.0 - sun_elevation, sun_azimuth, round_angle(view_zenith), round_angle(view_azimuth))
    xmin, ymin, xmax, ymax = grid30.bounds
    ground_bounds = (xmin - shift[0], ymin - shift[1] + northing_offset, xmax - shift[0],
                     ymax - shift[1] + northing_offset)
    clouds = CloudField.for_area(cloud_seed(seed, platform, acquired), cloud_fraction, ground_bounds,
                                 geometry.sun_zenith_deg, sun_azimuth)
    surface_brdf = None
    if brdf:
        def view_angles(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return overpass.view_angles(x, y + northing_offset)  # the overpass lives in the landscape's zone
        surface_brdf = SurfaceBRDF(view_angles, to_lonlat, acquired, lat)
    scene = Scene(platform, Landscape(seed), clouds, aot550, geometry, shift, northing_offset, surface_brdf)
    row = wrs2_row(lat)
    product_id, scene_id = _ids(platform, overpass.track, row, acquired, processed)
    return LandsatPlan(platform, grid30, grid15, footprint, scene, acquired, processed, overpass.track, row,
                        product_id, scene_id, round(earth_sun_distance_au(acquired), 7), to_lonlat)


def _render(plan: LandsatPlan, truth: TruthStore) -> tuple[GridResult, GridResult]:
    """The 30 m grid (reflective and thermal bands, masks) and the 15 m panchromatic grid."""
    calibration = CALIBRATION[plan.platform]
    reflectance_code = landsat_reflectance_quantization(plan.scene.geometry.sun_elevation_deg)
    encoders = {band: reflectance_code.encode for band in _REFLECTIVE + ["B8"]}
    for band in _THERMAL:
        encoders[band] = LandsatThermal(*calibration.thermal_k[band], calibration.thermal_radiance_mult[band],
                                        THERMAL_RADIANCE_ADD).encode
    nodata = plan.footprint.nodata
    r30 = render_grid(plan.scene, GridJob("r30m", plan.grid30, _REFLECTIVE, encoders, _THERMAL, keep_masks=True,
                                          nodata=nodata), truth)
    r15 = render_grid(plan.scene, GridJob("r15m", plan.grid15, ["B8"], encoders, nodata=nodata), truth)
    return r30, r15


def _write_files(plan: LandsatPlan, folder: Path, r30: GridResult, r15: GridResult) -> None:
    """Band and QA GeoTIFFs, MTL.txt, MTL.xml and ANG.txt into ``folder``."""
    product_id = plan.product_id
    jobs = [(write_landsat_geotiff, folder / f"{product_id}_{band}.TIF", (r15 if band == "B8" else r30).dn[band],
             plan.grid15 if band == "B8" else plan.grid30) for band in _ALL_BANDS]
    qa = functools.partial(write_landsat_geotiff, overview_resampling="nearest")  # bit flags: no averaging
    jobs.append((qa, folder / f"{product_id}_QA_PIXEL.TIF", _qa_pixel(r30), plan.grid30, None))
    jobs.append((qa, folder / f"{product_id}_QA_RADSAT.TIF", np.zeros(plan.grid30.shape, np.uint16), plan.grid30,
                 None))
    write_all(jobs)
    land = r30.valid_pixels - r30.class_pixels.get(1, 0)
    cloud_cover_land = 100.0 * r30.cloud_pixels / land if land else 0.0
    mtl = mtl_tree(plan, round(r30.cloud_cover_pct, 2), round(cloud_cover_land, 2))
    (folder / f"{product_id}_MTL.txt").write_text(to_odl(mtl))
    (folder / f"{product_id}_MTL.xml").write_text(to_usgs_xml(mtl))
    (folder / f"{product_id}_ANG.txt").write_text(ang_text(plan))


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
