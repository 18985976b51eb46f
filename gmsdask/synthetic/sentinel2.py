"""Synthetic Sentinel-2 L1C and L2A products as SAFE folders (or zips), processing baseline 05.10.

L1C: ``GRANULE/L1C_T<tile>_A<orbit>_<time>/IMG_DATA/T<tile>_<time>_B01.jp2 ... B12.jp2, B8A`` on their
10/20/60 m grids, ``QI_DATA/MSK_CLASSI_B00.jp2`` (60 m; opaque clouds, cirrus, snow), ``MTD_TL.xml``, and
``MTD_MSIL1C.xml`` + ``manifest.safe`` at the top. L2A: ``IMG_DATA/R10m|R20m|R60m/T<tile>_<time>_<band>_<res>.jp2``
(every band on its own and the coarser grids, as Sen2Cor delivers), ``SCL``, ``AOT``, ``WVP``, and
``QI_DATA/MSK_CLDPRB_20m|60m``, ``MSK_SNWPRB_20m|60m``, ``MSK_CLASSI_B00``. DN = round(rho * 10000) + 1000.

Not written (no reader of ours needs them yet): TCI and PVI previews, DATASTRIP, AUX_DATA, HTML, rep_info,
INSPIRE.xml, the per-band MSK_DETFOO/MSK_QUALIT masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
from pyproj import Transformer

from .archive import write_zip
from .brdf import SurfaceBRDF, brdf_truth_scalars
from .clouds import CLOUD_MASK_OPACITY, CloudField
from .grid import DEFAULT_SENTINEL2_SIZE, DEFAULT_TILE, PixelGrid, sentinel2_tile_grid, sentinel2_tile_origin
from .landscape import Landscape
from .orbits import SENTINEL2_ORBIT, Overpass, plan_overpass, sentinel2_absolute_orbit
from .parameters import SyntheticParameterError, check_size
from .pipeline import (GridJob, GridResult, check_scene_parameters, cloud_seed, lonlat_polygon_wkt,
                       parse_acquisition_time, prepare_output, publish, render_grid, round_angle)
from .radiometry import SENTINEL2_REFLECTANCE
from .rasters import write_all, write_sentinel2_jp2
from .render import Geometry, Scene
from .safe import SafeInfo, manifest_xml, product_metadata_xml, tile_metadata_xml
from ..algorithms.radiometry import earth_sun_distance_au, solar_position
from .truth import SyntheticProduct, TruthStore, truth_paths, write_truth_json

__all__ = ["write_sentinel2_l1c", "write_sentinel2_l2a", "SENTINEL2_TILE_SIZE"]

#: A full tile at 10 m.
SENTINEL2_TILE_SIZE = (10980, 10980)
_BASELINE = "05.10"
_PLATFORMS = ("SENTINEL_2A", "SENTINEL_2B", "SENTINEL_2C")
#: Bands per grid: L1C delivers each band once, L2A also on the coarser grids.
_L1C_BANDS = {10: ["B02", "B03", "B04", "B08"], 20: ["B05", "B06", "B07", "B8A", "B11", "B12"],
              60: ["B01", "B09", "B10"]}
_L2A_BANDS = {10: ["B02", "B03", "B04", "B08"],
              20: ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12"],
              60: ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B09", "B11", "B12"]}
#: File band names in the order of the MTD's bandId.
_MTD_BAND_ORDER = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
_WATER_VAPOUR_CM = 2.0
_VEGETATION_CODES = (3, 4, 6, 7)  # cropland, grassland, broadleaf and coniferous forest
_DETECTORS = 12


def write_sentinel2_l1c(path: str | Path, *, platform: str = "SENTINEL_2B", tile: str = DEFAULT_TILE,
                        acquisition_time: date | datetime | str | None = None,
                        size: int | tuple[int, int] = DEFAULT_SENTINEL2_SIZE,
                        shift_m: tuple[float, float] = (0.0, 0.0),
                        cloud_fraction: float = 0.0, aot550: float = 0.1, seed: int = 0, archive: bool = False,
                        processing_time: datetime | None = None, overwrite: bool = False,
                        brdf: bool = False) -> SyntheticProduct:
    """Write a synthetic Sentinel-2 L1C SAFE into the directory ``path``.

    Parameters
    ----------
    path
        Output directory; the product is ``path/<name>.SAFE`` (or ``.zip``), the truth beside it.
    platform
        ``SENTINEL_2A``, ``SENTINEL_2B`` or ``SENTINEL_2C``.
    tile
        MGRS tile; the product's grids start at the tile's origin (its Geoposition ULX/ULY).
    acquisition_time
        A date (the overpass time of the nearest relative orbit is used) or a UTC datetime; default 2024-06-01.
    size
        ``(rows, cols)`` at 10 m, multiples of 6 up to 10980: the upper-left part of the tile
        (``SENTINEL2_TILE_SIZE`` for a full tile).
    shift_m, cloud_fraction, aot550, seed, archive, processing_time, overwrite, brdf
        As for ``write_landsat_l1``; ``processing_time`` defaults to sensing + 1 h 51 min. With ``brdf`` the
        view angles of each pixel are those the ``MTD_TL`` grids sample.
    """
    return _write_sentinel2("L1C", path, platform, tile, acquisition_time, size, shift_m, cloud_fraction, aot550,
                            seed, archive, processing_time, overwrite, brdf)


def write_sentinel2_l2a(path: str | Path, *, platform: str = "SENTINEL_2B", tile: str = DEFAULT_TILE,
                        acquisition_time: date | datetime | str | None = None,
                        size: int | tuple[int, int] = DEFAULT_SENTINEL2_SIZE,
                        shift_m: tuple[float, float] = (0.0, 0.0),
                        cloud_fraction: float = 0.0, aot550: float = 0.1, seed: int = 0, archive: bool = False,
                        processing_time: datetime | None = None, overwrite: bool = False,
                        brdf: bool = False) -> SyntheticProduct:
    """Write a synthetic Sentinel-2 L2A SAFE (Sen2Cor layout); parameters as ``write_sentinel2_l1c``.

    The BOA reflectance it encodes is the exact inverse of the atmosphere applied to the TOA, so it equals
    the surface reflectance truth outside clouds and shadows (``product.boa`` holds it everywhere).
    """
    return _write_sentinel2("L2A", path, platform, tile, acquisition_time, size, shift_m, cloud_fraction, aot550,
                            seed, archive, processing_time, overwrite, brdf)


@dataclass(frozen=True)
class _Sentinel2Plan:
    """Everything decided before rendering: grids, overpass, scene, names."""

    level: str
    platform: str
    tile: str
    grids: dict[int, PixelGrid]
    overpass: Overpass
    scene: Scene
    sensing: datetime
    generated: datetime
    relative_orbit: int
    absolute_orbit: int
    name: str
    granule: str
    to_lonlat: Transformer

    @property
    def bands(self) -> dict[int, list[str]]:
        return _L2A_BANDS if self.level == "L2A" else _L1C_BANDS

    @property
    def file_prefix(self) -> str:
        return f"T{self.tile}_{self.sensing:%Y%m%dT%H%M%S}"


def _write_sentinel2(level: str, path: str | Path, platform: str, tile: str,
                     acquisition_time: date | datetime | str | None, size: int | tuple[int, int],
                     shift_m: tuple[float, float], cloud_fraction: float, aot550: float, seed: int, archive: bool,
                     processing_time: datetime | None, overwrite: bool, brdf: bool = False) -> SyntheticProduct:
    if platform not in _PLATFORMS:
        raise SyntheticParameterError("platform",
                                      f"{platform!r} is not supported; use one of {', '.join(_PLATFORMS)}")
    when = parse_acquisition_time(acquisition_time)
    size = check_size("size", size, multiple_of=6, maximum=SENTINEL2_TILE_SIZE[0])
    shift, cloud_fraction, aot550, seed = check_scene_parameters(shift_m, cloud_fraction, aot550, seed)
    plan = _plan(level, platform, tile, when, size, shift, cloud_fraction, aot550, seed, processing_time, brdf)

    final_name = plan.name + (".zip" if archive else ".SAFE")
    final, staging = prepare_output(path, plan.name + ".SAFE", final_name, overwrite)
    truth_json, truth_store_path = truth_paths(path, plan.name)
    truth = TruthStore(truth_store_path)
    encoders = {band: SENTINEL2_REFLECTANCE.encode for group in plan.bands.values() for band in group}
    results = {res: render_grid(plan.scene, GridJob(f"r{res}m", plan.grids[res], plan.bands[res], encoders,
                                                    level=level, keep_masks=res in (20, 60)), truth)
               for res in (10, 20, 60)}
    safe = staging / (plan.name + ".SAFE")
    _write_safe(plan, safe, results)
    publish(staging, safe, final, write_zip if archive else None, plan.generated)

    g, r20 = plan.scene.geometry, results[20]
    xmin, ymin, xmax, ymax = plan.grids[10].bounds
    product = SyntheticProduct(
        path=final, product_id=plan.name, platform=platform, processing_level=level, acquisition_time=plan.sensing,
        seed=seed, shift_m=shift, aot550=aot550, cloud_fraction=cloud_fraction,
        cloud_cover_pct=round(r20.cloud_cover_pct, 6),
        cloud_shadow_pct=round(100.0 * r20.shadow_pixels / max(r20.valid_pixels, 1), 6),
        cloud_height_m=plan.scene.clouds.height_m, sun_zenith_deg=g.sun_zenith_deg, sun_azimuth_deg=g.sun_azimuth_deg,
        view_zenith_deg=g.view_zenith_deg, view_azimuth_deg=g.view_azimuth_deg, epsg=plan.grids[10].epsg,
        footprint_wkt=lonlat_polygon_wkt([plan.to_lonlat.transform(x, y) for x, y in
                                          ((xmin, ymax), (xmax, ymax), (xmax, ymin), (xmin, ymin))]),
        grids={f"r{res}m": grid for res, grid in plan.grids.items()}, truth_json=truth_json,
        truth_store=truth_store_path, surface_reflectance=truth.open("surface_reflectance"), toa=truth.open("toa"),
        scene=truth.open("scene"), boa=truth.open("boa") if level == "L2A" else {},
        nbar=truth.open("nbar") if brdf else {},
        extra={"mgrs_tile": plan.tile, "relative_orbit": plan.relative_orbit, "absolute_orbit": plan.absolute_orbit,
               "granule": plan.granule, "processing_baseline": _BASELINE, "water_vapour_cm": _WATER_VAPOUR_CM,
               **brdf_truth_scalars(plan.scene.brdf)})
    write_truth_json(product)
    return product


def _plan(level: str, platform: str, tile: str, when: date | datetime, size: tuple[int, int],
          shift: tuple[float, float], cloud_fraction: float, aot550: float, seed: int,
          processing_time: datetime | None, brdf: bool = False) -> _Sentinel2Plan:
    tile = tile.strip().upper().lstrip("T")
    epsg = sentinel2_tile_origin(tile)[0]
    grids = {res: sentinel2_tile_grid(tile, res, size) for res in (10, 20, 60)}
    xmin, ymin, xmax, ymax = grids[10].bounds
    centre = ((xmin + xmax) / 2, (ymin + ymax) / 2)
    overpass = plan_overpass(SENTINEL2_ORBIT, epsg, *centre, when)
    sensing = overpass.time
    generated = processing_time or (sensing + timedelta(hours=1, minutes=51, seconds=12)).replace(microsecond=0)
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    lon, lat = to_lonlat.transform(*centre)
    # the angles as MTD_TL carries them (Mean_Sun_Angle, Mean_Viewing_Incidence_Angle), so that the truth
    # follows from what a reader parses
    sun_zenith, sun_azimuth = (round_angle(float(v), 10) for v in solar_position(lat, lon, sensing))
    if sun_zenith > 85.0:
        raise SyntheticParameterError("acquisition_time", f"the sun is {90 - sun_zenith:.1f} deg above the horizon")
    x, y = np.meshgrid(np.linspace(xmin, xmax, 21), np.linspace(ymax, ymin, 21))
    view_zenith, view_azimuth = (round_angle(v, 10) for v in overpass.mean_view_angles(x, y))
    geometry = Geometry(sun_zenith, sun_azimuth, view_zenith, view_azimuth)
    clouds = CloudField.for_area(cloud_seed(seed, platform, sensing), cloud_fraction,
                                 (xmin - shift[0], ymin - shift[1], xmax - shift[0], ymax - shift[1]),
                                 sun_zenith, sun_azimuth)
    surface_brdf = SurfaceBRDF(overpass.view_angles, to_lonlat, sensing, lat) if brdf else None
    scene = Scene(platform, Landscape(seed), clouds, aot550, geometry, shift, brdf=surface_brdf)
    relative_orbit = overpass.track
    absolute_orbit = sentinel2_absolute_orbit(platform, sensing, relative_orbit)
    name = (f"S2{platform[-1]}_MSI{level}_{sensing:%Y%m%dT%H%M%S}_N{_BASELINE.replace('.', '')}_"
            f"R{relative_orbit:03d}_T{tile}_{generated:%Y%m%dT%H%M%S}")
    granule = f"{level}_T{tile}_A{absolute_orbit:06d}_{sensing:%Y%m%dT%H%M%S}"
    return _Sentinel2Plan(level, platform, tile, grids, overpass, scene, sensing, generated, relative_orbit,
                          absolute_orbit, name, granule, to_lonlat)


def _write_safe(plan: _Sentinel2Plan, safe: Path, results: dict[int, GridResult]) -> None:
    """Band, QI and metadata files of the SAFE folder ``safe``."""
    granule_dir = safe / "GRANULE" / plan.granule
    (granule_dir / "QI_DATA").mkdir(parents=True)
    (granule_dir / "AUX_DATA").mkdir()
    image_files, jobs = _band_jobs(plan, granule_dir / "IMG_DATA", results)
    mask_files, mask_jobs = _mask_jobs(plan, granule_dir / "QI_DATA", results)
    write_all(jobs + mask_jobs)

    r20 = results[20]
    grids = plan.grids
    xmin, ymin, xmax, ymax = grids[10].bounds
    footprint_latlon = [tuple(reversed(plan.to_lonlat.transform(x, y))) for x, y in
                        ((xmin, ymax), (xmax, ymax), (xmax, ymin), (xmin, ymin))]
    info = SafeInfo(level=plan.level, platform=plan.platform, tile=plan.tile, product_name=plan.name,
                    granule_name=plan.granule, sensing_time=plan.sensing, generation_time=plan.generated,
                    baseline=_BASELINE, relative_orbit=plan.relative_orbit, absolute_orbit=plan.absolute_orbit,
                    image_files=image_files, mask_files=mask_files, grids=grids, footprint_latlon=footprint_latlon,
                    cloud_cover_pct=r20.cloud_cover_pct, earth_sun_distance_au=earth_sun_distance_au(plan.sensing),
                    quality=_l2a_quality(r20, plan.scene.aot550) if plan.level == "L2A" else {})
    g = plan.scene.geometry
    _, ulx, uly = sentinel2_tile_origin(plan.tile)
    sun_grid, view_grid = _angle_grids(plan.overpass, plan.sensing, ulx, uly, plan.to_lonlat)
    (granule_dir / "MTD_TL.xml").write_bytes(tile_metadata_xml(
        info, *sun_grid, (g.sun_zenith_deg, g.sun_azimuth_deg), *view_grid, (g.view_zenith_deg, g.view_azimuth_deg)))
    (safe / f"MTD_MSI{plan.level}.xml").write_bytes(product_metadata_xml(info))
    (safe / "manifest.safe").write_bytes(manifest_xml(info, safe))


def _band_jobs(plan: _Sentinel2Plan, img: Path, results: dict[int, GridResult]) -> tuple[list[str], list[tuple]]:
    """The band files to write (``write_all`` jobs) and their MTD IMAGE_FILE names (relative, no suffix)."""
    prefix, l2a = plan.file_prefix, plan.level == "L2A"
    relative = f"GRANULE/{plan.granule}/IMG_DATA"
    jobs: list[tuple] = []
    image_files: list[str] = []
    for res in (10, 20, 60):
        folder = img / f"R{res}m" if l2a else img
        folder.mkdir(parents=True, exist_ok=True)
        grid = plan.grids[res]
        layers = {band: results[res].dn[band] for band in _mtd_file_order(plan.bands[res])}
        if l2a:
            layers["AOT"] = np.full(grid.shape, round(plan.scene.aot550 * 1000), dtype=np.uint16)
            layers["WVP"] = np.full(grid.shape, round(_WATER_VAPOUR_CM * 1000), dtype=np.uint16)
            if res > 10:
                layers["SCL"] = _scene_classification(results[res])
        for layer, data in layers.items():
            stem = f"{prefix}_{layer}_{res}m" if l2a else f"{prefix}_{layer}"
            jobs.append((write_sentinel2_jp2, folder / f"{stem}.jp2", data, grid))
            image_files.append(f"{relative}/R{res}m/{stem}" if l2a else f"{relative}/{stem}")
    if not l2a:  # L1C lists the bands in band order, not by resolution
        image_files = [f"{relative}/{prefix}_{band}" for band in _MTD_BAND_ORDER]
    return image_files, jobs


def _mask_jobs(plan: _Sentinel2Plan, qi: Path, results: dict[int, GridResult]
               ) -> tuple[list[tuple[str, str]], list[tuple]]:
    """QI_DATA rasters: MSK_CLASSI_B00 (60 m: opaque clouds, cirrus, snow), and for L2A the cloud and snow
    probabilities at 20 and 60 m. Returns the (type, relative path) MASK_FILENAME entries and the jobs."""
    relative = f"GRANULE/{plan.granule}/QI_DATA"
    grid60 = plan.grids[60]
    opaque = (results[60].cloud_opacity >= CLOUD_MASK_OPACITY).astype(np.uint8)
    classi = np.stack([opaque, np.zeros_like(opaque), np.zeros_like(opaque)])
    jobs = [(write_sentinel2_jp2, qi / "MSK_CLASSI_B00.jp2", classi, grid60)]
    mask_files = [("MSK_CLASSI", f"{relative}/MSK_CLASSI_B00.jp2")]
    if plan.level == "L2A":
        for res in (20, 60):
            grid = plan.grids[res]
            probability = _cloud_probability(results[res].cloud_opacity)
            jobs += [(write_sentinel2_jp2, qi / f"MSK_CLDPRB_{res}m.jp2", probability, grid),
                     (write_sentinel2_jp2, qi / f"MSK_SNWPRB_{res}m.jp2", np.zeros(grid.shape, np.uint8), grid)]
            mask_files += [("MSK_CLDPRB", f"{relative}/MSK_CLDPRB_{res}m.jp2"),
                           ("MSK_SNWPRB", f"{relative}/MSK_SNWPRB_{res}m.jp2")]
    return mask_files, jobs


def _mtd_file_order(bands: list[str]) -> list[str]:
    return [band for band in _MTD_BAND_ORDER if band in bands]


def _angle_grids(overpass: Overpass, sensing: datetime, ulx: float, uly: float, to_lonlat: Transformer
                 ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Sun and view angles on the tile's 23 x 23 nodes every 5 km, and the detector seeing each node."""
    steps = np.arange(23) * 5000.0
    x, y = np.meshgrid(ulx + steps, uly - steps)
    lon, lat = to_lonlat.transform(x, y)
    sun_zenith, sun_azimuth = solar_position(lat, lon, sensing)
    view_zenith, view_azimuth = overpass.view_angles(x, y)
    ax, ay = overpass.along_track_xy
    cross_km = ((x - overpass.track_point_xy[0]) * ay - (y - overpass.track_point_xy[1]) * ax) / 1000.0
    swath = 2 * overpass.orbit.half_swath_km
    detector = np.floor((cross_km + swath / 2) / (swath / _DETECTORS)).astype(int) + 1
    detector[(detector < 1) | (detector > _DETECTORS)] = 0
    view_zenith = np.where(detector > 0, view_zenith, np.nan)
    view_azimuth = np.where(detector > 0, view_azimuth, np.nan)
    return (sun_zenith, sun_azimuth), (view_zenith, view_azimuth, detector)


def _cloud_probability(opacity: np.ndarray) -> np.ndarray:
    """MSK_CLDPRB (%): the opacity in percent, kept on the same side of 10 % as the truth's cloud mask."""
    percent = np.rint(np.clip(opacity, 0.0, 1.0) * 100.0)
    cloud = opacity >= CLOUD_MASK_OPACITY
    return np.where(cloud, np.maximum(percent, 10), np.minimum(percent, 9)).astype(np.uint8)


def _scene_classification(result: GridResult) -> np.ndarray:
    """Sen2Cor-like SCL from the truth: 3 shadow, 4 vegetation, 5 not vegetated, 6 water, 8/9 cloud."""
    scl = np.full(result.land_cover.shape, 5, dtype=np.uint8)
    scl[np.isin(result.land_cover, _VEGETATION_CODES)] = 4
    scl[result.land_cover == 1] = 6
    cloud = result.cloud_opacity >= 0.1
    scl[(result.shadow_fraction >= 0.1) & ~cloud] = 3
    scl[cloud] = 8
    scl[result.cloud_opacity >= 0.35] = 9
    scl[result.land_cover == 0] = 0
    return scl


def _l2a_quality(r20: GridResult, aot550: float) -> dict[str, float]:
    scl = _scene_classification(r20)
    valid = max(int((scl > 0).sum()), 1)
    land = max(int(((scl > 0) & (r20.land_cover != 1)).sum()), 1)

    def pct(mask: np.ndarray, total: int = valid) -> float:
        return 100.0 * int(mask.sum()) / total

    cloudy = (scl == 8) | (scl == 9) | (scl == 10)
    return {
        "CLOUDY_PIXEL_OVER_LAND_PERCENTAGE": pct(cloudy & (r20.land_cover != 1), land),
        "NODATA_PIXEL_PERCENTAGE": 100.0 * (scl.size - valid) / scl.size,
        "SATURATED_DEFECTIVE_PIXEL_PERCENTAGE": 0.0, "DARK_FEATURES_PERCENTAGE": 0.0,
        "CLOUD_SHADOW_PERCENTAGE": pct(scl == 3), "VEGETATION_PERCENTAGE": pct(scl == 4),
        "NOT_VEGETATED_PERCENTAGE": pct(scl == 5), "WATER_PERCENTAGE": pct(scl == 6),
        "UNCLASSIFIED_PERCENTAGE": 0.0, "MEDIUM_PROBA_CLOUDS_PERCENTAGE": pct(scl == 8),
        "HIGH_PROBA_CLOUDS_PERCENTAGE": pct(scl == 9), "THIN_CIRRUS_PERCENTAGE": 0.0, "SNOW_ICE_PERCENTAGE": 0.0,
        "GRANULE_MEAN_AOT": aot550, "GRANULE_MEAN_WV": _WATER_VAPOUR_CM,
    }
