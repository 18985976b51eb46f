"""The steps every synthetic product shares: parameters, scene set-up, rendering grids to DNs and truth.

The writers (``landsat``, ``sentinel2``) decide grids, bands, encodings and file layout; everything else
happens here once.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np

from ..sensors import get_sensor
from .atmosphere import surface_reflectance
from .grid import PixelGrid
from .noise import derive_seed
from .parameters import SyntheticParameterError, check_fraction, check_positive, check_seed, check_shift
from .render import RenderedBlock, Scene
from .spectra import MATERIAL_NAMES
from .truth import CHUNK_ROWS, TruthStore

_log = logging.getLogger(__name__)

__all__ = ["parse_acquisition_time", "check_scene_parameters", "GridJob", "GridResult", "render_grid",
           "prepare_output", "publish", "lonlat_polygon_wkt", "cloud_seed", "DEFAULT_ACQUISITION_DATE", "STRIP_ROWS"]

DEFAULT_ACQUISITION_DATE = date(2024, 6, 1)
#: Rows rendered at once: the truth store's chunk height (see there).
STRIP_ROWS = CHUNK_ROWS


def parse_acquisition_time(value: date | datetime | str | None) -> date | datetime:
    """A date (the writer picks the overpass time) or a UTC datetime; strings are ISO 8601."""
    if value is None:
        return DEFAULT_ACQUISITION_DATE
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            value = datetime.fromisoformat(text) if "T" in text or " " in text else date.fromisoformat(text)
        except ValueError:
            raise SyntheticParameterError("acquisition_time", f"{value!r} is no ISO 8601 date or time") from None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return value
    raise SyntheticParameterError("acquisition_time", f"expected a date, datetime or ISO string, got {value!r}")


def check_scene_parameters(shift_m: tuple[float, float], cloud_fraction: float, aot550: float, seed: int
                           ) -> tuple[tuple[float, float], float, float, int]:
    """The validated ``(shift_m, cloud_fraction, aot550, seed)`` every writer takes."""
    return (check_shift("shift_m", shift_m), check_fraction("cloud_fraction", cloud_fraction),
            check_positive("aot550", aot550, upper=5.0), check_seed("seed", seed))


def cloud_seed(seed: int, platform: str, acquisition_time: datetime) -> int:
    """Clouds differ between acquisitions of the same ground (same seed), but not between reruns."""
    return derive_seed(seed, "clouds", platform, acquisition_time.isoformat())


def lonlat_polygon_wkt(points: list[tuple[float, float]]) -> str:
    """``POLYGON ((lon lat, ...))`` of a ring of (lon, lat) points, closed."""
    ring = list(points) + [points[0]]
    return "POLYGON ((" + ", ".join(f"{lon:.6f} {lat:.6f}" for lon, lat in ring) + "))"


def publish(staging: Path, folder: Path, final: Path, archiver: Callable[[Path, Path, datetime], None] | None,
            mtime: datetime) -> None:
    """Move the finished product folder to ``final``, or write it there as an archive, and drop the staging."""
    if archiver is None:
        folder.replace(final)
    else:
        archiver(staging / final.name, folder, mtime)
        (staging / final.name).replace(final)
    shutil.rmtree(staging)


def prepare_output(directory: str | Path, folder_name: str, final_name: str, overwrite: bool) -> tuple[Path, Path]:
    """``(final path, staging folder)``. The product folder ``folder_name`` is built inside a hidden staging
    folder and moved (or archived) to ``directory/final_name`` at the end, so an interrupted run leaves no
    half product under the real name."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / final_name
    if final.exists():
        if not overwrite:
            raise SyntheticParameterError("path", f"{final} exists; pass overwrite=True to replace it")
        shutil.rmtree(final) if final.is_dir() else final.unlink()
    staging = directory / f".{final_name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    (staging / folder_name).mkdir(parents=True)
    return final, staging


@dataclass(frozen=True)
class GridJob:
    """What to render on one grid and how to encode it.

    ``encoders`` maps each band to a function ``(values, nodata) -> uint16 DN``; ``level`` ``"L1"`` encodes
    TOA, ``"L2A"`` encodes the BOA reflectance retrieved from it. ``keep_masks`` keeps the full-grid cloud
    opacity, shadow and land cover (for QA layers).
    """

    group: str
    grid: PixelGrid
    bands: list[str]
    encoders: dict[str, Callable[[np.ndarray, np.ndarray | None], np.ndarray]]
    thermal_bands: list[str] = field(default_factory=list)
    level: str = "L1"
    keep_masks: bool = False
    nodata: Callable[[PixelGrid, int, int], np.ndarray | None] | None = None


@dataclass
class GridResult:
    """DNs of every band of a grid, and (if kept) its full-grid masks and statistics."""

    dn: dict[str, np.ndarray]
    cloud_opacity: np.ndarray | None = None
    shadow_fraction: np.ndarray | None = None
    land_cover: np.ndarray | None = None
    nodata: np.ndarray | None = None
    valid_pixels: int = 0
    cloud_pixels: int = 0
    shadow_pixels: int = 0
    class_pixels: dict[int, int] = field(default_factory=dict)

    @property
    def cloud_cover_pct(self) -> float:
        return 100.0 * self.cloud_pixels / self.valid_pixels if self.valid_pixels else 0.0


def _truth_variables(job: GridJob, platform: str, brdf: bool = False) -> dict[str, dict[str, tuple[str, dict]]]:
    sensor = get_sensor(platform)

    def band_attrs(band: str, units: str) -> dict:
        return {"units": units, "long_name": f"{platform} {band}",
                "central_wavelength_nm": round(sensor.central_wavelength_nm(band), 2),
                "native_gsd_m": sensor.band(band).native_gsd_m}

    reflectance = {band: ("float32", band_attrs(band, "1")) for band in job.bands}
    kinds = {
        "surface_reflectance": dict(reflectance),
        "toa": {**reflectance, **{b: ("float32", band_attrs(b, "K")) for b in job.thermal_bands}},
        "scene": {
            "land_cover": ("uint8", {"flag_values": list(MATERIAL_NAMES),
                                     "flag_meanings": " ".join(MATERIAL_NAMES.values()),
                                     "long_name": "dominant surface material (0 = no data)"}),
            "cloud": ("bool", {"long_name": "cloud (opacity >= 0.1)"}),
            "shadow": ("bool", {"long_name": "cloud shadow (>= 10 % of direct sunlight blocked), not cloud"}),
            "nodata": ("bool", {"long_name": "outside the data footprint"}),
            "cloud_opacity": ("float32", {"units": "1", "long_name": "cloud opacity"}),
            "shadow_fraction": ("float32", {"units": "1", "long_name": "share of direct sunlight blocked"}),
        },
    }
    if job.thermal_bands:
        kinds["scene"]["surface_temperature"] = ("float32", {"units": "K", "long_name": "surface temperature"})
    if job.level == "L2A":
        kinds["boa"] = dict(reflectance)
    if brdf:
        kinds["nbar"] = dict(reflectance)
    return kinds


def render_grid(scene: Scene, job: GridJob, truth: TruthStore, workers: int = 2) -> GridResult:
    """Render all rows of ``job.grid`` in strips (``workers`` threads), encode DNs, store the truth."""
    grid = job.grid
    kinds = _truth_variables(job, scene.platform, brdf=scene.brdf is not None)
    for kind, variables in kinds.items():
        truth.add_grid(kind, job.group, grid, variables)
    result = GridResult(dn={band: np.zeros(grid.shape, dtype=np.uint16) for band in job.bands + job.thermal_bands})
    if job.keep_masks:
        result.cloud_opacity = np.zeros(grid.shape, dtype=np.float32)
        result.shadow_fraction = np.zeros(grid.shape, dtype=np.float32)
        result.land_cover = np.zeros(grid.shape, dtype=np.uint8)
        result.nodata = np.zeros(grid.shape, dtype=bool)
    statistics: list[tuple[int, int, int, np.ndarray]] = []

    def strip(row_start: int) -> None:
        row_stop = min(row_start + STRIP_ROWS, grid.rows)
        nodata = job.nodata(grid, row_start, row_stop) if job.nodata else None
        first, stop = _data_columns(nodata, grid.cols)
        # a tilted swath covers a diagonal band of a strip: render only its columns (values are functions of
        # the coordinates, so the rendered pixels are the same), the rest is no data anyway
        target = grid if (first, stop) == (0, grid.cols) else \
            PixelGrid(grid.epsg, grid.x0 + first * grid.res, grid.y0, grid.res, grid.rows, stop - first)
        block = scene.render(target, row_start, row_stop, job.bands) if job.bands else RenderedBlock(row_start)
        if job.thermal_bands:
            thermal = scene.render_thermal(target, row_start, row_stop, job.thermal_bands)
            block.toa.update(thermal.toa)
            block.surface_temperature = thermal.surface_temperature
            if block.cloud_opacity is None:
                block.cloud_opacity, block.shadow_fraction = thermal.cloud_opacity, thermal.shadow_fraction
        if target is not grid:
            block = _widened(block, first, grid.cols)
        _store_block(scene, job, block, nodata, result, truth)
        valid = ~nodata if nodata is not None else np.ones(block.cloud_opacity.shape, dtype=bool)
        land_cover = block.land_cover if block.land_cover is not None else np.zeros(valid.shape, dtype=np.uint8)
        statistics.append((int(valid.sum()), int((block.cloud & valid).sum()), int((block.shadow & valid).sum()),
                           np.bincount(land_cover[valid], minlength=len(MATERIAL_NAMES) + 1)))

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(strip, start) for start in range(0, grid.rows, STRIP_ROWS)]:
            future.result()
    _log.info("rendered %s %s (%d x %d px, %d bands) in %.1f s", scene.platform, job.group, grid.rows, grid.cols,
              len(job.bands) + len(job.thermal_bands), time.perf_counter() - started)
    result.valid_pixels = sum(s[0] for s in statistics)
    result.cloud_pixels = sum(s[1] for s in statistics)
    result.shadow_pixels = sum(s[2] for s in statistics)
    counts = np.sum([s[3] for s in statistics], axis=0)
    result.class_pixels = {code: int(counts[code]) for code in MATERIAL_NAMES}
    return result


#: Columns rendered beyond a strip's data on either side: the QA layers dilate clouds by 3 pixels, so a cloud
#: just outside the data still marks its neighbours inside as it did when the whole strip was rendered.
_DATA_MARGIN_COLUMNS = 8


def _data_columns(nodata: np.ndarray | None, cols: int) -> tuple[int, int]:
    """``(first, stop)``: the columns of a strip that hold data, widened by ``_DATA_MARGIN_COLUMNS``."""
    if nodata is None:
        return 0, cols
    columns = np.flatnonzero(~nodata.all(axis=0))
    if columns.size == 0:
        return 0, min(cols, 1)
    return max(int(columns[0]) - _DATA_MARGIN_COLUMNS, 0), min(int(columns[-1]) + 1 + _DATA_MARGIN_COLUMNS, cols)


def _widened(block: RenderedBlock, first: int, cols: int) -> RenderedBlock:
    """A block rendered on columns ``first:`` of a strip, padded to the strip's ``cols`` (reflectances and
    temperatures NaN, clouds, shadows and land cover 0 outside)."""
    def pad(values: np.ndarray | None, fill: float) -> np.ndarray | None:
        if values is None:
            return None
        out = np.full((values.shape[0], cols), fill, dtype=values.dtype)
        out[:, first:first + values.shape[1]] = values
        return out

    return RenderedBlock(
        block.row_start,
        surface_reflectance={band: pad(v, np.nan) for band, v in block.surface_reflectance.items()},
        nbar={band: pad(v, np.nan) for band, v in block.nbar.items()},
        toa={band: pad(v, np.nan) for band, v in block.toa.items()},
        land_cover=pad(block.land_cover, 0), cloud_opacity=pad(block.cloud_opacity, 0.0),
        shadow_fraction=pad(block.shadow_fraction, 0.0), surface_temperature=pad(block.surface_temperature, np.nan))


def _store_block(scene: Scene, job: GridJob, block: RenderedBlock, nodata: np.ndarray | None, result: GridResult,
                 truth: TruthStore) -> None:
    rows = slice(block.row_start, block.row_start + block.cloud_opacity.shape[0])
    group, start = job.group, block.row_start

    def masked(values: np.ndarray) -> np.ndarray:
        if nodata is None:
            return values
        values = values.copy()
        values[nodata] = np.nan
        return values

    for band in job.bands:
        truth.write("surface_reflectance", group, band, start, masked(block.surface_reflectance[band]))
        if band in block.nbar:
            truth.write("nbar", group, band, start, masked(block.nbar[band]))
        toa = masked(block.toa[band])
        truth.write("toa", group, band, start, toa)
        encoded = toa
        if job.level == "L2A":
            encoded = surface_reflectance(toa, scene.atmosphere(band))
            truth.write("boa", group, band, start, encoded)
        result.dn[band][rows] = job.encoders[band](encoded, nodata)
    for band in job.thermal_bands:
        bt = masked(block.toa[band])
        truth.write("toa", group, band, start, bt)
        result.dn[band][rows] = job.encoders[band](bt, nodata)
    if block.surface_temperature is not None:
        truth.write("scene", group, "surface_temperature", start, masked(block.surface_temperature))
    land_cover = block.land_cover if block.land_cover is not None else np.zeros(block.cloud_opacity.shape, np.uint8)
    cloud, shadow = block.cloud, block.shadow
    if nodata is not None:
        land_cover = np.where(nodata, np.uint8(0), land_cover)
        cloud, shadow = cloud & ~nodata, shadow & ~nodata
    truth.write("scene", group, "land_cover", start, land_cover)
    truth.write("scene", group, "cloud", start, cloud)
    truth.write("scene", group, "shadow", start, shadow)
    truth.write("scene", group, "nodata", start, nodata if nodata is not None else np.zeros(cloud.shape, bool))
    truth.write("scene", group, "cloud_opacity", start, masked(block.cloud_opacity))
    truth.write("scene", group, "shadow_fraction", start, masked(block.shadow_fraction))
    if job.keep_masks:
        result.cloud_opacity[rows] = block.cloud_opacity
        result.shadow_fraction[rows] = block.shadow_fraction
        result.land_cover[rows] = land_cover
        if nodata is not None:
            result.nodata[rows] = nodata


def round_angle(value: float, digits: int = 8) -> float:
    """Angles as written in metadata (so computations use exactly what a reader will parse)."""
    return float(f"{value:.{digits}f}")


def utc_iso(value: datetime, digits: int = 3) -> str:
    """``2024-06-01T10:23:21.638Z``."""
    text = value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[: len(text) - (6 - digits)] + "Z" if digits else text[:19] + "Z"

