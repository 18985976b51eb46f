"""L2A, geometric homogenization: every resolution group of a scene onto one target pixel grid, lazily.

One resampling step per variable does everything: it applies the L1B shift (by translating the source grid, not
by resampling twice), changes the CRS if asked, and lands on a grid whose pixel corners nest into the
Sentinel-2 MGRS tiles. Reflectance uses area averaging where the source is finer than the target (Sentinel-2
10/20 m -> 30 m, as NASA HLS does) and ``cfg.spatial_resamp_alg_default`` (cubic) otherwise; masks and integer
QA layers use nearest neighbour. The work is a Dask graph with one task per output block and variable; each task
reads only the source blocks under its output block plus a kernel-sized margin, so memory per worker is bounded
by the block size and results do not depend on where blocks are cut.
"""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox
from pyproj import CRS

from ..algorithms.quality import CLOUD_DECODERS
from ..config import JobConfig
from ..errors import ConfigError, ProcessingError
from ..geometry import (as_dask, choose_resampling, grid_dataset, group_geobox, pixel_size_in, qa_fill_value,
                        resolution_groups, scene_name, shift_geobox, warp_variable)
from ..geometry.field_warp import DisplacementField, field_layer_lazy, warp_lazy_field
from ..mgrs_grid import grid_anchor, tile_epsg, tile_origin, utm_epsg_at
from ..spectral.bands import surface_reflectance_bands
from ._contract import LevelContext, LevelOutcome

__all__ = ["target_geobox", "geometric_homogenization", "mask_clouds", "l1b_shift", "local_field", "homogenize",
           "run", "VERSION"]

#: Implementation version: scenes recorded with an older one are processed again on rerun (3: coreg_local; 4:
#: ``nodata`` from the surface-reflectance bands only; 5: float bands warped into another CRS are sampled at the
#: exactly transformed positions, :mod:`gmsdask.algorithms.warp`; 6: float averages within a CRS by a compiled
#: sum, GDAL's values to float32 rounding; 7: bilinear and cubic within a CRS by the separable kernel, the
#: renormalized kernel next to no data as into another CRS).
VERSION = "7"

MASKS = ("nodata", "saturated")
#: Smallest L2A output block (pixels a side) derived from finer sources: smaller blocks would add tasks (Dask's
#: overhead per task) without lowering memory further.
_MIN_BLOCK_PX = 256


def _is_metric_projected(crs: CRS) -> bool:
    return crs.is_projected and all(axis.unit_name in ("metre", "meter") for axis in crs.axis_info)


def _default_epsg(scene: xr.DataTree, gbox: GeoBox) -> int:
    """The tile's UTM zone; else the scene's own UTM zone; else the UTM zone of the footprint centre."""
    tile = str(scene.attrs.get("mgrs_tile") or "")
    if tile:
        return tile_epsg(tile)
    own = CRS.from_user_input(str(gbox.crs))
    if own.utm_zone is not None and own.to_epsg():
        return int(own.to_epsg())
    lon, lat = gbox.footprint("EPSG:4326").centroid.coords[0]
    return utm_epsg_at(lon, lat)


def target_geobox(scene: xr.DataTree, cfg: JobConfig, *, shift_m: tuple[float, float] = (0.0, 0.0)) -> GeoBox:
    """The L2A grid of a scene: CRS ``cfg.target_epsg`` (default: see :func:`_default_epsg`), pixel size
    ``cfg.target_gsd`` metres, covering the (shifted) scene, pixel corners nested into the MGRS tile grid.

    When the scene's MGRS tile is in the target CRS the grid is anchored at the tile's origin (exact for any GSD
    dividing the tile); otherwise corners sit on multiples of the GSD from :func:`gmsdask.mgrs_grid.grid_anchor`.
    """
    groups = resolution_groups(scene)
    gboxes = [shift_geobox(group_geobox(ds, f"{scene_name(scene)}/{name}"), shift_m)
              for name, ds in groups.items()]
    epsg = cfg.target_epsg or _default_epsg(scene, gboxes[0])
    try:
        crs = CRS.from_epsg(epsg)
    except Exception as err:  # pyproj raises CRSError, an unrelated class, for unknown codes
        raise ConfigError("target_epsg", f"EPSG:{epsg} is not a known CRS ({err})") from None
    if not _is_metric_projected(crs):
        raise ConfigError("target_epsg", f"EPSG:{epsg} is not a projected CRS in metres; target_gsd is metres")
    gsd = float(cfg.target_gsd)
    tile = str(scene.attrs.get("mgrs_tile") or "")
    if tile and tile_epsg(tile) == epsg:
        _, anchor_x, anchor_y = tile_origin(tile)
    else:
        anchor_x, anchor_y = grid_anchor(epsg)
    target_crs = f"EPSG:{epsg}"
    bounds = np.array([g.footprint(target_crs).boundingbox for g in gboxes])  # left, bottom, right, top
    left, bottom = bounds[:, 0].min(), bounds[:, 1].min()
    right, top = bounds[:, 2].max(), bounds[:, 3].max()
    # snap outward to the anchored grid; the tolerance keeps floating-point noise from adding a pixel
    tol = 1e-6
    x0 = anchor_x + math.floor((left - anchor_x) / gsd + tol) * gsd
    x1 = anchor_x + math.ceil((right - anchor_x) / gsd - tol) * gsd
    y0 = anchor_y + math.floor((bottom - anchor_y) / gsd + tol) * gsd
    y1 = anchor_y + math.ceil((top - anchor_y) / gsd - tol) * gsd
    shape = (int(round((y1 - y0) / gsd)), int(round((x1 - x0) / gsd)))
    return GeoBox(shape, Affine(gsd, 0.0, x0, 0.0, -gsd, y1), target_crs)


def _is_band(name: str, var: xr.DataArray) -> bool:
    return name not in MASKS and np.issubdtype(var.dtype, np.floating)


def _warp(var: xr.DataArray, src: GeoBox, dst: GeoBox, *, resampling: str, fill: float | int | bool,
          chunks: tuple[int, int], field: DisplacementField | None) -> xr.DataArray:
    """One resampling of a variable: an affine mapping (GDAL), or with ``field`` the per-pixel mapping."""
    if field is None:
        return warp_variable(var, src, dst, resampling=resampling, fill=fill, chunks=chunks)
    data = warp_lazy_field(as_dask(var.data, chunks), src, dst, field, resampling=resampling, fill=fill,
                           chunks=chunks)
    return xr.DataArray(data, dims=("y", "x"), attrs=dict(var.attrs))


def _output_chunks(block: tuple[int, int], sources: list[GeoBox], dst: GeoBox) -> tuple[int, int]:
    """L2A's output block ``(y, x)`` in ``dst`` pixels: a ``block`` of the finest source grid (its Dask chunk),
    measured on the ground (rounded down), at most ``block`` ``dst`` pixels.

    A block of the coarser output then reads about one source block per band: with 2048 px blocks at both
    10 m and 30 m, one 30 m block read the 10 m blocks of a 61 km square (up to 16), so a worker held much of
    a tile's 10 m bands until a block's warps could run (issue 13's memory figure). Measured from the source's
    own chunks, an output block's edges fall on source block edges wherever the source grid nests in the
    output's: the default 2046 px chunks at 10 m give 682 px at 30 m, and an unshifted warp reads one source
    block. With 2048 px chunks (682.67 px at 30 m) every output block also needed slivers of the next source
    blocks, which then stayed in memory for a row of the scene: a whole tile's final pass grew by ~500 MiB.
    """
    finest_m = min((pixel_size_in(src, dst) for src in sources), default=abs(dst.resolution.x))
    ratio = min(1.0, finest_m / abs(dst.resolution.x))
    return tuple(min(size, max(_MIN_BLOCK_PX, math.floor(size * ratio + 1e-9)))  # type: ignore[return-value]
                 for size in block)


def _source_block(cfg: JobConfig, groups: dict[str, xr.Dataset], grids: dict[str, GeoBox],
                  dst: GeoBox) -> tuple[int, int]:
    """The Dask chunk ``(y, x)`` of the finest source group's bands (the largest, where the last is cut
    short), or ``tiling_block_size_XY`` when they are in memory."""
    finest = min(grids, key=lambda name: pixel_size_in(grids[name], dst))
    for var in groups[finest].data_vars.values():
        if var.dims == ("y", "x") and var.chunks:
            return max(var.chunks[0]), max(var.chunks[1])
    return cfg.chunks["y"], cfg.chunks["x"]


def _nodata_bands(scene: xr.DataTree, order: list[str]) -> list[str]:
    """The bands whose gaps make an L2A pixel ``nodata``: the platform's surface-reflectance bands, the ones L2B
    and the cube keep. With every band counted, cirrus (Landsat B9, Sentinel-2 B10) and water vapour (B09) were
    read, converted and warped for this mask alone; now only when something else asks for them (an L2A
    product). All bands when the platform is not known."""
    try:
        reflective = set(surface_reflectance_bands(str(scene.attrs.get("platform", ""))))
    except ConfigError:
        return order
    return [band for band in order if band in reflective] or order


def geometric_homogenization(scene: xr.DataTree, cfg: JobConfig, *, target: GeoBox | None = None,
                             shift_m: tuple[float, float] = (0.0, 0.0),
                             field: DisplacementField | None = None) -> xr.DataTree:
    """L2A: all resolution groups of ``scene`` on one grid, in one lazy resampling step per variable.

    Parameters
    ----------
    scene
        A scene tree (docs/scene-model.md).
    cfg
        Uses ``target_epsg``, ``target_gsd`` (metres), ``spatial_resamp_alg_default``, ``sort_bands_by_cwl``
        and ``tiling_block_size_XY`` (output block size, scaled to the finest source pixel: ``_output_chunks``).
    target
        The output grid; default :func:`target_geobox`.
    shift_m
        The L1B shift (dx, dy) in metres, x east and y north: the image content is displaced by this much.
    field
        The L1B local displacement field (``coreg_local``): when given, it replaces ``shift_m`` in the mapping
        of the one resampling (``shift_m`` then only places the default target grid).

    Returns
    -------
    A tree with one group ``r{gsd}m`` holding every band (float32, sorted by central wavelength when
    ``cfg.sort_bands_by_cwl``), ``nodata`` (any warped band without data), the integer QA layers (``nodata``
    attr = their fill value) and, with ``cfg.mask_clouds_l2a``, ``cloud`` (those pixels are NaN in every
    band), plus the ``angles`` group unchanged. The reader's ``saturated`` mask is not carried (see the
    comment in the loop). Root attrs are copied with
    ``epsg`` set to the output CRS and ``l2a_shift_m``, ``l2a_target_epsg``, ``l2a_resampling`` added.
    Nothing is computed.
    """
    name = scene_name(scene)
    groups = resolution_groups(scene)
    dst = target if target is not None else target_geobox(scene, cfg, shift_m=shift_m)
    grids = {group_name: group_geobox(ds, f"{name}/{group_name}") for group_name, ds in groups.items()}
    chunks = _output_chunks(_source_block(cfg, groups, grids, dst), list(grids.values()), dst)
    default_alg = cfg.spatial_resamp_alg_default

    bands: dict[str, xr.DataArray] = {}
    qa_layers: dict[str, xr.DataArray] = {}
    resampling_log: list[str] = []
    for group_name, ds in groups.items():  # finest first: a variable found twice is taken from the finest grid
        src = grids[group_name] if field is not None else shift_geobox(grids[group_name], shift_m)
        band_alg = choose_resampling(src, dst, default_alg)
        resampling_log.append(f"{group_name}:{band_alg}")
        for var_name, var in ds.data_vars.items():
            if var.dims != ("y", "x"):
                raise ProcessingError(name, "L2A", f"{group_name}/{var_name} has dims {var.dims}, expected (y, x)")
            if var_name in MASKS:
                # The reader's group masks depend on every band of the group: warping them would make all
                # bands share their source chunks, and a scene's writes held whole bands in memory (2.3 GiB
                # for one 10980^2 tile against 0.4 GiB without). nodata is taken from the warped bands below;
                # saturation stays flagged in the L1A scene and in the products' own QA layers (QA_RADSAT).
                continue
            elif _is_band(var_name, var):
                if var_name in bands:
                    continue
                out = _warp(var.astype(np.float32), src, dst, resampling=band_alg, fill=np.nan, chunks=chunks,
                            field=field)
                out.attrs.update(resampling=band_alg, l2a_source_group=group_name)
                bands[var_name] = out
            elif np.issubdtype(var.dtype, np.integer) or var.dtype == bool:
                if var_name in qa_layers:
                    continue
                fill = qa_fill_value(var_name, var.dtype, var.attrs)
                out = _warp(var, src, dst, resampling="nearest", fill=fill, chunks=chunks, field=field)
                out.attrs.update(nodata=fill, resampling="nearest", l2a_source_group=group_name)
                qa_layers[var_name] = out
            else:
                raise ProcessingError(name, "L2A", f"{group_name}/{var_name}: unsupported dtype {var.dtype}")
    if not bands:
        raise ProcessingError(name, "L2A", "the scene has no reflectance bands")

    if cfg.sort_bands_by_cwl:
        order = sorted(bands, key=lambda b: float(bands[b].attrs.get("central_wavelength_nm", math.inf)))
    else:
        sensor_order = list(scene.attrs.get("band_names", []))
        order = sorted(bands, key=lambda b: sensor_order.index(b) if b in sensor_order else len(sensor_order))
    # per output chunk, from the warped reflectance bands (the reader's group masks are not warped, see above):
    # each band's read-convert-warp pipeline stays independent
    nodata = da.stack([da.isnan(bands[b].data) for b in _nodata_bands(scene, order)]).any(axis=0)
    variables: dict[str, xr.DataArray] = {b: bands[b] for b in order}
    variables["nodata"] = xr.DataArray(nodata, dims=("y", "x"), attrs={
        "long_name": "no data in at least one surface-reflectance band", "flag_values": [0, 1]})
    variables.update(qa_layers)

    gsd = abs(dst.resolution.x)
    group_out = f"r{int(round(gsd))}m"
    out_ds = grid_dataset(variables, dst)
    cloud_sources: list[str] = []
    if cfg.mask_clouds_l2a:
        out_ds, cloud_sources = mask_clouds(out_ds, order)
    epsg = CRS.from_user_input(str(dst.crs)).to_epsg() or 0
    attrs = dict(scene.attrs)
    attrs.update(
        epsg=int(epsg),
        l2a_shift_m=[float(shift_m[0]), float(shift_m[1])],
        l2a_coreg_mapping="local field" if field is not None else "global translation",
        l2a_target_epsg=int(epsg),
        l2a_resampling=[*resampling_log, "masks:nearest", "qa:nearest"],
        l2a_cloud_mask_sources=cloud_sources,
    )
    children = {group_out: xr.DataTree(out_ds)}
    if "angles" in scene.children:
        children["angles"] = xr.DataTree(scene["angles"].to_dataset())
    return xr.DataTree(dataset=xr.Dataset(attrs=attrs), children=children)


def l1b_shift(scene: xr.DataTree) -> tuple[float, float]:
    """The content displacement (dx east, dy north; metres) L1B measured, or (0, 0) when it did not succeed."""
    if scene.attrs.get("coreg_status") != "success":
        return 0.0, 0.0
    dx, dy = scene.attrs["coreg_shift_m"]  # the content's displacement, east and north
    return float(dx), float(dy)


#: ``shift_reliability`` where L1B did not measure one (no reference, failed, skipped).
RELIABILITY_FILL = 255


def local_field(scene: xr.DataTree, cfg: JobConfig) -> DisplacementField | None:
    """The local displacement field L1B recorded (its ``l1b`` group), when ``cfg.coreg_local`` and L1B fitted
    one (root attr ``coreg_field_status`` ``"local"``); else None (the global shift applies)."""
    if not (cfg.coreg_local and scene.attrs.get("coreg_status") == "success"
            and scene.attrs.get("coreg_field_status") == "local" and "l1b" in scene.children):
        return None
    ds = scene["l1b"].to_dataset()
    if "field_dx_m" not in ds:
        raise ProcessingError(scene_name(scene), "L2A", "coreg_field_status is 'local' but the l1b group has no "
                                                        "field_dx_m; run L1B again")
    return DisplacementField.from_dataset(ds)


def _with_shift_reliability(tree: xr.DataTree, scene: xr.DataTree,
                            field: DisplacementField | None = None) -> xr.DataTree:
    """The L1B accuracy layer: the shift's reliability (percent, uint8) on every valid pixel (with a local field:
    the tie points' reliability interpolated per pixel); 100 for the reference scene itself, the fill where no
    shift was measured."""
    status = scene.attrs.get("coreg_status", "")
    value = (round(float(scene.attrs.get("coreg_reliability", 0.0))) if status == "success"
             else 100 if status == "reference" else RELIABILITY_FILL)
    (name, ds), = resolution_groups(tree, "L2A").items()
    if field is not None and status == "success":
        layer = xr.DataArray(field_layer_lazy(ds["nodata"].data, group_geobox(ds), field, fill=RELIABILITY_FILL),
                             dims=("y", "x"))
    else:
        layer = xr.where(ds["nodata"], RELIABILITY_FILL, value).astype(np.uint8)
    layer.attrs.update(long_name="reliability of the L1B co-registration shift", units="percent",
                       nodata=RELIABILITY_FILL)
    out = tree.copy()
    out[name] = xr.DataTree(ds.assign(shift_reliability=layer))
    return out


def homogenize(scene: xr.DataTree, cfg: JobConfig, *, target: GeoBox | None = None) -> xr.DataTree:
    """What L2A makes of a scene after L1B/L1C: :func:`geometric_homogenization` with the L1B shift (or, with
    ``cfg.coreg_local``, L1B's local field) and the ``shift_reliability`` layer. ``target``: the output grid
    (default :func:`target_geobox`); L2C passes a window of a tile in another UTM zone, so that such tiles are
    resampled once, straight from the scene."""
    # where L1C masked the scene (Fmask or the product's QA, as configured), its masks decide; else the product's QA
    masked_by_l1c = bool(scene.attrs.get("cloud_masking_algorithm"))
    cfg = cfg.replace(mask_clouds_l2a=False) if masked_by_l1c else cfg
    field = local_field(scene, cfg)
    homogenized = geometric_homogenization(scene, cfg, target=target, shift_m=l1b_shift(scene), field=field)
    return _with_shift_reliability(homogenized, scene, field)


def run(scene: xr.DataTree, ctx: LevelContext) -> LevelOutcome:
    """L2A of one scene in the processing chain, applying the shift L1B recorded (root attrs ``coreg_*``)."""
    cfg = ctx.config
    out = homogenize(scene, cfg)
    note = ""
    if out.attrs.get("l2a_coreg_mapping") == "local field":
        note = "L1B's local displacement field applied in the resampling"
    elif cfg.coreg_local and scene.attrs.get("coreg_status") == "success":
        note = f"coreg_local: {scene.attrs.get('coreg_field_status', 'no local field from L1B')}; global shift applied"
    return LevelOutcome(out, note=note)


def mask_clouds(ds: xr.Dataset, bands: list[str]) -> tuple[xr.Dataset, list[str]]:
    """Cloud, cirrus and cloud-shadow pixels of the product's own quality layers set to no data (lazily).

    Adds a ``cloud`` mask variable, ORs it into ``nodata``, and returns the layers used (none: unchanged).
    """
    sources = [name for name in CLOUD_DECODERS if name in ds.data_vars]
    if not sources:
        return ds, []
    cloud = da.stack([ds[name].data.map_blocks(CLOUD_DECODERS[name], dtype=bool) for name in sources]).any(axis=0)
    masked = ds.assign({band: ds[band].where(~xr.DataArray(cloud, dims=("y", "x"))) for band in bands})
    masked["cloud"] = xr.DataArray(cloud, dims=("y", "x"), attrs={
        "long_name": "cloud, cirrus or cloud shadow in the product's quality layers",
        "flag_values": [0, 1], "source_layers": sources})
    masked["nodata"] = (ds["nodata"] | masked["cloud"]).assign_attrs(ds["nodata"].attrs)
    for band in bands:
        masked[band].attrs = ds[band].attrs
    return masked, sources


