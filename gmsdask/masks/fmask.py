"""Fmask cloud, cloud-shadow, snow and water masks of a Level-1 scene, lazily on Dask.

Grid: the scene's resolution group holding SWIR1 (Sentinel-2 ``r20m``, Landsat ``r30m``), as Fmask 4 works
on 20 m for Sentinel-2 and on 30 m for Landsat. Bands of other groups are brought onto it by nearest
neighbour (pixel-centre lookup, so the real, downsampled test products whose groups do not nest work too).

The computation is three explicit steps, all in one lazy graph (nothing is computed when this is called):

1. **Scene statistics** (a global reduction): Fmask's clear-sky percentiles (temperature, HOT, cloud
   probability, NIR/SWIR1 background) from every ``k``-th pixel of the grid in both directions, ``k`` chosen
   for ~1 million samples. The sample is fixed by global pixel indices, so it does not depend on chunks.
2. **Per-pixel tests and neighbourhood steps** with ``dask.array.map_overlap``: the spectral tests, cloud
   probability, Fmask 4's false-positive removal, the cloud displacement index (Sentinel-2) and the cloud
   and snow buffers. The overlap is the sum of all neighbourhood radii
   (:func:`gmsdask.algorithms.fmask_cloud.neighbourhood_radius_px`), so there are no seams.
3. **Shadows on a coarse grid** (one small task): the cloud mask, NIR and SWIR1 are sampled at every
   ``round(shadow_grid_m / pixel)``-th pixel (default 60 m), the potential-shadow layer is flood-filled, cloud
   objects are labelled and matched along the sun direction, the shadow buffer is applied there, and the
   result is looked up (nearest) by every full-resolution chunk.
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..algorithms.fmask_cloud import FmaskParameters, cloud_layers, dilate_m, neighbourhood_radius_px
from ..algorithms.fmask_probability import SceneStatistics, scene_statistics
from ..algorithms.fmask_qa import CLASS_NAMES, combine_classes
from ..algorithms.fmask_shadow import match_shadows, potential_shadow
from ..algorithms.fmask_spectral import FmaskInputs, spectral_features
from ..errors import ProcessingError

__all__ = ["fmask_scene", "fmask_band_names", "CONFIDENCE_NODATA"]

#: ``cloud_confidence`` value of no-data pixels.
CONFIDENCE_NODATA = 255
_STATISTICS_SAMPLES = 1_000_000
_INPUT_ORDER = ("blue", "green", "red", "nir", "swir1", "swir2", "cirrus", "bt", "red_edge3", "nir_broad",
                "saturated_visible")
_COMMON = {"blue": None, "green": None, "red": None, "nir": None, "swir1": None, "swir2": None}
_SENSOR_BANDS: dict[str, dict[str, str]] = {
    "OLI_TIRS": {"blue": "B2", "green": "B3", "red": "B4", "nir": "B5", "swir1": "B6", "swir2": "B7",
                 "cirrus": "B9", "bt": "B10"},
    "OLI": {"blue": "B2", "green": "B3", "red": "B4", "nir": "B5", "swir1": "B6", "swir2": "B7", "cirrus": "B9"},
    "ETM": {"blue": "B1", "green": "B2", "red": "B3", "nir": "B4", "swir1": "B5", "swir2": "B7",
            "bt": "B6_VCID_1"},
    "TM": {"blue": "B1", "green": "B2", "red": "B3", "nir": "B4", "swir1": "B5", "swir2": "B7", "bt": "B6"},
    "MSI": {"blue": "B02", "green": "B03", "red": "B04", "nir": "B8A", "swir1": "B11", "swir2": "B12",
            "cirrus": "B10", "red_edge3": "B07", "nir_broad": "B08"},
}
# bits of the packed per-pixel result (low byte: confidence)
_CLOUD, _CLOUD_BUFFERED, _SNOW_BUFFERED, _WATER, _VALID = (1 << (8 + i) for i in range(5))


def _scene_name(scene: xr.DataTree) -> str:
    return str(scene.attrs.get("product_id") or scene.attrs.get("product_path") or "scene")


def fmask_band_names(sensor: str) -> dict[str, str]:
    """Fmask input role (``blue`` ... ``bt``) -> band name of ``sensor`` (``OLI_TIRS``, ``ETM``, ``TM``, ``MSI``)."""
    if sensor not in _SENSOR_BANDS:
        raise KeyError(f"no Fmask band table for sensor {sensor!r}; known: {', '.join(_SENSOR_BANDS)}")
    return dict(_SENSOR_BANDS[sensor])


def _groups(scene: xr.DataTree) -> dict[str, xr.Dataset]:
    return {name: child.to_dataset() for name, child in scene.children.items()
            if name.startswith("r") and name.endswith("m")}


def _find(groups: dict[str, xr.Dataset], band: str) -> tuple[str, xr.Dataset] | None:
    for name, ds in groups.items():
        if band in ds.data_vars:
            return name, ds
    return None


def _pixel_m(ds: xr.Dataset) -> float:
    return float((abs(ds.x.values[1] - ds.x.values[0]) + abs(ds.y.values[1] - ds.y.values[0])) / 2)


def _nearest_index(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Index of the source pixel whose cell holds each target pixel centre (regular 1-D grids)."""
    step = source[1] - source[0]
    index = np.floor((target - (source[0] - step / 2)) / step).astype(np.int64)
    return np.clip(index, 0, source.size - 1)


def _on_grid(variable: xr.DataArray, source: xr.Dataset, grid: xr.Dataset, chunks: tuple) -> da.Array:
    data = variable.data if isinstance(variable.data, da.Array) else da.from_array(variable.data)
    if source.sizes == grid.sizes and np.array_equal(source.x.values, grid.x.values) \
            and np.array_equal(source.y.values, grid.y.values):
        return data.rechunk(chunks)
    rows = _nearest_index(grid.y.values, source.y.values)
    cols = _nearest_index(grid.x.values, source.x.values)
    return data[rows, :][:, cols].rechunk(chunks)


def _inputs(scene: xr.DataTree) -> tuple[xr.Dataset, dict[str, da.Array]]:
    """The working grid's group and the Fmask inputs on it (dask arrays, same chunks)."""
    name = _scene_name(scene)
    sensor = str(scene.attrs.get("sensor", ""))
    try:
        roles = fmask_band_names(sensor)
    except KeyError as err:
        raise ProcessingError(name, "L1C", f"Fmask: {err.args[0]}") from None
    groups = _groups(scene)
    found = _find(groups, roles["swir1"])
    if found is None:
        raise ProcessingError(name, "L1C", f"Fmask needs SWIR1 band {roles['swir1']}, which the scene lacks")
    _, grid = found
    chunks = grid[roles["swir1"]].data.chunks
    inputs: dict[str, da.Array] = {}
    for role, band in roles.items():
        located = _find(groups, band)
        if located is None:
            if role in _COMMON:
                raise ProcessingError(name, "L1C", f"Fmask needs band {band} ({role}), which the scene lacks")
            continue  # optional input (thermal, cirrus, CDI bands)
        inputs[role] = _on_grid(located[1][band], located[1], grid, chunks).astype(np.float32)
    blue_group = _find(groups, roles["blue"])
    if blue_group is not None and "saturated" in blue_group[1]:
        inputs["saturated_visible"] = _on_grid(blue_group[1]["saturated"], blue_group[1], grid, chunks)
    return grid, inputs


def _fmask_inputs(roles: tuple[str, ...], arrays: tuple[np.ndarray, ...]) -> FmaskInputs:
    return FmaskInputs(**dict(zip(roles, arrays)))


def _statistics_task(sample: dict[str, np.ndarray], sample_pixel_m: float, threshold: float,
                     cirrus_weight: float) -> SceneStatistics:
    features = spectral_features(FmaskInputs(**sample))
    return scene_statistics(features, sample_pixel_m=sample_pixel_m, threshold=threshold,
                            cirrus_weight=cirrus_weight)


def _pixel_block(*arrays: np.ndarray, roles: tuple[str, ...], stats: SceneStatistics, params: FmaskParameters,
                 pixel_m: float) -> np.ndarray:
    layers = cloud_layers(_fmask_inputs(roles, arrays), stats, params, pixel_m)
    packed = layers.confidence.astype(np.uint16)
    for flag, mask in ((_CLOUD, layers.cloud), (_CLOUD_BUFFERED, layers.cloud_buffered),
                       (_SNOW_BUFFERED, layers.snow_buffered), (_WATER, layers.water), (_VALID, layers.valid)):
        packed |= np.where(mask, np.uint16(flag), np.uint16(0))
    return packed


def _shadow_task(packed: np.ndarray, nir: np.ndarray, swir1: np.ndarray, stats: SceneStatistics,
                 params: FmaskParameters, coarse_m: float, sun_zenith: float, sun_azimuth: float) -> np.ndarray:
    cloud = (packed & _CLOUD) != 0
    valid = (packed & _VALID) != 0
    potential = potential_shadow(nir, swir1, valid, nir_background=stats.nir_background,
                                 swir1_background=stats.swir1_background)
    matched = match_shadows(cloud, potential, valid, pixel_m=coarse_m, sun_zenith_deg=sun_zenith,
                            sun_azimuth_deg=sun_azimuth, min_height_m=params.min_cloud_height_m,
                            max_height_m=params.max_cloud_height_m, similarity=params.shadow_similarity)
    return dilate_m(matched.shadow, params.shadow_buffer_m, coarse_m) & valid


def _classes_block(packed: np.ndarray, shadow: np.ndarray, step: int, block_info: Any = None) -> np.ndarray:
    (row0, row1), (col0, col1) = block_info[0]["array-location"]
    rows = np.minimum(np.arange(row0, row1) // step, shadow.shape[0] - 1)
    cols = np.minimum(np.arange(col0, col1) // step, shadow.shape[1] - 1)
    valid = (packed & _VALID) != 0
    classes = combine_classes(~valid, (packed & _CLOUD_BUFFERED) != 0, shadow[np.ix_(rows, cols)],
                              (packed & _SNOW_BUFFERED) != 0, (packed & _WATER) != 0)
    return classes


def _confidence_block(packed: np.ndarray) -> np.ndarray:
    confidence = (packed & 0xFF).astype(np.uint8)
    return np.where((packed & _VALID) != 0, confidence, np.uint8(CONFIDENCE_NODATA)).astype(np.uint8)


def fmask_scene(scene: xr.DataTree, *, cloud_buffer_m: float = 300.0, shadow_buffer_m: float = 90.0,
                snow_buffer_m: float = 30.0, parameters: FmaskParameters | None = None) -> xr.Dataset:
    """Fmask classes and cloud confidence of a Level-1 scene (TOA reflectance, thermal bands in K), lazily.

    Parameters
    ----------
    scene
        Scene tree of ``docs/scene-model.md`` (Landsat TM/ETM+/OLI or Sentinel-2 MSI, Level-1, with the
        thermal bands where the product has them).
    cloud_buffer_m, shadow_buffer_m, snow_buffer_m
        Buffers around clouds, shadows and snow/ice, metres (FORCE's defaults); they override ``parameters``.
    parameters
        All other Fmask options (:class:`gmsdask.algorithms.fmask_cloud.FmaskParameters`).

    Returns
    -------
    xarray.Dataset
        On the grid of the scene's SWIR1 group (coordinates and CRS copied from it): ``fmask`` (uint8;
        0 no data, 1 clear land, 2 cloud, 3 cloud shadow, 4 snow/ice, 5 water) and ``cloud_confidence``
        (uint8, Fmask cloud probability in percent, 0 for pixels that fail the potential-cloud tests,
        255 no data). Attrs say the grid group, the pixel size and the parameters.

    Raises
    ------
    ProcessingError
        When the scene lacks a band Fmask needs or its sensor has no band table.
    """
    params = replace(parameters or FmaskParameters(), cloud_buffer_m=cloud_buffer_m,
                     shadow_buffer_m=shadow_buffer_m, snow_buffer_m=snow_buffer_m)
    grid, inputs = _inputs(scene)
    roles = tuple(role for role in _INPUT_ORDER if role in inputs)
    arrays = [inputs[role] for role in roles]
    pixel_m = _pixel_m(grid)
    height, width = arrays[0].shape

    # 1. scene statistics from a chunk-independent sample
    stride = max(1, int(math.floor(math.sqrt(height * width / _STATISTICS_SAMPLES))))
    sample = {role: inputs[role][stride // 2::stride, stride // 2::stride] for role in roles}
    threshold = params.threshold_for(has_thermal="bt" in inputs)
    stats = dask.delayed(_statistics_task, pure=True)(sample, pixel_m * stride, threshold, params.cirrus_weight)

    # 2. per-pixel tests with the overlap of every neighbourhood step
    depth = neighbourhood_radius_px(params, pixel_m, with_cdi="red_edge3" in inputs and "nir_broad" in inputs)
    packed = da.map_overlap(_pixel_block, *arrays, depth=depth, boundary="none", dtype=np.uint16,
                            roles=roles, stats=stats, params=params, pixel_m=pixel_m,
                            meta=np.empty((0, 0), dtype=np.uint16))

    # 3. shadows on the coarse grid, looked up by every chunk
    step = max(1, int(round(params.shadow_grid_m / pixel_m)))
    offset = step // 2
    sun_zenith = 90.0 - float(scene.attrs["sun_elevation_deg"])
    sun_azimuth = float(scene.attrs["sun_azimuth_deg"])
    shadow = dask.delayed(_shadow_task, pure=True)(
        packed[offset::step, offset::step], inputs["nir"][offset::step, offset::step],
        inputs["swir1"][offset::step, offset::step], stats, params, pixel_m * step, sun_zenith, sun_azimuth)
    classes = da.map_blocks(_classes_block, packed, shadow=shadow, step=step, dtype=np.uint8,
                            meta=np.empty((0, 0), dtype=np.uint8))
    confidence = da.map_blocks(_confidence_block, packed, dtype=np.uint8, meta=np.empty((0, 0), dtype=np.uint8))

    coords = {"x": grid.x, "y": grid.y}
    if "spatial_ref" in grid.coords:
        coords["spatial_ref"] = grid.spatial_ref
    group = next(name for name, ds in _groups(scene).items() if ds.sizes == grid.sizes
                 and np.array_equal(ds.x.values, grid.x.values))
    flags = sorted(CLASS_NAMES)
    out = xr.Dataset(
        {"fmask": (("y", "x"), classes, {
            "long_name": "Fmask class", "flag_values": flags,
            "flag_meanings": " ".join(CLASS_NAMES[v] for v in flags), "nodata": 0,
            "cloud_buffer_m": params.cloud_buffer_m, "shadow_buffer_m": params.shadow_buffer_m,
            "snow_buffer_m": params.snow_buffer_m}),
         "cloud_confidence": (("y", "x"), confidence, {
             "long_name": "Fmask cloud probability", "units": "%", "nodata": CONFIDENCE_NODATA})},
        coords=coords,
        attrs={"fmask_grid_group": group, "fmask_pixel_m": pixel_m, "fmask_shadow_grid_m": pixel_m * step,
               "fmask_inputs": [f"{role}:{_SENSOR_BANDS[str(scene.attrs['sensor'])].get(role, 'saturated')}"
                                for role in roles],
               "fmask_parameters": {k: v for k, v in asdict(params).items() if v is not None}})
    return out
