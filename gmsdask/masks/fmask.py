"""Fmask cloud, cloud-shadow, snow and water masks of a Level-1 scene, lazily on Dask.

Grid: the scene's resolution group holding SWIR1 (Sentinel-2 ``r20m``, Landsat ``r30m``), as Fmask 4 works
on 20 m for Sentinel-2 and on 30 m for Landsat. Bands of other groups are brought onto it by nearest
neighbour (pixel-centre lookup, so the real, downsampled test products whose groups do not nest work too).

The computation is three explicit steps, all in one lazy graph (nothing is computed when this is called):

1. **Scene statistics** (a global reduction, one task): Fmask's clear-sky percentiles (temperature, HOT, cloud
   probability, NIR/SWIR1 background) from ~1 million pixels, fixed by the grid so they do not depend on
   chunks. A scene of more than 4 million Fmask pixels takes them from a *first look*
   (:func:`first_look_m`): the product's JPEG 2000 resolution levels (or GeoTIFF overviews) at a power-of-two
   reduction, decoded for ~8 % of a full read. Otherwise they come from every ``k``-th pixel of the scene
   itself, and then every per-pixel block waits until every block of every band has been read: at a whole
   Sentinel-2 tile that held 1.4 GB of TOA blocks per worker. Overview pixels are low-pass values rather than
   samples; pixels within ``_LOOK_MARGIN_PX`` of no data are left out, as the filter mixes the fill in.
2. **Per-pixel tests and neighbourhood steps** (one task per block and its neighbours' margins,
   :func:`gmsdask.io.block_windows.map_neighbourhoods`): the spectral tests, cloud
   probability, Fmask 4's false-positive removal, the cloud displacement index (Sentinel-2) and the cloud
   and snow buffers. The overlap is the sum of all neighbourhood radii
   (:func:`gmsdask.algorithms.fmask_cloud.neighbourhood_radius_px`), so there are no seams.
3. **Shadows on a coarse grid** (one small task): the cloud mask, NIR and SWIR1 are sampled at every
   ``round(shadow_grid_m / pixel)``-th pixel (default 60 m), the potential-shadow layer is flood-filled, cloud
   objects are labelled and matched along the sun direction, potential shadows at the sun-side image edge
   are added (clouds beyond the image), the shadow buffer is applied there, and the
   result is looked up (nearest) by every full-resolution chunk.

Steps 1 and 3 are tasks of the array graph (0-d object arrays), not ``dask.delayed``: Dask inlines file
reads into array tasks, and a delayed consumer of the same bands made every band chunk be read twice.
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from scipy import ndimage

from ..algorithms.fmask_cloud import (
    FmaskParameters,
    cloud_layers,
    dilate_m,
    neighbourhood_radius_px,
)
from ..algorithms.fmask_probability import scene_statistics
from ..algorithms.fmask_qa import CLASS_NAMES, combine_classes
from ..algorithms.fmask_shadow import edge_shadows, match_shadows, potential_shadow
from ..algorithms.fmask_spectral import FmaskInputs, spectral_features
from ..errors import ProcessingError
from ..io.block_windows import map_neighbourhoods
from ..io.scene import decoded_from_overviews

__all__ = ["CONFIDENCE_NODATA", "finer_fmask_bands", "first_look_m", "fmask_band_names", "fmask_grid_group",
           "fmask_grid_m", "fmask_scene"]

#: ``cloud_confidence`` value of no-data pixels.
CONFIDENCE_NODATA = 255
_STATISTICS_SAMPLES = 1_000_000
#: Largest side (pixels) of the blocks Fmask's per-pixel steps work on (the scene's chunks are cut to it). A block's
#: test waits for its neighbours' blocks of every input band (~10 of them), so a pass of 2048 px blocks held two
#: block rows of a whole tile's inputs at 20 m, ~1 GB, before the first test could run: the job's peak worker
#: memory (1.9-2.1 GiB on 2026-11-30, once Fmask's 10 m inputs came from the decoded copy fast enough to be all
#: made ahead). At 1024 px the same pass peaked at 1.2-1.4 GiB (profiled) and the job took as long.
_BLOCK_PX = 1024
#: First-look pixels this close to no data are left out of the statistics: the overviews' wavelet low-pass
#: mixes the fill value into them.
_LOOK_MARGIN_PX = 2
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


def _take_axis(data: da.Array, index: np.ndarray, axis: int) -> da.Array:
    """``data`` indexed by ``index`` along ``axis``. The nested grids of one product give regular indices: every
    k-th pixel (a coarser grid) or each pixel k times (a finer one). Those become a strided slice or
    ``repeat``, which stay per block; a general index array is Dask's ``take``, a shuffle of split pieces of the
    input blocks (a whole tile's masked L1C graph: 18 454 tasks with it, 17 054 without)."""
    where: list[Any] = [slice(None), slice(None)]
    steps = np.diff(index)
    if index.size == 1 or (steps.min() == steps.max() and steps[0] >= 1):
        step = int(steps[0]) if index.size > 1 else 1
        where[axis] = slice(int(index[0]), int(index[-1]) + 1, step)
        return data[tuple(where)]
    if steps.min() >= 0:
        counts = np.unique(index, return_counts=True)[1]
        repeat, offset = int(counts.max()), int(counts.max() - counts[0])
        if np.array_equal(index, index[0] + (np.arange(index.size) + offset) // repeat):
            where[axis] = slice(int(index[0]), int(index[-1]) + 1)
            repeated = da.repeat(data[tuple(where)], repeat, axis=axis)
            where[axis] = slice(offset, offset + index.size)
            return repeated[tuple(where)]
    where[axis] = index
    return data[tuple(where)]


def _take_nearest(data: da.Array, rows: np.ndarray, cols: np.ndarray) -> da.Array:
    """``data[rows, :][:, cols]`` (:func:`_nearest_index` lookups), as slices and repeats where regular."""
    return _take_axis(_take_axis(data, rows, 0), cols, 1)


def _on_grid(variable: xr.DataArray, source: xr.Dataset, grid: xr.Dataset, chunks: tuple) -> da.Array:
    data = variable.data if isinstance(variable.data, da.Array) else da.from_array(variable.data)
    if source.sizes == grid.sizes and np.array_equal(source.x.values, grid.x.values) \
            and np.array_equal(source.y.values, grid.y.values):
        return data.rechunk(chunks)
    rows = _nearest_index(grid.y.values, source.y.values)
    cols = _nearest_index(grid.x.values, source.x.values)
    # a coarser source cut where the grid's chunks start, so that each block of the grid is repeated from a piece
    # of its own: Sentinel-2's 60 m cirrus (one chunk) repeated whole onto the 20 m grid came out in blocks of half
    # the scene (4 x 29 MiB at a whole tile), each waiting until every block cut from it had been cut
    data = data.rechunk(tuple(_source_chunks(index, target, size) if size < index.size else source_chunks
                              for index, target, size, source_chunks in zip((rows, cols), chunks, data.shape,
                                                                            data.chunks)))
    return _take_nearest(data, rows, cols).rechunk(chunks)


def _source_chunks(index: np.ndarray, target_chunks: tuple[int, ...], size: int) -> tuple[int, ...]:
    """Chunks of a source axis of ``size`` pixels cut at the source pixel of each target chunk's first pixel
    (``index``: the source pixel of each target pixel, :func:`_nearest_index`)."""
    starts = np.cumsum((0, *target_chunks[:-1]))
    edges = sorted({0, *(int(index[start]) for start in starts[1:])} - {size})
    return tuple(int(step) for step in np.diff([*edges, size]))


def _split(chunks: tuple[int, ...], most: int) -> tuple[int, ...]:
    """An axis' chunks, each cut into pieces of at most ``most`` pixels (the last piece of a chunk may be
    shorter)."""
    return tuple(min(most, size - start) for size in chunks for start in range(0, size, most))


def _block_px(sources: dict[str, xr.Dataset], roles: dict[str, str], grid: xr.Dataset, dim: str) -> int:
    """Side of Fmask's blocks along ``dim`` (grid pixels): :data:`_BLOCK_PX`, or less where an input's chunk covers
    less ground (Sentinel-2's 10 m chunks of 2046 px are 1023 px of the 20 m grid), so that every input's chunks
    nest in the blocks. Blocks of 1024 px across chunks of 1023 made each block wait for two chunks of each 10 m
    input and held them (a whole tile's Fmask pass: ~430 MiB of merges per worker)."""
    block = _BLOCK_PX
    for role, source in sources.items():
        data = source[roles[role]].data
        if isinstance(data, da.Array):
            on_grid = max(data.chunks[source[roles[role]].dims.index(dim)]) * grid.sizes[dim] / source.sizes[dim]
            block = min(block, max(1, math.floor(on_grid + 1e-9)))
    return block


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
    sources: dict[str, xr.Dataset] = {}
    for role, band in roles.items():
        located = _find(groups, band)
        if located is None:
            if role in _COMMON:
                raise ProcessingError(name, "L1C", f"Fmask needs band {band} ({role}), which the scene lacks")
            continue  # optional input (thermal, cirrus, CDI bands)
        sources[role] = located[1]
    chunks = tuple(_split(axis, _block_px(sources, roles, grid, dim))
                   for axis, dim in zip(grid[roles["swir1"]].data.chunks, ("y", "x")))
    inputs: dict[str, da.Array] = {}
    for role, source in sources.items():
        inputs[role] = _on_grid(source[roles[role]], source, grid, chunks).astype(np.float32)
    blue_group = _find(groups, roles["blue"])
    if blue_group is not None and "saturated" in blue_group[1]:
        inputs["saturated_visible"] = _on_grid(blue_group[1]["saturated"], blue_group[1], grid, chunks)
    return grid, inputs


def _statistics_block(*samples: np.ndarray, roles: tuple[str, ...], sample_pixel_m: float, threshold: float,
                      cirrus_weight: float, margin_px: int = 0) -> np.ndarray:
    if margin_px:
        invalid = np.zeros(samples[0].shape, dtype=bool)
        for role, values in zip(roles, samples):
            if role != "saturated_visible":
                invalid |= ~np.isfinite(values)
        edge = ndimage.binary_dilation(invalid, iterations=margin_px) & ~invalid
        samples = tuple(values if role == "saturated_visible" else np.where(edge, np.float32(np.nan), values)
                        for role, values in zip(roles, samples))
    features = spectral_features(FmaskInputs(**dict(zip(roles, samples))))
    stats = scene_statistics(features, sample_pixel_m=sample_pixel_m, threshold=threshold,
                             cirrus_weight=cirrus_weight)
    return _boxed(stats)


def _boxed(value: Any) -> np.ndarray:
    """A 0-d object array holding ``value``: how one Python object travels as a Dask array block."""
    box = np.empty((), dtype=object)
    box[()] = value
    return box


def _pixel_block(*arrays: np.ndarray, roles: tuple[str, ...], params: FmaskParameters,
                 pixel_m: float) -> np.ndarray:
    *bands, stats = arrays
    layers = cloud_layers(FmaskInputs(**dict(zip(roles, bands))), stats.item(), params, pixel_m)
    packed = layers.confidence.astype(np.uint16)
    for flag, mask in ((_CLOUD, layers.cloud), (_CLOUD_BUFFERED, layers.cloud_buffered),
                       (_SNOW_BUFFERED, layers.snow_buffered), (_WATER, layers.water), (_VALID, layers.valid)):
        packed |= np.where(mask, np.uint16(flag), np.uint16(0))
    return packed


def _shadow_block(packed: np.ndarray, nir: np.ndarray, swir1: np.ndarray, stats: np.ndarray, *,
                  params: FmaskParameters, coarse_m: float, sun_zenith: float, sun_azimuth: float) -> np.ndarray:
    scene = stats.item()
    cloud = (packed & _CLOUD) != 0
    valid = (packed & _VALID) != 0
    clear_land = valid & ~cloud & ((packed & _WATER) == 0)
    potential = potential_shadow(nir, swir1, valid, nir_background=scene.nir_background,
                                 swir1_background=scene.swir1_background, clear_land=clear_land)
    matched = match_shadows(cloud, potential, valid, pixel_m=coarse_m, sun_zenith_deg=sun_zenith,
                            sun_azimuth_deg=sun_azimuth, min_height_m=params.min_cloud_height_m,
                            max_height_m=params.max_cloud_height_m, similarity=params.shadow_similarity)
    shadow = matched.shadow
    if params.edge_shadows:
        # clouds beyond the image are taken to be as high as the clouds matched in it
        reach_px = matched.typical_height_m * math.tan(math.radians(min(sun_zenith, 85.0))) / coarse_m
        shadow = shadow | edge_shadows(potential, cloud, valid, sun_azimuth_deg=sun_azimuth, reach_px=reach_px)
    return _boxed(dilate_m(shadow, params.shadow_buffer_m, coarse_m) & valid)


def _classes_block(packed: np.ndarray, rows: np.ndarray, cols: np.ndarray, shadow: np.ndarray, *,
                   step: int) -> np.ndarray:
    coarse = shadow.item()
    rows = np.minimum(rows // step, coarse.shape[0] - 1)
    cols = np.minimum(cols // step, coarse.shape[1] - 1)
    valid = (packed & _VALID) != 0
    return combine_classes(~valid, (packed & _CLOUD_BUFFERED) != 0, coarse[np.ix_(rows, cols)],
                           (packed & _SNOW_BUFFERED) != 0, (packed & _WATER) != 0)


def _confidence_block(packed: np.ndarray) -> np.ndarray:
    confidence = (packed & 0xFF).astype(np.uint8)
    return np.where((packed & _VALID) != 0, confidence, np.uint8(CONFIDENCE_NODATA)).astype(np.uint8)


def _whole(function: Any, arrays: list[da.Array], **kwargs: Any) -> da.Array:
    """One task applying ``function`` to the whole of ``arrays`` (same shape), as a 0-d object Dask array.

    Kept inside the array graph (not ``dask.delayed``), so that the band reads it shares with the per-pixel
    step are read once: Dask inlines file reads into array tasks, and a delayed consumer made it read twice.
    """
    args: list[Any] = []
    for array in arrays:
        args += [array, "ij"]
    return da.blockwise(function, "", *args, concatenate=True, dtype=object,
                        meta=np.empty((), dtype=object), **kwargs)


def _grid_group(scene: xr.DataTree) -> tuple[str, xr.Dataset] | None:
    """Fmask's working grid: the group holding the scene's SWIR1 band (None without a band table or SWIR1)."""
    try:
        swir1 = fmask_band_names(str(scene.attrs.get("sensor", "")))["swir1"]
    except KeyError:
        return None
    return _find(_groups(scene), swir1)


def fmask_grid_group(scene: xr.DataTree) -> str | None:
    """Name of the group that holds Fmask's working grid (the scene's SWIR1 band), None as for
    :func:`fmask_grid_m`."""
    found = _grid_group(scene)
    return None if found is None else found[0]


def fmask_grid_m(scene: xr.DataTree) -> float | None:
    """Pixel size (metres) of Fmask's working grid (Sentinel-2 20 m, Landsat 30 m), None when the scene has no
    Fmask band table or no SWIR1 band."""
    found = _grid_group(scene)
    return None if found is None else _pixel_m(found[1])


def finer_fmask_bands(scene: xr.DataTree) -> list[str]:
    """The scene's Fmask input bands on a finer grid than Fmask's (Sentinel-2's 10 m B02, B03, B04, B08): Fmask
    reads one pixel in four of them, so a reader may decode them at the grid's pixel instead (an overview)."""
    grid_m = fmask_grid_m(scene)
    if grid_m is None:
        return []
    groups = _groups(scene)
    finer = []
    for band in fmask_band_names(str(scene.attrs["sensor"])).values():
        located = _find(groups, band)
        if located is not None and _pixel_m(located[1]) < grid_m - 1e-6:
            finer.append(band)
    return finer


def first_look_m(scene: xr.DataTree) -> float | None:
    """Pixel size (metres) of the first look Fmask's statistics should come from, or None when the scene is
    small enough to sample itself: the coarsest power-of-two multiple of the Fmask grid's pixel that still
    has ~``_STATISTICS_SAMPLES`` pixels (a whole Sentinel-2 tile: 80 m, 1372 x 1372)."""
    found = _grid_group(scene)
    if found is None:
        return None
    grid = found[1]  # the Fmask grid: only its size is needed, no graph (this runs for every scene)
    height, width = grid.sizes["y"], grid.sizes["x"]
    factor = 1
    while (height // (factor * 2)) * (width // (factor * 2)) >= _STATISTICS_SAMPLES:
        factor *= 2
    return _pixel_m(grid) * factor if factor > 1 else None


def _statistics(first_look: xr.DataTree | None, roles: tuple[str, ...],
                arrays: list[da.Array], pixel_m: float, threshold: float, params: FmaskParameters
                ) -> tuple[da.Array, str]:
    """Step 1: the statistics as a 0-d object array, and where they come from (for the attrs)."""
    if first_look is not None:
        look_grid, look_inputs = _inputs(first_look)
        bands = fmask_band_names(str(first_look.attrs["sensor"])).values()
        # a file without overviews would be decoded in full once more: then the scene samples itself
        if set(look_inputs) == set(roles) and decoded_from_overviews(first_look, bands):
            look_m = _pixel_m(look_grid)
            stats = _whole(_statistics_block, [look_inputs[role] for role in roles], roles=roles,
                           sample_pixel_m=look_m, threshold=threshold, cirrus_weight=params.cirrus_weight,
                           margin_px=_LOOK_MARGIN_PX)
            return stats, f"first look at {look_m:g} m (overviews)"
    height, width = arrays[0].shape
    stride = max(1, math.floor(math.sqrt(height * width / _STATISTICS_SAMPLES)))
    sample = [array[stride // 2::stride, stride // 2::stride] for array in arrays]
    stats = _whole(_statistics_block, sample, roles=roles, sample_pixel_m=pixel_m * stride, threshold=threshold,
                   cirrus_weight=params.cirrus_weight)
    return stats, f"1 in {stride} pixels along each axis" if stride > 1 else "every pixel"


def fmask_scene(scene: xr.DataTree, *, cloud_buffer_m: float = 300.0, shadow_buffer_m: float = 90.0,
                snow_buffer_m: float = 30.0, parameters: FmaskParameters | None = None,
                first_look: xr.DataTree | None = None) -> xr.Dataset:
    """Fmask classes and cloud confidence of a Level-1 scene (TOA reflectance, thermal bands in K), lazily.

    Parameters
    ----------
    scene
        Scene tree of ``docs/scene-model.md`` (Landsat TM/ETM+/OLI or Sentinel-2 MSI, Level-1, with the
        thermal bands where the product has them). Its groups finer than Fmask's grid may come read at the
        grid's pixel (``open_scene(path, overview_m=fmask_grid_m(scene))``: the wavelet low-pass of each
        2 x 2 block instead of one pixel of it, for ~20 % of a full decode).
    cloud_buffer_m, shadow_buffer_m, snow_buffer_m
        Buffers around clouds, shadows and snow/ice, metres (FORCE's defaults); they override ``parameters``.
    parameters
        All other Fmask options (:class:`gmsdask.algorithms.fmask_cloud.FmaskParameters`).
    first_look
        The same product opened at :func:`first_look_m` (``gmsdask.open_scene(path, overview_m=...)``): the
        scene statistics come from it, when every input band of it was decoded from the file's overviews.

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

    # 1. scene statistics from a chunk-independent sample (one task)
    threshold = params.threshold_for(has_thermal="bt" in inputs)
    stats, statistics_source = _statistics(first_look, roles, arrays, pixel_m, threshold, params)

    # 2. per-pixel tests with the overlap of every neighbourhood step
    depth = neighbourhood_radius_px(params, pixel_m, with_cdi="red_edge3" in inputs and "nir_broad" in inputs)
    packed = map_neighbourhoods(_pixel_block, arrays, depth, extra=(stats,), dtype=np.dtype(np.uint16),
                                name="fmask-pixel-tests", roles=roles, params=params, pixel_m=pixel_m)

    # 3. shadows on the coarse grid (one task), looked up by every chunk
    step = max(1, round(params.shadow_grid_m / pixel_m))
    offset = step // 2
    coarse = [array[offset::step, offset::step] for array in (packed, inputs["nir"], inputs["swir1"])]
    try:
        sun_zenith = 90.0 - float(scene.attrs["sun_elevation_deg"])
        sun_azimuth = float(scene.attrs["sun_azimuth_deg"])
    except (KeyError, TypeError, ValueError):
        raise ProcessingError(_scene_name(scene), "L1C", "Fmask needs the root attrs sun_elevation_deg and "
                                                         "sun_azimuth_deg (degrees) for the cloud shadows") from None
    shadow = da.blockwise(_shadow_block, "", coarse[0], "ij", coarse[1], "ij", coarse[2], "ij", stats, "",
                          concatenate=True, dtype=object, meta=np.empty((), dtype=object), params=params,
                          coarse_m=pixel_m * step, sun_zenith=sun_zenith, sun_azimuth=sun_azimuth)
    rows = da.arange(height, chunks=packed.chunks[0])
    cols = da.arange(width, chunks=packed.chunks[1])
    classes = da.blockwise(_classes_block, "ij", packed, "ij", rows, "i", cols, "j", shadow, "", step=step,
                           dtype=np.uint8, meta=np.empty((0, 0), dtype=np.uint8))
    confidence = da.map_blocks(_confidence_block, packed, dtype=np.uint8, meta=np.empty((0, 0), dtype=np.uint8))
    # back in the chunks of the SWIR1 band that _inputs cut to _BLOCK_PX: what L1C masks and corrects in
    group_chunks = grid[fmask_band_names(str(scene.attrs["sensor"]))["swir1"]].data.chunks
    classes, confidence = classes.rechunk(group_chunks), confidence.rechunk(group_chunks)

    coords = {"x": grid.x, "y": grid.y}
    if "spatial_ref" in grid.coords:
        coords["spatial_ref"] = grid.spatial_ref
    # the SWIR1 group's name, also where a reader brought finer groups onto its grid (first looks)
    group = _grid_group(scene)[0]
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
               "fmask_statistics_from": statistics_source,
               "fmask_inputs": [f"{role}:{_SENSOR_BANDS[str(scene.attrs['sensor'])].get(role, 'saturated')}"
                                for role in roles],
               **{f"fmask_{k}": v for k, v in asdict(params).items() if v is not None}})
    return out
