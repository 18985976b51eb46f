"""L1C: cloud, cloud-shadow, snow and water masks of Level-1 products, then atmospheric correction to surface
reflectance with 6S (:mod:`gmsdask.atmosphere`: lookup tables cached below ``path_cache``, dark-dense-vegetation
aerosol, ``aot550`` where no dark targets exist). A failed correction fails the scene's L1C with its reason: there
is no silent fallback to TOA. Level-2 inputs keep their surface reflectance and are masked from their QA layers.

Masks come first, on the TOA reflectance and brightness temperature (``cloud_masking_algorithm``: ``FMASK``, or
``PRODUCT_QA`` for the product's own QA layers), and cloud and shadow pixels become no data in every band before
anything is resampled, so cloud brightness never bleeds into clear pixels. Level-2 inputs are skipped: they are
surface reflectance already, and L2A masks them with their own QA layers (``mask_clouds_l2a``).
The thermal bands are dropped afterwards where ``skip_thermal`` says so. Everything stays lazy.

Blocks: L1C works on blocks of at least ``PROCESSING_BLOCK_PX`` pixels a side (whole multiples of the scene's
chunks, so the rechunk only merges). The cube's chunking (``tiling_block_size_XY``, which also sets the chunks
the scene is read with) can be small, but Fmask's neighbourhood steps and the per-chunk correction pay a fixed
cost per task: at 64-pixel chunks a 1200 x 1200 Sentinel-2 scene made ~54 000 tasks and L1C took 20-40 times
as long as at 512. The masks and corrected bands do not depend on the blocks (no seams, tested), and L2A
resamples to the cube's chunks anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dask.array as da
import numpy as np
import xarray as xr

from ..algorithms.fmask_qa import CLOUD, NODATA, SHADOW
from ..atmosphere import correct_scene
from ..geometry import group_geobox
from ..io import open_scene
from ..io.decoded_copy import DecodedCopy
from ..io.scene import decoded_from_overviews
from ..masks import coarse_masks, fmask_scene, mask_scene, product_qa_masks
from ..masks.fmask import finer_fmask_bands, first_look_m, fmask_band_names, fmask_grid_group, fmask_grid_m
from ..sensors import get_sensor
from ._contract import LevelContext, LevelOutcome
from .l1a import decoded_copy

__all__ = ["VERSION", "run"]

#: Implementation version: scenes recorded with an older one are processed again on rerun.
VERSION = "7"  # 7: Fmask's 10 m bands at 20 m as means of the copy's pixels; 6: from overviews; 5: first looks
#: Smallest side (pixels) of the blocks L1C computes on (see the module doc).
PROCESSING_BLOCK_PX = 1024
#: Chunk side of the first look (a whole tile's is 1372 px at 80 m: one read per band).
_FIRST_LOOK_CHUNK_PX = 4096
#: Chunk side of the aerosol and water-vapour look (a whole tile's is 2745 px at 40 m). Its sums run block by
#: block, and in one chunk per band each band's block and its float64 copy (57 MiB at a whole tile) were held
#: by every consumer at once: ~450 MiB per worker, the peak of a whole tile's L1C (2026-11-30). JPEG 2000
#: overviews decode in 1024 px windows for the CPU time of one window per band (measured on the synthetic tile).
_RETRIEVAL_LOOK_CHUNK_PX = 1024


def _merged(chunks: tuple[int, ...], minimum: int) -> tuple[int, ...]:
    """Chunks of one axis merged into runs of whole chunks of at least ``minimum`` (the last run may be shorter).
    """
    merged, run = [], 0
    for size in chunks:
        run += size
        if run >= minimum:
            merged.append(run)
            run = 0
    if run:
        merged.append(run)
    return tuple(merged)


def _in_processing_blocks(scene: xr.DataTree, minimum: int = PROCESSING_BLOCK_PX) -> xr.DataTree:
    """The scene with every chunked ``(y, x)`` variable of its resolution groups in blocks of >= ``minimum``."""
    out = scene.copy()
    for name, child in scene.children.items():
        if not (name.startswith("r") and name.endswith("m") and name[1:-1].isdigit()):
            continue  # not a resolution group (angles, masks of another grid)
        ds = child.to_dataset()
        changed = {}
        for var_name, var in ds.data_vars.items():
            if isinstance(var.data, da.Array) and var.dims == ("y", "x"):
                target = tuple(_merged(c, minimum) for c in var.data.chunks)
                if target != var.data.chunks:
                    changed[var_name] = var.copy(data=var.data.rechunk(target))
        if changed:
            out[name] = xr.DataTree(ds.assign(changed))
    return out


def _first_look(scene: xr.DataTree, look_m: float | None, chunks: int = _FIRST_LOOK_CHUNK_PX
                ) -> xr.DataTree | None:
    """The scene's product read at ``look_m`` metres (a first look: ``open_scene(..., overview_m=...)``), or None
    when ``look_m`` is None (a scene small enough for its own passes) or the scene has no ``product_path``."""
    path = scene.attrs.get("product_path")
    if look_m is None or not path:
        return None
    return open_scene(str(path), chunks=chunks, overview_m=look_m)


def _fmask_input(scene: xr.DataTree, look_m: float | None,
                 chunks: int | Sequence[int] | Mapping[str, int] | None = None,
                 decoded: DecodedCopy | None = None) -> xr.DataTree:
    """What Fmask reads. A large scene (``look_m`` not None) whose Fmask bands finer than Fmask's grid decode
    from their files' overviews at the grid's pixel (Sentinel-2's 10 m B02, B03, B04, B08 at 20 m) gives the
    product opened at that pixel: Fmask used one 10 m pixel in four, and decoding all of them cost each of
    those bands a full JPEG 2000 decode more than the final pass's (an overview decode: ~20 % of it, measured
    on the synthetic tile's 2048 px windows). Otherwise (Landsat, whose bands are on Fmask's 30 m grid; small
    scenes; files without overviews) the scene itself. ``chunks``: what L1A opened the scene with
    (``open_scene``'s), so that both trees end in the same processing blocks; ``decoded``: L1A's copy of the
    decoded bands (the bands Fmask reads at their own grid come from it instead of a second decode). Where the
    copy holds the finer bands, Fmask takes the means of their pixels on its grid instead
    (:func:`_copied_bands_averaged`): reading the copy costs a fraction of an overview's decode."""
    grid_m = fmask_grid_m(scene)
    finer = finer_fmask_bands(scene)
    path = scene.attrs.get("product_path")
    if look_m is None or grid_m is None or not finer or not path:
        return scene
    averaged = _copied_bands_averaged(scene, finer, grid_m, decoded)
    if averaged is not None:
        return _grid_group_in_fine_chunks(averaged, decoded, str(path))
    reduced = open_scene(str(path), chunks=chunks, overview_m=grid_m, decoded=decoded)
    if not decoded_from_overviews(reduced, finer):
        return scene
    return _in_processing_blocks(reduced)


def _copied_bands_averaged(scene: xr.DataTree, bands: Sequence[str], grid_m: float,
                           decoded: DecodedCopy | None) -> xr.DataTree | None:
    """The scene with the groups of ``bands`` (finer than Fmask's ``grid_m`` grid) replaced by the means of
    their ``k`` x ``k`` pixels on that grid (``any`` for the boolean masks beside them), one task per source
    block fused with its read; None unless the decoded copy holds every one of ``bands`` and each group nests in the
    grid (whole multiples of pixels and chunks, the same corner).

    Why: the 20 m overviews of Sentinel-2's four 10 m bands cost ~0.5 s of JPEG 2000 decoding per 2048² block
    (a whole tile's Fmask: ~19 s of worker time, 2026-11-30), while the copy reads a 2048² block in ~7 ms. A
    mean of the four 10 m pixels under a 20 m one is what that 20 m pixel sees (the overview is the wavelet's
    low-pass, of a wider support)."""
    grid_group = fmask_grid_group(scene)
    if decoded is None or grid_group is None:
        return None
    grid = scene[grid_group].ds
    out = scene.copy()
    for group in {name for name, child in scene.children.items() for band in bands if band in child.ds.data_vars}:
        ds = scene[group].to_dataset()
        factor = int(round(grid_m / abs(group_geobox(ds, group, "L1C").resolution.x)))
        nested = (factor > 1 and ds.sizes["y"] == grid.sizes["y"] * factor and ds.sizes["x"] == grid.sizes["x"] * factor
                  and all(np.allclose(ds[axis].values.reshape(-1, factor).mean(axis=1), grid[axis].values)
                          for axis in ("y", "x")))
        if not (nested and _in_copy(ds, [band for band in bands if band in ds.data_vars], decoded)):
            return None
        variables = {}
        for name, var in ds.data_vars.items():
            if var.dims != ("y", "x") or not isinstance(var.data, da.Array) or not (name in bands or var.dtype == bool):
                continue
            if any(size % factor for axis_chunks in var.data.chunks for size in axis_chunks):
                return None
            reduce = np.any if var.dtype == bool else np.mean
            # in the source's blocks, reduced (2046 px at 10 m: 1023 px at 20 m, Fmask's blocks): no merge
            data = da.coarsen(reduce, var.data, {0: factor, 1: factor})
            variables[name] = xr.DataArray(data, dims=("y", "x"),
                                           attrs={**var.attrs, "fmask_input": f"mean of {factor}x{factor} pixels"})
        out[group] = xr.DataTree(xr.Dataset(variables, coords=grid.coords, attrs=ds.attrs))
    return out


def _in_copy(ds: xr.Dataset, bands: Sequence[str], decoded: DecodedCopy) -> bool:
    """Whether the decoded copy holds every one of ``bands`` of ``ds`` (read from it, not from their files)."""
    return all("source_raster" in ds[band].encoding and decoded.covers(ds[band].encoding["source_raster"])
               for band in bands)


def _grid_group_in_fine_chunks(scene: xr.DataTree, decoded: DecodedCopy, path: str) -> xr.DataTree:
    """``scene`` (:func:`_copied_bands_averaged`'s) with Fmask's grid group read again from the copy in the chunks
    of the averaged finer bands (a whole tile's 20 m bands: 1023 px instead of 2046), where the copy holds its
    Fmask bands; else ``scene`` as it is.

    Why: Fmask tests a block once its neighbours' blocks are there, so its pass holds a front of input blocks.
    In the scene's 2046 px chunks a 20 m band comes two Fmask block rows at a time, and the front was up to two
    block rows of every 20 m input across the scene's width: memory that grows with the scene's side. Fmask
    computes its masks before the correction reads the bands (L1C persists them), so the two passes never
    shared these reads."""
    group = fmask_grid_group(scene)
    finer = [var.data for name, child in scene.children.items() if name != group
             for var in child.ds.data_vars.values() if "fmask_input" in var.attrs and isinstance(var.data, da.Array)]
    if group is None or not finer:
        return scene
    block = (max(finer[0].chunks[0]), max(finer[0].chunks[1]))
    grid = scene[group].ds
    bands = [band for band in fmask_band_names(str(scene.attrs["sensor"])).values() if band in grid.data_vars]
    fine_already = all(max(grid[band].data.chunks[axis]) <= block[axis] for band in bands for axis in (0, 1))
    if fine_already or not _in_copy(grid, bands, decoded):
        return scene
    reread = open_scene(path, chunks=block, decoded=decoded.read_in(block))
    out = scene.copy()
    out[group] = xr.DataTree(reread[group].to_dataset())
    return out


def _retrieval_look(scene: xr.DataTree, masks: xr.Dataset, look_m: float | None) -> xr.DataTree | None:
    """For a scene large enough for a first look (``look_m`` not None): the product at twice the masks' pixel
    size (Sentinel-2 40 m, Landsat 60 m: whole pixels of the 3 km aerosol cells), masked with the masks brought
    onto that grid, for the aerosol and water-vapour sums; None where a band of it would be decoded in full (no
    overviews)."""
    pixel_m = float(abs(masks.x.values[1] - masks.x.values[0]))
    look = _first_look(scene, None if look_m is None else 2 * pixel_m, _RETRIEVAL_LOOK_CHUNK_PX)
    if look is None:
        return None
    if not decoded_from_overviews(look, scene.attrs.get("band_names", [])):
        return None
    return mask_scene(look, coarse_masks(masks, 2), classes=(NODATA, CLOUD, SHADOW))


def _family(platform: str) -> str:
    return "SENTINEL_2" if platform.upper().startswith("SENTINEL_2") else "LANDSAT"


def _without_thermal(scene: xr.DataTree) -> xr.DataTree:
    """The scene without its thermal bands (``skip_thermal``): they served the masks only."""
    sensor = get_sensor(scene.attrs["platform"])
    thermal = {band.name for band in sensor.bands if band.kind == "thermal"}
    out = scene.copy()
    for name, child in scene.children.items():
        present = [v for v in child.data_vars if v in thermal]
        if present:
            out[name] = xr.DataTree(child.to_dataset().drop_vars(present))
    out.attrs["band_names"] = [b for b in scene.attrs.get("band_names", []) if b not in thermal]
    return out


def run(scene: xr.DataTree, ctx: LevelContext) -> LevelOutcome:
    """L1C of one scene."""
    cfg = ctx.config
    attrs = scene.attrs
    if attrs.get("quantity") == "surface_reflectance":
        # Level-2 products carry their own masks (SCL, QA_PIXEL, MSK_CLDPRB): L2A applies them (mask_clouds_l2a)
        return LevelOutcome(scene, "skipped", "already surface reflectance, masked by its own QA layers in L2A")
    algorithm = cfg.cloud_masking_algorithm.get(_family(str(attrs["platform"])), "FMASK")
    scene = _in_processing_blocks(scene)
    look_m = first_look_m(scene)
    if algorithm == "FMASK":
        masks = fmask_scene(_fmask_input(scene, look_m, cfg.chunks, decoded_copy(ctx)),
                            cloud_buffer_m=cfg.cloud_buffer_m, shadow_buffer_m=cfg.shadow_buffer_m,
                            snow_buffer_m=cfg.snow_buffer_m,
                            first_look=_first_look(scene, look_m))
    else:
        masks = product_qa_masks(scene)
    # the masks are computed once and kept (on the cluster): the aerosol/water-vapour pass of correct_scene and
    # the lazy result both need them, and Fmask is the costliest part of both (a class byte and a confidence
    # per 20/30 m pixel: ~150 MB for a whole Sentinel-2 tile)
    masks = masks.persist()
    masked = mask_scene(scene, masks)
    masked.attrs["cloud_masking_algorithm"] = algorithm
    if cfg.skip_thermal:
        masked = _without_thermal(masked)
    facts: dict = {"cloud_masking_algorithm": algorithm}
    corrected, atmosphere = correct_scene(masked, aot550=cfg.aot550, path_dem=cfg.path_dem,
                                          estimate_accuracy=cfg.ac_estimate_accuracy, cache_dir=cfg.path_cache,
                                          landsat_view_angles=cfg.ac_landsat_view_angles,
                                          first_look=_retrieval_look(scene, masks, look_m))
    ac_facts = atmosphere.facts()
    corrected.attrs.update(quantity="surface_reflectance", aot550=float(ac_facts["aot550_mean"]),
                           aot_source=str(ac_facts["aot_source"]))
    facts.update(ac_facts)
    note = (f"masks: {algorithm}; atmosphere: 6S, AOT550 {ac_facts['aot550_mean']:.3f} "
            f"({ac_facts['aot_source']})")
    return LevelOutcome(corrected, note=note, facts=facts)
