"""Scene-level atmospheric correction: Level-1 TOA reflectance -> surface reflectance, lazily per chunk.

``correct_scene`` takes a lazy Level-1 scene tree and returns a lazy tree in which every surface-reflectance band
of the sensor registry (Sentinel-2 without B09/B10, Landsat-8/9 B1-B7, TM/ETM+ B1-B5 and B7) holds surface
reflectance, with a per-band uncertainty layer, plus a group ``atmosphere`` with the aerosol field. Thermal
bands pass through (brightness temperature, K); pan, cirrus and B09 stay TOA reflectance (their attrs say so).

What is eager (small and explicit): the scene's geometry at the aerosol cells, the lookup tables (cache or
6S runs), the dark-target reduction of four bands to cell statistics, the water-vapour ratio (two scene means),
and the DEM mean. What is lazy: the correction of every pixel, ``map_blocks`` per chunk, with the per-cell
coefficients interpolated bilinearly onto the pixels (cell-centre grid in map coordinates: results do not
depend on the chunking).

Per pixel: ``y = (rho_toa - rho_path) / T;  rho = y / (1 + S y)`` (6S's ``y = xap rho_toa - xb``,
``xc = S``). The uncertainty layer ``ac_uncertainty_<band>`` is ``|rho(AOT + sigma) - rho(AOT)|`` with sigma the
aerosol field's uncertainty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..algorithms.atmospheric import CellBilinear, invert_lambertian
from ..errors import GmsdaskError, ProcessingError
from ..masks import mask_on_grid
from ..sensors import get_sensor
from .aerosol import (DDV_ROLES, AerosolField, CellGrid, DarkTargets, block_mean, dark_target_sums, ddv_cells,
                      pixel_size_m, retrieve_aerosol)
from .inputs import (DEFAULT_OZONE_CM_ATM, DEFAULT_WATER_VAPOUR_GCM2, WaterVapour, cell_geometry,
                     mean_elevation_m, retrieve_water_vapour)
from .lut import BandTable, TableStats, build_tables, default_cache_dir, geometry_grid_for
from .sixs import AtmosphereState, cached_run

__all__ = ["correct_scene", "AtmosphereInfo", "corrected_bands", "SURFACE_REFLECTANCE", "LEVEL2_LEVELS",
           "ATMOSPHERE_GROUP"]

#: The ``quantity`` attr of corrected bands: the value the readers give Level-2 products' bands.
SURFACE_REFLECTANCE = "surface reflectance"
#: Processing levels that already are surface reflectance.
LEVEL2_LEVELS = frozenset({"L2A", "L2SP", "L2SR"})
#: Name of the group the aerosol field is stored in.
ATMOSPHERE_GROUP = "atmosphere"
_LEVEL = "L1C"


@dataclass(frozen=True)
class AtmosphereInfo:
    """What the correction did, for the catalogue (``facts()`` is JSON-able).

    ``status``: ``"done"`` or ``"skipped"`` (Level-2 input: already surface reflectance).
    """

    status: str
    note: str = ""
    aot550_mean: float | None = None
    aot550_min: float | None = None
    aot550_max: float | None = None
    aot_source: str = ""
    aot_retrieved_cells: int = 0
    aot_rejected_cells: int = 0
    aot_cells: int = 0
    water_vapour_gcm2: float | None = None
    water_vapour_source: str = ""
    ozone_cm_atm: float | None = None
    elevation_m: float | None = None
    geometry_source: str = ""
    retrieval_pixel_m: float | None = None
    corrected_bands: tuple[str, ...] = ()
    tables: TableStats = field(default_factory=TableStats)

    def facts(self) -> dict[str, Any]:
        facts = {name: getattr(self, name) for name in
                 ("status", "note", "aot550_mean", "aot550_min", "aot550_max", "aot_source", "aot_retrieved_cells",
                  "aot_rejected_cells", "aot_cells", "water_vapour_gcm2", "water_vapour_source", "ozone_cm_atm",
                  "elevation_m", "geometry_source", "retrieval_pixel_m")}
        facts["corrected_bands"] = list(self.corrected_bands)
        facts["sixs_runs"] = self.tables.runs
        facts["sixs_cpu_seconds"] = round(self.tables.cpu_seconds, 3)
        return facts


def corrected_bands(platform: str) -> list[str]:
    """The bands ``correct_scene`` turns into surface reflectance (the registry's surface-reflectance bands)."""
    sensor = get_sensor(platform)
    return [b.name for b in sensor.bands if b.kind == "reflective" and not (sensor.sensor == "MSI" and b.name == "B09")]


def _band_groups(scene: xr.DataTree) -> dict[str, str]:
    return {name: group for group, node in scene.children.items() if group.startswith("r")
            for name in node.ds.data_vars}


def _role_bands(platform: str, available: dict[str, str]) -> dict[str, tuple[str, str]]:
    sensor = get_sensor(platform)
    roles = {}
    for role, names in DDV_ROLES.items():
        for common in names:
            match = [b.name for b in sensor.bands if b.common_name == common and b.name in available]
            if match:
                roles[role] = (available[match[0]], match[0])
                break
        else:
            raise GmsdaskError(f"the scene has no {'/'.join(names)} band for the aerosol retrieval")
    return roles


def _scene_box(scene: xr.DataTree, groups: list[str]) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of the scene's pixel edges, over its resolution groups."""
    boxes = []
    for group in groups:
        x, y = scene[group].ds["x"].values, scene[group].ds["y"].values
        rx, ry = abs(x[1] - x[0]), abs(y[1] - y[0])
        boxes.append((x.min() - rx / 2, y.min() - ry / 2, x.max() + rx / 2, y.max() + ry / 2))
    left, bottom, right, top = zip(*boxes)
    return float(min(left)), float(min(bottom)), float(max(right)), float(max(top))


def _vapour_sums(scene: xr.DataTree, platform: str, available: dict[str, str]
                 ) -> tuple[da.Array, da.Array, da.Array] | None:
    """Lazy sums of B09 and B8A TOA reflectance over bright land and their count (Sentinel-2), else None.
    B8A is averaged onto B09's grid where it nests (20 m in 60 m), else (a first look at 40 m) taken at B09's
    pixel centres: both sums are means over the scene's bright land, which sampling barely changes."""
    if not (get_sensor(platform).sensor == "MSI" and "B09" in available and "B8A" in available):
        return None
    b09_group, b8a_group = scene[available["B09"]].ds, scene[available["B8A"]].ds
    b09 = da.asarray(b09_group["B09"].data).astype(np.float64)
    ratio = pixel_size_m(scene, available["B09"]) / pixel_size_m(scene, available["B8A"])
    if abs(ratio - round(ratio)) < 1e-6:
        b8a = block_mean(b8a_group["B8A"], int(round(ratio)))
    else:
        b8a = da.asarray(mask_on_grid(b8a_group[["B8A"]], b09_group)["B8A"].data).astype(np.float64)
    b8a = b8a[: b09.shape[0], : b09.shape[1]]
    b09 = b09[: b8a.shape[0], : b8a.shape[1]].rechunk(b8a.chunks)
    bright = (b8a > 0.15) & da.isfinite(b09)
    return da.where(bright, b09, 0.0).sum(), da.where(bright, b8a, 0.0).sum(), bright.sum()


def _retrieval_scene(scene: xr.DataTree, first_look: xr.DataTree | None, roles: dict[str, tuple[str, str]],
                     cells: CellGrid) -> tuple[xr.DataTree, float | None]:
    """The scene the aerosol and water-vapour sums read, and its retrieval pixel size when it is the first look:
    the first look only where its coarsest retrieval band tiles the aerosol cells in whole pixels (else the
    cells would cover other ground than on the scene's own grids)."""
    if first_look is None:
        return scene, None
    common = max(pixel_size_m(first_look, group) for group, _ in roles.values())
    pixels = cells.size_m / common
    return (first_look, common) if abs(pixels - round(pixels)) < 1e-6 else (scene, None)


def _water_vapour(sums: tuple[float, float, float] | None, platform: str, value: float | None,
                  geometry: dict[str, np.ndarray], aot550: float, ozone: float, elevation_km: float,
                  cache_dir: Any) -> WaterVapour:
    if value is not None:
        return WaterVapour(float(value), "configured")
    if sums is None:
        return WaterVapour(DEFAULT_WATER_VAPOUR_GCM2, "default")
    if sums[2] < 100:
        return WaterVapour(DEFAULT_WATER_VAPOUR_GCM2, "default (too few bright land pixels for B09/B8A)")
    means = {name: float(np.mean(values)) for name, values in geometry.items()}
    return retrieve_water_vapour(platform, float(sums[0] / sums[2]), float(sums[1] / sums[2]), geometry=means,
                                 aot550=aot550, ozone_cm_atm=ozone, elevation_km=elevation_km, cache_dir=cache_dir)


@dataclass(frozen=True)
class _Leaf:
    index: int


def _compute_under_own_keys(*collections: Any) -> tuple[Any, ...]:
    """``dask.compute`` of (nested) Dask arrays on a copy of their graph whose every key has an ``-l1c-eager``
    suffix, so nothing computed here shares a key with the lazy result submitted later (see ``_correct``).
    (``dask.graph_manipulation.clone`` does the same in principle but loses dependencies of Fmask's overlap
    layers.)"""
    from dask._task_spec import convert_legacy_graph
    from dask.highlevelgraph import HighLevelGraph

    leaves: list[da.Array] = []

    def walk(value: Any) -> Any:
        if isinstance(value, da.Array):
            leaves.append(value)
            return _Leaf(len(leaves) - 1)
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, (tuple, list)):
            return type(value)(walk(v) for v in value)
        return value

    structure = [walk(c) for c in collections]
    if not leaves:
        return tuple(collections)
    graph = convert_legacy_graph(dict(HighLevelGraph.merge(*(a.__dask_graph__() for a in leaves))))

    def renamed(key: Any) -> Any:
        return (f"{key[0]}-l1c-eager", *key[1:]) if isinstance(key, tuple) else f"{key}-l1c-eager"

    subs = {key: renamed(key) for key in graph}
    copy = {subs[key]: node.substitute(subs, key=subs[key]) for key, node in graph.items()}
    layer = HighLevelGraph.from_collections("l1c-eager", copy, dependencies=())
    arrays = [da.Array(layer, renamed(a.name), chunks=a.chunks, dtype=a.dtype, meta=a._meta) for a in leaves]
    values = dask.compute(*arrays)

    def fill(value: Any) -> Any:
        if isinstance(value, _Leaf):
            return values[value.index]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, (tuple, list)):
            return type(value)(fill(v) for v in value)
        return value

    return tuple(fill(s) for s in structure)


def _swir_first_guess(platform: str, band: str, geometry: dict[str, np.ndarray], atmosphere: AtmosphereState,
                      cache_dir: Any) -> tuple[float, float, float]:
    """(path reflectance, transmittance, spherical albedo) of the 2.2 um band at the default AOT and water
    vapour and the scene-mean geometry rounded to 1 degree (one cached 6S run): enough to put the dark-target
    tiers on surface reflectance before the scene's water vapour and tables are known."""
    angles = {f"{name}_deg": float(round(float(np.mean(values)))) for name, values in geometry.items()}
    run = cached_run(platform, band, atmosphere, cache_dir=cache_dir, **angles)
    return run.path_reflectance, run.transmittance, run.spherical_albedo


def _cell_coefficients(table: BandTable, aot: np.ndarray, geometry: dict[str, np.ndarray]) -> np.ndarray:
    c = table.coefficients(aot, geometry["sun_zenith"], geometry["view_zenith"], geometry["relative_azimuth"])
    return np.stack([c["path_reflectance"], c["transmittance"], c["spherical_albedo"]])


#: Pixels per row strip of ``_correct_block``: the strip's coefficient grids and scratch (8 float32 arrays,
#: 2 MB) stay in the core's cache between the passes of the interpolation and the inversions, and are reused
#: from strip to strip. Whole-chunk temporaries instead made ~14 fresh 16 MB arrays per 2048 px chunk, each
#: paid in page faults on workers that return freed memory to the OS (``MALLOC_TRIM_THRESHOLD_``).
_STRIP_PIXELS = 1 << 16


def _correct_block(toa: np.ndarray, x: np.ndarray, y: np.ndarray, cells: CellGrid, coefficients: np.ndarray,
                   block_info: dict | None = None) -> np.ndarray:
    """Surface reflectance and its uncertainty, stacked ``(2, rows, cols)``, of one chunk (float32).

    ``coefficients``: (path, transmittance, albedo) cell grids, then those at AOT + sigma when the uncertainty is
    wanted (6 grids; with 3 the uncertainty is NaN). Computed in row strips (``_STRIP_PIXELS``); every pixel gets
    the arithmetic of a whole-chunk evaluation, so the result does not depend on the strips or the chunking.
    """
    (row0, row1), (col0, col1) = block_info[0]["array-location"]
    xs, ys = x[col0:col1], y[row0:row1]
    toa = toa.astype(np.float32, copy=False)
    grids = CellBilinear(coefficients, cells.y, cells.x, xs)
    uncertain = coefficients.shape[0] == 6
    out = np.empty((2, *toa.shape), dtype=np.float32)
    if not uncertain:
        out[1] = np.nan
    strip = max(1, _STRIP_PIXELS // max(1, toa.shape[1]))
    buffer = np.empty((coefficients.shape[0], min(strip, toa.shape[0]), toa.shape[1]), dtype=np.float32)
    work = np.empty(buffer.shape[1:], dtype=np.float32)
    for start in range(0, toa.shape[0], strip):
        stop = min(start + strip, toa.shape[0])
        n = stop - start
        grid = grids.rows(ys[start:stop], out=buffer[:, :n])
        rho = invert_lambertian(toa[start:stop], grid[0], grid[1], grid[2], out=out[0, start:stop], work=work[:n])
        if uncertain:
            upper = invert_lambertian(toa[start:stop], grid[3], grid[4], grid[5], out=out[1, start:stop],
                                      work=work[:n])
            upper -= rho
            np.abs(upper, out=upper)
    return out


def _corrected(band: xr.DataArray, cells: CellGrid, coefficients: np.ndarray) -> tuple[da.Array, da.Array]:
    data = band.data
    stacked = da.map_blocks(_correct_block, data, band["x"].values, band["y"].values, cells, coefficients,
                            dtype=np.float32, new_axis=0, chunks=((2,), *data.chunks),
                            token=f"atmcorr-{band.name}")
    return stacked[0], stacked[1]


def _atmosphere_group(scene: xr.DataTree, cells: CellGrid, aerosol: AerosolField, crs: Any) -> xr.Dataset:
    coords = {"y": ("y", cells.y, {"units": "m"}), "x": ("x", cells.x, {"units": "m"})}
    ds = xr.Dataset({
        "aot550": (("y", "x"), aerosol.aot550.astype(np.float32),
                   {"units": "1", "long_name": "aerosol optical thickness at 550 nm (continental model)"}),
        "aot550_uncertainty": (("y", "x"), aerosol.uncertainty.astype(np.float32),
                               {"units": "1", "long_name": "1-sigma uncertainty of aot550"}),
        "aot550_retrieved": (("y", "x"), aerosol.retrieved,
                             {"long_name": "cell has its own dark-target retrieval (else smoothed/filled)"}),
        "dark_pixels": (("y", "x"), aerosol.dark_pixels.astype(np.int32),
                        {"long_name": "dark dense vegetation pixels in the cell"}),
        "dark_swir22_limit": (("y", "x"), aerosol.swir22_limit.astype(np.float32),
                              {"units": "1", "long_name": "upper surface 2.2 um reflectance of the cell's dark "
                                                          "targets (the darkest tier with enough pixels)"}),
        "aot550_rejected": (("y", "x"), aerosol.rejected,
                            {"long_name": "cell had dark targets whose blue and red AOT disagreed"}),
    }, coords=coords, attrs={"aot_source": aerosol.source, "cell_size_m": cells.size_m})
    return ds.rio.write_crs(crs) if crs is not None else ds


def correct_scene(scene: xr.DataTree, *, aot550: float = 0.2, water_vapour: float | None = None,
                  ozone: float | None = None, path_dem: str = "", estimate_accuracy: bool = True,
                  cache_dir: Any = None, cell_size_m: float = 3000.0, min_dark_fraction: float = 0.01,
                  ddv_blue: tuple[float, float] = (0.25, 0.0), ddv_red: tuple[float, float] = (0.5, 0.0),
                  landsat_view_angles: bool = False, first_look: xr.DataTree | None = None
                  ) -> tuple[xr.DataTree, AtmosphereInfo]:
    """6S-based atmospheric correction of a Level-1 scene (lazy result; see the module doc).

    Parameters
    ----------
    scene
        Lazy scene tree of the scene model (Level-1: TOA reflectance).
    aot550
        Aerosol optical thickness at 550 nm used where the scene has no dark dense vegetation (option ``aot550``).
    water_vapour
        Column water vapour, g cm-2; None: retrieved from Sentinel-2 B09/B8A, else 2.0.
    ozone
        Column ozone, cm-atm; None: the climatological 0.33.
    path_dem
        DEM raster whose mean over the scene is the surface elevation (option ``path_dem``); "" = sea level.
    estimate_accuracy
        Add ``ac_uncertainty_<band>`` layers (option ``ac_estimate_accuracy``).
    cache_dir
        Folder of the 6S table cache (``<cache_dir>/sixs/...``); None: ``$GMSDASK_HOME/cache`` or
        ``~/gmsdask_data/cache``.
    cell_size_m, min_dark_fraction, ddv_blue, ddv_red
        Aerosol retrieval: cell size (m; snapped to whole pixels of the coarsest retrieval band), the share of a
        cell's pixels that must be dark vegetation for a retrieval there, and the dark-vegetation relations
        ``(slope, offset)``: surface blue / red reflectance = slope x surface 2.2 um reflectance + offset
        (Kaufman's (0.25, 0) and (0.5, 0)).
    landsat_view_angles
        Use a Landsat scene's view angles from its ``ANG.txt`` coefficients in the 6S geometry (option
        ``ac_landsat_view_angles``); off: Landsat is corrected as seen from nadir (see
        ``gmsdask.atmosphere.inputs.cell_geometry`` for what that costs in accuracy and what the view geometry
        costs in 6S runs). Sentinel-2's view angles always enter.
    first_look
        The same scene read at a coarser grid from its products' overviews and masked like ``scene`` (no data
        where any of its pixels is masked: ``gmsdask.masks.coarse_masks``): the dark-target and water-vapour
        sums are taken from it instead of from a pass over ``scene``, when its retrieval bands tile the aerosol
        cells in whole pixels. The sums are linear in reflectance, so coarser pixels change which pixels count as
        dark vegetation, not the physics; ``AtmosphereInfo.retrieval_pixel_m`` says which grid was used.

    Returns
    -------
    The corrected scene and an ``AtmosphereInfo``. A Level-2 scene is returned unchanged with
    ``status="skipped"``. Raises ``ProcessingError`` (naming the scene) when the correction cannot be done.
    """
    name = str(scene.attrs.get("product_id", "scene"))
    level = str(scene.attrs.get("processing_level", ""))
    if level in LEVEL2_LEVELS:
        return scene, AtmosphereInfo("skipped", "already surface reflectance")
    try:
        return _correct(scene, aot550=aot550, water_vapour=water_vapour, ozone=ozone, path_dem=path_dem,
                        estimate_accuracy=estimate_accuracy, cache_dir=cache_dir, cell_size_m=cell_size_m,
                        min_dark_fraction=min_dark_fraction, relations=(ddv_blue, ddv_red),
                        landsat_view_angles=landsat_view_angles, first_look=first_look)
    except ProcessingError:
        raise
    except (GmsdaskError, ValueError, KeyError, OSError) as error:
        raise ProcessingError(name, _LEVEL, f"atmospheric correction failed: {error}") from error


def _correct(scene: xr.DataTree, *, aot550: float, water_vapour: float | None, ozone: float | None, path_dem: str,
             estimate_accuracy: bool, cache_dir: Any, cell_size_m: float, min_dark_fraction: float,
             relations: tuple[tuple[float, float], tuple[float, float]], landsat_view_angles: bool,
             first_look: xr.DataTree | None = None) -> tuple[xr.DataTree, AtmosphereInfo]:
    platform = str(scene.attrs["platform"])
    if not 0.0 <= aot550 <= 1.0:
        raise ValueError(f"aot550 {aot550} is outside the tables' 0..1")
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    available = _band_groups(scene)
    bands = [b for b in corrected_bands(platform) if b in available]
    if not bands:
        raise GmsdaskError(f"none of the bands {corrected_bands(platform)} is in the scene")
    groups = sorted({available[b] for b in bands})
    left, bottom, right, top = _scene_box(scene, groups)
    crs = scene[groups[0]].ds.rio.crs
    roles = _role_bands(platform, available)
    cells = ddv_cells(scene, roles, (left, bottom, right, top), cell_size_m)
    geometry, geometry_note = cell_geometry(scene, cells, ang_view_angles=landsat_view_angles)
    elevation_m = mean_elevation_m(path_dem, (left, bottom, right, top), crs)
    ozone_value = DEFAULT_OZONE_CM_ATM if ozone is None else float(ozone)
    swir_terms = _swir_first_guess(platform, roles["swir22"][1], geometry, AtmosphereState(
        aot550, DEFAULT_WATER_VAPOUR_GCM2, ozone_value, elevation_m / 1000.0), cache)
    # the one eager pass over the scene (or over its first look, a fraction of the decoding): dark-target cell
    # sums and the water-vapour band sums together, so the masked scene's graph runs once for both; only small
    # numpy results leave it. It runs on a copy
    # of the graph under new keys: on a distributed cluster the lazy result is submitted later, possibly from
    # another client, and keys shared with this computation but fused differently make the scheduler warn
    # "Detected different run_spec" (dask/dask#9888) while this computation's copies are being released
    retrieval, retrieval_m = _retrieval_scene(scene, first_look, roles, cells)
    dark_sums = dark_target_sums(retrieval, roles, cells, swir_terms=swir_terms)
    vapour_sums = _vapour_sums(retrieval, platform, available) if water_vapour is None else None
    count, sums, vapour_values = _compute_under_own_keys(dark_sums.count, dark_sums.sums, vapour_sums)
    targets = DarkTargets.of(count, sums, dark_sums.cell_pixels, dark_sums.tiers)
    vapour = _water_vapour(vapour_values, platform, water_vapour, geometry, aot550, ozone_value,
                           elevation_m / 1000.0, cache)
    atmosphere = AtmosphereState(0.0, vapour.value_gcm2, ozone_value, elevation_m / 1000.0)
    grid = geometry_grid_for(geometry["sun_zenith"], geometry["view_zenith"], geometry["relative_azimuth"])
    tables, stats = build_tables(platform, bands, atmosphere, grid, cache_dir=cache)

    aerosol = retrieve_aerosol(targets, {role: tables[band] for role, (_, band) in roles.items()}, geometry,
                               default_aot550=aot550, min_dark_fraction=min_dark_fraction,
                               blue_relation=relations[0], red_relation=relations[1])

    children = {group: node.ds.copy() for group, node in scene.children.items()}
    for band in bands:
        group = available[band]
        coefficients = _cell_coefficients(tables[band], aerosol.aot550, geometry)
        if estimate_accuracy:
            upper = np.clip(aerosol.aot550 + aerosol.uncertainty, 0.0, 1.0)
            coefficients = np.concatenate([coefficients, _cell_coefficients(tables[band], upper, geometry)])
        source = scene[group].ds[band]
        rho, sigma = _corrected(source, cells, coefficients)
        attrs = dict(source.attrs, quantity=SURFACE_REFLECTANCE, atmospheric_correction="6S LUT, Lambertian")
        children[group][band] = source.copy(data=rho).assign_attrs(attrs)
        if estimate_accuracy:
            children[group][f"ac_uncertainty_{band}"] = source.copy(data=sigma).assign_attrs(
                {"units": "1", "long_name": f"{band} surface reflectance change for +1 sigma of aot550",
                 "quantity": "surface reflectance uncertainty"})
    children[ATMOSPHERE_GROUP] = _atmosphere_group(scene, cells, aerosol, crs)
    info = AtmosphereInfo(
        "done", aot550_mean=round(aerosol.mean, 4), aot550_min=round(float(aerosol.aot550.min()), 4),
        aot550_max=round(float(aerosol.aot550.max()), 4), aot_source=aerosol.source,
        aot_retrieved_cells=int(aerosol.retrieved.sum()), aot_rejected_cells=int(aerosol.rejected.sum()),
        aot_cells=int(aerosol.retrieved.size),
        water_vapour_gcm2=vapour.value_gcm2, water_vapour_source=vapour.source, ozone_cm_atm=ozone_value,
        elevation_m=round(elevation_m, 1), geometry_source=geometry_note, retrieval_pixel_m=retrieval_m,
        corrected_bands=tuple(bands), tables=stats)
    attrs = dict(scene.attrs, ac_aot550=info.aot550_mean, ac_aot_source=aerosol.source,
                 ac_water_vapour_gcm2=vapour.value_gcm2, ac_water_vapour_source=vapour.source,
                 ac_ozone_cm_atm=ozone_value, ac_elevation_m=info.elevation_m, ac_geometry=geometry_note,
                 ac_corrected_bands=list(bands), ac_method="6S (Py6S) lookup tables, Lambertian inversion, "
                                                           "dark dense vegetation aerosol")
    tree = xr.DataTree.from_dict({f"/{k}": v for k, v in children.items()})
    tree.attrs = attrs
    return tree, info
