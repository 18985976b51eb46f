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

import math
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
from pyproj import Transformer

from ..sensors import get_sensor
from .archive import write_zip
from .clouds import CLOUD_MASK_OPACITY, CloudField
from .grid import DEFAULT_SENTINEL2_SIZE, DEFAULT_TILE, PixelGrid, sentinel2_tile_grid, sentinel2_tile_origin
from .landscape import Landscape
from .noise import derive_seed
from .orbits import SENTINEL2_ORBIT, Overpass, plan_overpass, sentinel2_absolute_orbit
from .parameters import SyntheticParameterError, check_fraction, check_positive, check_shift, check_size
from .pipeline import GridJob, GridResult, parse_acquisition_time, prepare_output, render_grid, round_angle
from .radiometry import SENTINEL2_REFLECTANCE
from .rasters import write_all, write_sentinel2_jp2
from .render import Geometry, Scene
from .safe import SafeInfo, manifest_xml, product_metadata_xml, tile_metadata_xml
from .spectra import MATERIAL_NAMES
from .sun import earth_sun_distance_au, solar_angles
from .truth import SyntheticProduct, TruthStore, write_truth_json

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
_WATER_VAPOUR_CM = 2.0
_VEGETATION_CODES = (3, 4, 6, 7)  # cropland, grassland, broadleaf and coniferous forest
_DETECTORS = 12


def write_sentinel2_l1c(path: str | Path, *, platform: str = "SENTINEL_2B", tile: str = DEFAULT_TILE,
                        acquisition_time: date | datetime | str | None = None,
                        size: int | tuple[int, int] = DEFAULT_SENTINEL2_SIZE, shift_m: tuple[float, float] = (0.0, 0.0),
                        cloud_fraction: float = 0.0, aot550: float = 0.1, seed: int = 0, archive: bool = False,
                        processing_time: datetime | None = None, overwrite: bool = False) -> SyntheticProduct:
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
    shift_m, cloud_fraction, aot550, seed, archive, processing_time, overwrite
        As for ``write_landsat_l1``; ``processing_time`` defaults to sensing + 1 h 51 min.
    """
    return _write_sentinel2("L1C", path, platform, tile, acquisition_time, size, shift_m, cloud_fraction, aot550,
                            seed, archive, processing_time, overwrite)


def write_sentinel2_l2a(path: str | Path, *, platform: str = "SENTINEL_2B", tile: str = DEFAULT_TILE,
                        acquisition_time: date | datetime | str | None = None,
                        size: int | tuple[int, int] = DEFAULT_SENTINEL2_SIZE, shift_m: tuple[float, float] = (0.0, 0.0),
                        cloud_fraction: float = 0.0, aot550: float = 0.1, seed: int = 0, archive: bool = False,
                        processing_time: datetime | None = None, overwrite: bool = False) -> SyntheticProduct:
    """Write a synthetic Sentinel-2 L2A SAFE (Sen2Cor layout); parameters as ``write_sentinel2_l1c``.

    The BOA reflectance it encodes is the exact inverse of the atmosphere applied to the TOA, so it equals
    the surface reflectance truth outside clouds and shadows (``product.boa`` holds it everywhere).
    """
    return _write_sentinel2("L2A", path, platform, tile, acquisition_time, size, shift_m, cloud_fraction, aot550,
                            seed, archive, processing_time, overwrite)


def _write_sentinel2(level: str, path: str | Path, platform: str, tile: str,
                     acquisition_time: date | datetime | str | None, size: int | tuple[int, int],
                     shift_m: tuple[float, float], cloud_fraction: float, aot550: float, seed: int, archive: bool,
                     processing_time: datetime | None, overwrite: bool) -> SyntheticProduct:
    if platform not in _PLATFORMS:
        raise SyntheticParameterError("platform", f"{platform!r} is not supported; use one of {', '.join(_PLATFORMS)}")
    when = parse_acquisition_time(acquisition_time)
    size = check_size("size", size, multiple_of=6, maximum=SENTINEL2_TILE_SIZE[0])
    shift = check_shift("shift_m", shift_m)
    cloud_fraction = check_fraction("cloud_fraction", cloud_fraction)
    aot550 = check_positive("aot550", aot550, upper=5.0)
    tile = tile.strip().upper().lstrip("T")
    epsg, ulx, uly = sentinel2_tile_origin(tile)
    grids = {res: sentinel2_tile_grid(tile, res, size) for res in (10, 20, 60)}
    xmin, ymin, xmax, ymax = grids[10].bounds
    centre = ((xmin + xmax) / 2, (ymin + ymax) / 2)

    overpass = plan_overpass(SENTINEL2_ORBIT, epsg, *centre, when)
    sensing = overpass.time
    generated = processing_time or (sensing + timedelta(hours=1, minutes=51, seconds=12)).replace(microsecond=0)
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    lon, lat = to_lonlat.transform(*centre)
    sun_zenith, sun_azimuth = (round_angle(float(v), 10) for v in solar_angles(sensing, lat, lon))
    if sun_zenith > 85.0:
        raise SyntheticParameterError("acquisition_time", f"the sun is {90 - sun_zenith:.1f} deg above the horizon")
    view_zenith, view_azimuth = _mean_view_angles(overpass, grids[10])
    geometry = Geometry(sun_zenith, sun_azimuth, view_zenith, view_azimuth)
    clouds = CloudField.for_area(derive_seed(seed, "clouds", platform, sensing.isoformat()), cloud_fraction,
                                 (xmin - shift[0], ymin - shift[1], xmax - shift[0], ymax - shift[1]),
                                 sun_zenith, sun_azimuth)
    scene = Scene(platform, Landscape(seed), clouds, aot550, geometry, shift)

    relative_orbit = overpass.track
    absolute_orbit = sentinel2_absolute_orbit(platform, sensing, relative_orbit)
    mission = "S2" + platform[-1]
    name = (f"{mission}_MSI{level}_{sensing:%Y%m%dT%H%M%S}_N{_BASELINE.replace('.', '')}_R{relative_orbit:03d}_"
            f"T{tile}_{generated:%Y%m%dT%H%M%S}")
    granule = f"{level}_T{tile}_A{absolute_orbit:06d}_{sensing:%Y%m%dT%H%M%S}"
    final, staging = prepare_output(path, name + ".SAFE", name + (".zip" if archive else ".SAFE"), overwrite)
    safe = staging / (name + ".SAFE")
    granule_dir = safe / "GRANULE" / granule
    (granule_dir / "QI_DATA").mkdir(parents=True)
    (granule_dir / "AUX_DATA").mkdir()
    truth_store_path = Path(path) / f"{name}_truth.zarr"
    truth = TruthStore(truth_store_path)

    bands_per_grid = _L2A_BANDS if level == "L2A" else _L1C_BANDS
    encoders = {band: SENTINEL2_REFLECTANCE.encode for group in bands_per_grid.values() for band in group}
    results: dict[int, GridResult] = {}
    for res in (10, 20, 60):
        results[res] = render_grid(scene, GridJob(f"r{res}m", grids[res], bands_per_grid[res], encoders,
                                                  level=level, keep_masks=res in (20, 60)), truth)

    prefix = f"T{tile}_{sensing:%Y%m%dT%H%M%S}"
    image_files: list[str] = []
    jobs: list[tuple] = []
    img = granule_dir / "IMG_DATA"
    for res in (10, 20, 60):
        folder = img / f"R{res}m" if level == "L2A" else img
        folder.mkdir(parents=True, exist_ok=True)
        for band in bands_per_grid[res]:
            file = folder / (f"{prefix}_{band}_{res}m.jp2" if level == "L2A" else f"{prefix}_{band}.jp2")
            jobs.append((write_sentinel2_jp2, file, results[res].dn[band], grids[res]))
        if level == "L2A":
            constants = {"AOT": round(aot550 * 1000), "WVP": round(_WATER_VAPOUR_CM * 1000)}
            for layer, value in constants.items():
                jobs.append((write_sentinel2_jp2, folder / f"{prefix}_{layer}_{res}m.jp2",
                             np.full(grids[res].shape, value, dtype=np.uint16), grids[res]))
            if res in (20, 60):
                jobs.append((write_sentinel2_jp2, folder / f"{prefix}_SCL_{res}m.jp2", _scene_classification(results[res]),
                             grids[res]))
    if level == "L1C":
        image_files = [f"GRANULE/{granule}/IMG_DATA/{prefix}_{band}" for band in _mtd_band_order()]
    else:
        image_files = [f"GRANULE/{granule}/IMG_DATA/R{res}m/{prefix}_{band}_{res}m"
                       for res in (10, 20, 60) for band in _mtd_file_order(bands_per_grid[res]) + ["AOT", "WVP"]
                       + (["SCL"] if res > 10 else [])]

    qi = granule_dir / "QI_DATA"
    mask_files = [("MSK_CLASSI", f"GRANULE/{granule}/QI_DATA/MSK_CLASSI_B00.jp2")]
    r60 = results[60]
    classi = np.stack([(r60.cloud_opacity >= 0.1).astype(np.uint8), np.zeros(grids[60].shape, np.uint8),
                       np.zeros(grids[60].shape, np.uint8)])
    jobs.append((write_sentinel2_jp2, qi / "MSK_CLASSI_B00.jp2", classi, grids[60]))
    if level == "L2A":
        for res in (20, 60):
            probability = _cloud_probability(results[res].cloud_opacity)
            jobs.append((write_sentinel2_jp2, qi / f"MSK_CLDPRB_{res}m.jp2", probability, grids[res]))
            jobs.append((write_sentinel2_jp2, qi / f"MSK_SNWPRB_{res}m.jp2", np.zeros(grids[res].shape, np.uint8),
                         grids[res]))
            mask_files += [("MSK_CLDPRB", f"GRANULE/{granule}/QI_DATA/MSK_CLDPRB_{res}m.jp2"),
                           ("MSK_SNWPRB", f"GRANULE/{granule}/QI_DATA/MSK_SNWPRB_{res}m.jp2")]
    write_all(jobs)

    r20 = results[20]
    cloud_cover = r20.cloud_cover_pct
    footprint_latlon = [tuple(reversed(to_lonlat.transform(x, y))) for x, y in
                        ((xmin, ymax), (xmax, ymax), (xmax, ymin), (xmin, ymin))]
    info = SafeInfo(level=level, platform=platform, tile=tile, product_name=name, granule_name=granule,
                    sensing_time=sensing, generation_time=generated, baseline=_BASELINE,
                    relative_orbit=relative_orbit, absolute_orbit=absolute_orbit, image_files=image_files,
                    mask_files=mask_files, grids=grids, footprint_latlon=footprint_latlon,
                    cloud_cover_pct=cloud_cover, earth_sun_distance_au=earth_sun_distance_au(sensing),
                    quality=_l2a_quality(r20, aot550) if level == "L2A" else {})
    sun_grid, view_grid = _angle_grids(overpass, sensing, epsg, ulx, uly, to_lonlat)
    (granule_dir / "MTD_TL.xml").write_bytes(
        tile_metadata_xml(info, *sun_grid, (sun_zenith, sun_azimuth), *view_grid, (view_zenith, view_azimuth)))
    (safe / f"MTD_MSI{level}.xml").write_bytes(product_metadata_xml(info))
    (safe / "manifest.safe").write_bytes(manifest_xml(info, safe))

    if archive:
        write_zip(staging / final.name, safe, generated)
        (staging / final.name).replace(final)
    else:
        safe.replace(final)
    shutil.rmtree(staging)

    ring = [(lon_, lat_) for lat_, lon_ in footprint_latlon]
    footprint_wkt = "POLYGON ((" + ", ".join(f"{x:.6f} {y:.6f}" for x, y in ring + ring[:1]) + "))"
    product = SyntheticProduct(
        path=final, product_id=name, platform=platform, processing_level=level, acquisition_time=sensing, seed=seed,
        shift_m=shift, aot550=aot550, cloud_fraction=cloud_fraction, cloud_cover_pct=round(cloud_cover, 6),
        sun_zenith_deg=sun_zenith, sun_azimuth_deg=sun_azimuth, view_zenith_deg=view_zenith,
        view_azimuth_deg=view_azimuth, epsg=epsg, footprint_wkt=footprint_wkt,
        truth_json=Path(path) / f"{name}_truth.json", truth_store=truth_store_path,
        surface_reflectance=truth.open("surface_reflectance"), toa=truth.open("toa"), scene=truth.open("scene"),
        boa=truth.open("boa") if level == "L2A" else {},
        extra={"tile": tile, "relative_orbit": relative_orbit, "absolute_orbit": absolute_orbit,
               "granule": granule, "grids": {f"r{res}m": grid for res, grid in grids.items()},
               "cloud_height_m": clouds.height_m,
               "shadow_pct": round(100.0 * r20.shadow_pixels / max(r20.valid_pixels, 1), 6)})
    write_truth_json(product.truth_json, _truth_scalars(product))
    return product


def _mtd_band_order() -> list[str]:
    return ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


def _mtd_file_order(bands: list[str]) -> list[str]:
    return [band for band in _mtd_band_order() if band in bands]


def _mean_view_angles(overpass: Overpass, grid: PixelGrid) -> tuple[float, float]:
    """Mean view zenith and azimuth over the product area (21 x 21 samples), as written in MTD_TL."""
    xmin, ymin, xmax, ymax = grid.bounds
    x, y = np.meshgrid(np.linspace(xmin, xmax, 21), np.linspace(ymax, ymin, 21))
    zenith, azimuth = overpass.view_angles(x.ravel(), y.ravel())
    mean_azimuth = math.degrees(math.atan2(np.mean(np.sin(np.radians(azimuth)) * zenith),
                                           np.mean(np.cos(np.radians(azimuth)) * zenith))) % 360.0
    return round_angle(float(np.mean(zenith)), 10), round_angle(mean_azimuth, 10)


def _angle_grids(overpass: Overpass, sensing: datetime, epsg: int, ulx: float, uly: float,
                 to_lonlat: Transformer) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Sun and view angles on the tile's 23 x 23 nodes every 5 km, and the detector seeing each node."""
    steps = np.arange(23) * 5000.0
    x, y = np.meshgrid(ulx + steps, uly - steps)
    lon, lat = to_lonlat.transform(x, y)
    sun_zenith, sun_azimuth = solar_angles(sensing, lat, lon)
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


def _truth_scalars(product: SyntheticProduct) -> dict:
    grids = product.extra["grids"]
    return {
        "product": product.path.name, "product_id": product.product_id, "platform": product.platform,
        "sensor": get_sensor(product.platform).sensor, "processing_level": product.processing_level,
        "acquisition_time": product.acquisition_time, "seed": product.seed, "shift_m": list(product.shift_m),
        "aot550": product.aot550, "angstrom_exponent": 1.3, "water_vapour_cm": _WATER_VAPOUR_CM,
        "cloud_fraction_requested": product.cloud_fraction, "cloud_cover_pct": product.cloud_cover_pct,
        "cloud_shadow_pct": product.extra["shadow_pct"], "cloud_height_m": product.extra["cloud_height_m"],
        "sun_zenith_deg": product.sun_zenith_deg, "sun_azimuth_deg": product.sun_azimuth_deg,
        "view_zenith_deg": product.view_zenith_deg, "view_azimuth_deg": product.view_azimuth_deg,
        "epsg": product.epsg, "footprint": product.footprint_wkt, "mgrs_tile": product.extra["tile"],
        "relative_orbit": product.extra["relative_orbit"], "absolute_orbit": product.extra["absolute_orbit"],
        "grids": {name: {"epsg": g.epsg, "transform": list(g.transform)[:6], "shape": list(g.shape)}
                  for name, g in grids.items()},
        "land_cover_classes": {str(code): name for code, name in MATERIAL_NAMES.items()},
        "truth_arrays": product.truth_store.name,
        "atmosphere_model": "gmsdask.synthetic.atmosphere (Rayleigh + Angstrom aerosol, Lambertian coupling)",
    }
