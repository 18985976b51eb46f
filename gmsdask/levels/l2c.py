"""L2C, MGRS tiling: an L2A scene cut into the Sentinel-2 tiles it touches, each appended to the tile's cube.

For every tile: the scene's L2A grid is cropped to the tile grid (an exact index slice when the grids nest, which
is the case for the tile's own UTM zone at a GSD dividing 60 m). A tile whose grid does not nest (a Landsat scene
reaching into the neighbouring UTM zone, or a configured ``target_epsg``) is made straight from the scene before
L2A when a :data:`DirectSource` is available (L2A onto the tile's grid, with L1B's shift or local field, then the
levels after L2A: one resampling, :func:`direct_source`); without one, the L2A grid is reprojected with the L2A
rules (a second resampling, recorded in the facts as ``resamplings`` 2). Tiles without a single valid pixel are
skipped, and the rest is written into
``<cfg.path_procdata_MGRS>/<cfg.virtual_sensor_name>/<TILE>.icechunk``, one commit per scene and tile (see
:mod:`gmsdask.io.cube`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import numpy as np
import odc.geo.xr  # noqa: F401  (the .odc accessor gives a Dataset's GeoBox)
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.overlap import compute_reproject_roi

from .. import __version__
from ..config import JobConfig
from ..errors import CubeWriteCanceled, ProcessingError
from ..io.cube import (CubeGrid, SceneSlot, aligned_chunks, cube_location, scene_slot_coordinates, utc_time,
                       write_scene)
from ..io.scene_store import read_window
from ..io.cube_storage import is_url
from ..mgrs_grid import footprint_reaches_core, normalize_tile, tile_epsg, tile_geobox, tiles_intersecting
from ..geometry import as_dask, choose_resampling, group_geobox, resolution_groups, warp_lazy
from ..geometry.scene_grid import nested_placement
from ._contract import LevelCanceled, LevelContext, LevelOutcome, TileOutput

__all__ = ["TileWrite", "TileCrop", "DirectSource", "cube_path", "cube_sensor", "scene_tiles", "cube_chunks",
           "crop_to_tile", "direct_source", "write_scene_to_tiles", "run", "VERSION"]

# 3: tiles of another UTM zone are warped straight from the scene before L2A (resampled once); 4: their float
# bands sampled at the exactly transformed positions (gmsdask.algorithms.warp)
VERSION = "4"

#: Makes a scene's L2C-ready group (the variables of the L2A/L2B group) straight on a grid, in one resampling from
#: the scene before L2A; L2C calls it with a window of a tile grid that does not nest with the scene's L2A grid.
DirectSource = Callable[[GeoBox], xr.Dataset]


@dataclass(frozen=True)
class TileWrite:
    """Where one scene went: the tile, its cube, the scene's time slot, whether cube/slot were new, the commit."""

    tile: str
    path: Path | str
    time_index: int
    scene_id: str
    created_cube: bool
    replaced_slot: bool
    snapshot_id: str = ""
    resamplings: int = 1


def cube_sensor(cfg: JobConfig, quantity: str = "surface_reflectance") -> str:
    """The cube family a scene goes to: ``<virtual_sensor_name>``, or ``<virtual_sensor_name>_TOA`` for TOA
    reflectance, so that one cube never mixes TOA and surface reflectance in one variable."""
    return cfg.virtual_sensor_name if quantity != "toa_reflectance" else f"{cfg.virtual_sensor_name}_TOA"


def cube_path(cfg: JobConfig, tile: str, quantity: str = "surface_reflectance") -> Path | str:
    """``<path_procdata_MGRS>/<cube_sensor>/<TILE>.icechunk``: a Path, or a URL string on object storage."""
    location = cube_location(cfg.path_procdata_MGRS, cube_sensor(cfg, quantity), tile)
    return location if is_url(location) else Path(location)


def cube_chunks(cfg: JobConfig, gbox: GeoBox) -> tuple[int, int]:
    """Spatial Zarr/Dask chunks ``(y, x)`` of a cube: ``tiling_block_size_XY`` clipped to the tile."""
    ny, nx = gbox.shape.yx
    return min(cfg.chunks["y"], ny), min(cfg.chunks["x"], nx)


def _nested_offset(src: GeoBox, dst: GeoBox) -> tuple[int, int] | None:
    """``(row, col)`` of ``dst``'s first pixel in ``src`` when both grids share CRS, pixel size and pixel edges."""
    placement = nested_placement(src, dst)
    return None if placement is None or placement[2] != 1 else placement[:2]


def _fill_of(name: str, var: xr.DataArray) -> float | int | bool:
    if name == "nodata":
        return True
    if name == "saturated":
        return False
    if np.issubdtype(var.dtype, np.floating):
        return np.nan
    return int(var.attrs.get("nodata", 0))


@dataclass(frozen=True)
class TileCrop:
    """A scene on part of a tile grid: ``data`` covers ``tile[rows, cols]`` (the scene's own pixels where its grid
    nests in the tile's; a window of whole cube chunks where it was resampled onto the tile).
    ``resamplings``: how often its pixels were resampled from the product (1: L2A's grid sliced, or the tile's
    grid made straight from the scene; 2: L2A's grid reprojected once more)."""

    rows: slice
    cols: slice
    data: xr.Dataset
    resamplings: int = 1


def _chunk_window(rows: tuple[int, int], cols: tuple[int, int], shape: tuple[int, int],
                  chunks: tuple[int, int]) -> tuple[slice, slice] | None:
    """The smallest window of whole chunks holding pixel ranges ``rows``, ``cols`` (clipped to ``shape``)."""
    out = []
    for (start, stop), size, chunk in zip((rows, cols), shape, chunks):
        start, stop = max(start, 0), min(stop, size)
        if start >= stop:
            return None
        out.append(slice(start // chunk * chunk, min(-(-stop // chunk) * chunk, size)))
    return out[0], out[1]


def crop_to_tile(ds: xr.Dataset, tile_gbox: GeoBox, cfg: JobConfig, *,
                 direct: DirectSource | None = None) -> TileCrop | None:
    """The L2A group ``ds`` on the part of ``tile_gbox`` it reaches, lazily, or None where it misses the tile.

    Nested grids are sliced to the scene's reach (no resampling; the cube writer writes the parts of the chunks
    it reaches). Other grids are made on a window rounded out to whole cube chunks, in the cube's Zarr chunks:
    by ``direct`` from the scene before L2A when given
    (one resampling in all), else ``ds`` is resampled like L2A (area average when going coarser,
    ``cfg.spatial_resamp_alg_default`` otherwise, nearest for masks and QA).
    """
    src = group_geobox(ds)
    chunks = cube_chunks(cfg, tile_gbox)
    offset = _nested_offset(src, tile_gbox)
    if offset is not None:
        reach = (-offset[0], src.shape.y - offset[0]), (-offset[1], src.shape.x - offset[1])
    else:
        roi = compute_reproject_roi(src, tile_gbox).roi_dst
        reach = (roi[0].start, roi[0].stop), (roi[1].start, roi[1].stop)
    window = _chunk_window(*reach, tile_gbox.shape.yx, chunks)
    if window is None:
        return None
    if offset is not None:
        # nested: the scene's own pixels, sliced; the cube writer writes the parts of the chunks they reach (no
        # fill is made around them: for a scene smaller than a chunk that padding was most of L2C's work)
        (r0, r1), (c0, c1) = ((max(lo, 0), min(hi, size)) for (lo, hi), size in zip(reach, tile_gbox.shape.yx))
        rows, cols = slice(r0 + offset[0], r1 + offset[0]), slice(c0 + offset[1], c1 + offset[1])
        # a level product read back is read again in the blocks the cube writer writes, each inside its window's
        # task (gmsdask.io.block_graph): no merges of the product's blocks, nothing read ahead of its window
        window = read_window(ds, rows, cols, (aligned_chunks(r0, r1 - r0, chunks[0]),
                                              aligned_chunks(c0, c1 - c0, chunks[1])))
        sliced = {name: xr.DataArray(as_dask(var.data, chunks)[rows, cols] if window is None else window[name].data,
                                     dims=("y", "x"), attrs=dict(var.attrs))
                  for name, var in ds.data_vars.items()}
        return TileCrop(slice(r0, r1), slice(c0, c1), xr.Dataset(sliced), resamplings=1)
    rows, cols = window
    dst = tile_gbox[rows, cols]
    if direct is not None:
        made = direct(dst)
        data = {name: xr.DataArray(as_dask(var.data, chunks).rechunk(chunks), dims=("y", "x"),
                                   attrs=dict(var.attrs))
                for name, var in made.data_vars.items() if var.dims == ("y", "x")}
        return TileCrop(rows, cols, xr.Dataset(data), resamplings=1)
    band_alg = choose_resampling(src, dst, cfg.spatial_resamp_alg_default)
    out: dict[str, xr.DataArray] = {}
    for name, var in ds.data_vars.items():
        alg = band_alg if np.issubdtype(var.dtype, np.floating) else "nearest"
        moved = warp_lazy(as_dask(var.data, chunks), src, dst, resampling=alg, fill=_fill_of(name, var),
                          chunks=chunks)
        out[name] = xr.DataArray(moved, dims=("y", "x"), attrs=dict(var.attrs))
    return TileCrop(rows, cols, xr.Dataset(out), resamplings=2)


def direct_source(scene_before_l2a: xr.DataTree, cfg: JobConfig,
                  after_l2a: Sequence[Callable[[xr.DataTree], xr.DataTree]] = ()) -> DirectSource:
    """A :data:`DirectSource` from the scene as it enters L2A (after L1B/L1C: its ``coreg_*`` attrs and, with
    ``coreg_local``, its ``l1b`` group): :func:`gmsdask.levels.l2a.homogenize` onto the requested grid (one
    resampling, with L1B's shift or field), then ``after_l2a`` in order (the runs of the levels between L2A and
    L2C, e.g. L2B's), and the one resolution group of the result."""
    from .l2a import homogenize  # L2A imports the geometry this module shares; keep the import graph flat

    def make(grid: GeoBox) -> xr.Dataset:
        tree = homogenize(scene_before_l2a, cfg, target=grid)
        for step in after_l2a:
            tree = step(tree)
        return _l2a_group(tree, str(scene_before_l2a.attrs.get("product_id", "scene")))
    return make


def scene_tiles(record_tiles: Sequence[str], attrs: Mapping[str, Any], cfg: JobConfig) -> list[str]:
    """The tiles a scene is written into: a Sentinel-2 product only into its own tile's cube (the neighbouring
    tile gets that datatake from its own product), any other scene into every tile whose own 100 km square it
    reaches (a tile it touches only in the overlap strips is not created); ``target_mgrs_tiles`` restricts both."""
    own = normalize_tile(str(attrs["mgrs_tile"])) if attrs.get("mgrs_tile") else ""
    if own:
        candidates = [own]
    else:
        footprint = str(attrs.get("footprint") or "")
        candidates = [t for t in record_tiles if not footprint or footprint_reaches_core(footprint, t)]
    return [t for t in candidates if not cfg.target_mgrs_tiles or t in cfg.target_mgrs_tiles]


def run(scene: xr.DataTree, ctx: LevelContext) -> LevelOutcome:
    """L2C of one scene: its target-grid group written into the cubes of the tiles it belongs to
    (:func:`scene_tiles`), each one transaction; a cancelled job drops the uncommitted tile."""
    cfg = ctx.config
    if not ctx.record.mgrs_tiles:
        raise ProcessingError(ctx.record.product_id, "L2C", "the scene's footprint touches no MGRS tile (the grid "
                                                            "covers 80 S to 84 N); it cannot be tiled into cubes")
    tiles = scene_tiles(ctx.record.mgrs_tiles, scene.attrs, cfg)
    try:
        writes = write_scene_to_tiles(scene, cfg, scene_id=ctx.record.product_id, tiles=tiles, job_id=ctx.job_id,
                                      should_cancel=ctx.cancel_requested, direct=_direct_source_of(ctx))
    except CubeWriteCanceled as stop:
        raise LevelCanceled(str(stop)) from None
    twice = [w.tile for w in writes if w.resamplings > 1]
    note = f"{', '.join(twice)}: reprojected from the L2A grid (resampled twice)" if twice else ""
    return LevelOutcome(scene, outputs=tuple(str(w.path) for w in writes), note=note,
                        tiles=tuple(TileOutput(w.tile, str(w.path), w.time_index) for w in writes),
                        facts={"tiles": [w.tile for w in writes], "snapshots": [w.snapshot_id for w in writes],
                               "resamplings": {w.tile: w.resamplings for w in writes}})


def _direct_source_of(ctx: LevelContext) -> DirectSource | None:
    """The scene before L2A, from the controller's lazy build (``ctx.scene_before``, a callable level name ->
    scene tree; a context without it makes foreign-zone tiles from the L2A grid), with the levels between L2A and
    L2C that the job runs applied after the direct L2A."""
    scene_before = getattr(ctx, "scene_before", None)
    if scene_before is None:
        return None
    from .registry import default_registry  # the registry imports this module

    registry = default_registry()
    l2a_order, l2c_order = registry["L2A"].order, registry["L2C"].order
    steps = [lambda tree, level=level: level.run(tree, ctx).scene for level in registry.levels
             if l2a_order < level.order < l2c_order and ctx.config.exec_flags(level.name)[0]]
    made: list[DirectSource] = []

    def make(grid: GeoBox) -> xr.Dataset:
        # the scene before L2A is only asked for when a tile needs it: most scenes have none in another zone,
        # and without a kept scene the controller would rebuild it (L1B's matching again)
        if not made:
            made.append(direct_source(scene_before("L2A"), ctx.config, steps))
        return made[0](grid)
    return make


def _l2a_group(scene: xr.DataTree, scene_id: str) -> xr.Dataset:
    groups = resolution_groups(scene, "L2C")
    if len(groups) != 1:
        raise ProcessingError(scene_id, "L2C", f"expected one L2A resolution group, found {', '.join(groups)}; "
                                               "run geometric_homogenization first")
    ds = next(iter(groups.values()))
    if "nodata" not in ds:
        raise ProcessingError(scene_id, "L2C", "the L2A group has no 'nodata' mask")
    return ds


#: Tiles one scene writes at once on a distributed cluster. A tile's write waits for its last chunk windows, which
#: leave workers idle when written one tile after the other (a Landsat scene touches ~15 tiles); each tile is its
#: own repository and commit, so writes to different tiles never collide. Measured on the full Landsat-9 scene
#: (15 tiles, 2 workers): one at a time 315.6 s (peak worker memory 2.1 GiB in `make bench`); 3 at once 274.0 s
#: (2.3 GiB); 6 at once 264.3 s, but 3.9 GiB.
_TILES_AT_ONCE = 3


def _each_tile(write: Callable[..., TileWrite | None], tiles: list[tuple[str, GeoBox, TileCrop]]
               ) -> list[TileWrite | None]:
    """``write(*tile)`` for every tile, in order; several at once when the chunks are computed by a distributed
    client (the scheduler the controller sets), one after the other otherwise. The first error (in tile order)
    is raised after the writes already started have ended: tiles committed before it stay, as in a sequence."""
    if len(tiles) < 2 or not hasattr(dask.config.get("scheduler", None), "submit"):
        return [write(*tile) for tile in tiles]
    with ThreadPoolExecutor(max_workers=_TILES_AT_ONCE, thread_name_prefix="l2c-tile") as pool:
        futures = [pool.submit(write, *tile) for tile in tiles]
        wait(futures)
    return [future.result() for future in futures]


def write_scene_to_tiles(scene_l2a: xr.DataTree, cfg: JobConfig, *, scene_id: str,
                         tiles: Sequence[str] | None = None, job_id: int | None = None,
                         should_cancel: Callable[[], bool] | None = None,
                         direct: DirectSource | None = None) -> list[TileWrite]:
    """Write an L2A scene into the cube of every MGRS tile it covers with at least one valid pixel.

    ``tiles`` default to :func:`gmsdask.mgrs_grid.tiles_intersecting` of the scene's ``footprint``. The tile
    grid is the 109.8 km tile at ``cfg.target_gsd`` metres grown by ``cfg.mgrs_pixel_buffer`` pixels. A scene
    already in a cube (same ``scene_id``) overwrites its own time slot. A tile the footprint reaches but no pixel
    does gets no write (the chunk tasks that write count the pixels with data: no pass precedes the write); the
    writes run on the current Dask scheduler. Each tile is
    one commit naming ``job_id`` and the scene; ``should_cancel`` is polled during the writes (a cancel drops the
    uncommitted tile and raises :class:`~gmsdask.errors.CubeWriteCanceled`). ``direct`` makes tiles whose grid
    does not nest with the L2A grid straight from the scene before L2A (:func:`direct_source`).
    """
    ds = _l2a_group(scene_l2a, scene_id)
    for key in ("acquisition_time", *(("footprint",) if tiles is None else ())):
        if not scene_l2a.attrs.get(key):
            raise ProcessingError(scene_id, "L2C", f"the scene has no {key!r} attribute (docs/scene-model.md)")
    if not scene_id:
        raise ProcessingError(str(scene_l2a.attrs.get("product_id", "scene")), "L2C", "scene_id must not be empty")
    tiles = (tiles_intersecting(str(scene_l2a.attrs["footprint"])) if tiles is None
             else list(dict.fromkeys(normalize_tile(t) for t in tiles)))
    time = utc_time(str(scene_l2a.attrs["acquisition_time"]))
    platform = str(scene_l2a.attrs.get("platform", ""))
    crops: dict[str, tuple[GeoBox, TileCrop]] = {}
    for tile in tiles:
        gbox = tile_geobox(tile, cfg.target_gsd, buffer_px=cfg.mgrs_pixel_buffer)
        crop = crop_to_tile(ds, gbox, cfg, direct=direct)
        if crop is not None:
            crops[tile] = gbox, crop
    # --- write path (gmsdask.io.cube_writer): one Icechunk commit per tile ---
    slot = SceneSlot(scene_id, time, {"platform": platform, **scene_slot_coordinates(scene_l2a.attrs)})
    quantity = str(scene_l2a.attrs.get("quantity") or "surface_reflectance")

    def write(tile: str, gbox: GeoBox, crop: TileCrop) -> TileWrite | None:
        attrs = {"mgrs_tile": tile, "epsg": tile_epsg(tile), "gsd_m": float(cfg.target_gsd),
                 "pixel_buffer": int(cfg.mgrs_pixel_buffer), "virtual_sensor_name": cfg.virtual_sensor_name,
                 "quantity": quantity,
                 "title": f"gmsdask L2C datacube of Sentinel-2 MGRS tile {tile}",
                 "history": f"created by gmsdask {__version__}", "Conventions": "CF-1.8"}
        grid = CubeGrid(gbox, cube_chunks(cfg, gbox), cfg.output_compressor, attrs)
        done = write_scene(cube_path(cfg, tile, quantity), crop.data, grid, slot, origin=(crop.rows.start, crop.cols.start),
                           job_id=job_id, should_cancel=should_cancel, skip_empty=True,
                           message=f"job {job_id if job_id is not None else '-'}: scene {scene_id} into {tile}")
        if done is None:  # the footprint reached the tile, its pixels did not: the cube stays as it was
            return None
        return TileWrite(tile, cube_path(cfg, tile, quantity), done.time_index, scene_id, done.created_cube,
                         done.replaced_slot, done.snapshot_id, crop.resamplings)

    done = _each_tile(write, [(tile, gbox, crop) for tile, (gbox, crop) in crops.items()])
    return [tile_write for tile_write in done if tile_write is not None]
