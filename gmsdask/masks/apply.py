"""Masked pixels of a scene set to no data on every native grid, before anything is resampled.

L2A resamples every band to the target grid with cubic or area kernels; a cloud left in the data would spread
its brightness into the clear pixels around it. :func:`mask_scene` therefore blanks the masked classes in
each resolution group at its own pixel size (the mask looked up at the group's pixel centres), and adds the
mask layers to the scene so that L2A carries them like the products' QA layers (nearest neighbour).
"""

from __future__ import annotations

from collections.abc import Iterable

import dask.array as da
import numpy as np
import odc.geo.xr  # noqa: F401  (the .odc accessor gives a Dataset's GeoBox)
import xarray as xr
from dask.base import tokenize

from ..algorithms.fmask_qa import CLEAR, CLOUD, NODATA, SHADOW, SNOW, WATER
from ..geometry.scene_grid import nested_window, nested_within
from .product_qa import mask_on_grid

__all__ = ["coarse_masks", "mask_scene"]

# a coarse pixel takes the most restrictive class among its fine pixels: it is clear only where all of them are
_RANK_OF_CLASS = np.zeros(256, dtype=np.uint8)
_CLASS_BY_RANK = np.array([CLEAR, WATER, SNOW, NODATA, SHADOW, CLOUD], dtype=np.uint8)
_RANK_OF_CLASS[_CLASS_BY_RANK] = np.arange(_CLASS_BY_RANK.size, dtype=np.uint8)


def _is_resolution_group(name: str) -> bool:
    return name.startswith("r") and name.endswith("m") and name[1:-1].isdigit()


def _most_restrictive(classes: np.ndarray, axis: tuple[int, ...] | None = None) -> np.ndarray:
    return _CLASS_BY_RANK[_RANK_OF_CLASS[classes].max(axis=axis)]


def coarse_masks(masks: xr.Dataset, factor: int) -> xr.Dataset:
    """``masks.fmask`` on the grid ``factor`` times coarser with the same origin (``floor(n / factor)`` pixels,
    as ``open_scene(..., overview_m=...)`` reads a first look): a coarse pixel is clear land only where every
    fine pixel is; otherwise it takes the most restrictive class among them (cloud, then shadow, no data, snow,
    water). Lazy; for masking a first look (:func:`mask_scene` with ``NODATA`` among the classes)."""
    ny, nx = (masks.sizes["y"] // factor) * factor, (masks.sizes["x"] // factor) * factor
    data = da.asarray(masks["fmask"].data)[:ny, :nx]
    block = max(factor, (2048 // factor) * factor)
    coarse = da.coarsen(_most_restrictive, data.rechunk((block, block)), {0: factor, 1: factor})
    coords = {"y": masks.y.values[:ny].reshape(-1, factor).mean(axis=1),
              "x": masks.x.values[:nx].reshape(-1, factor).mean(axis=1)}
    out = xr.Dataset({"fmask": (("y", "x"), coarse, dict(masks["fmask"].attrs))}, coords=coords,
                     attrs=dict(masks.attrs))
    return out.assign_coords(spatial_ref=masks.spatial_ref) if "spatial_ref" in masks.coords else out


def mask_scene(scene: xr.DataTree, masks: xr.Dataset, *, classes: Iterable[int] = (CLOUD, SHADOW)) -> xr.DataTree:
    """The scene with every band NaN where ``masks.fmask`` is one of ``classes`` (default cloud and shadow).

    Parameters
    ----------
    scene
        Scene tree of ``docs/scene-model.md``.
    masks
        Result of :func:`gmsdask.masks.fmask_scene` or :func:`gmsdask.masks.product_qa_masks` for this scene
        (its ``fmask_grid_group`` attr names the group whose grid it is on).
    classes
        Fmask classes to blank (0 no data, 1 clear, 2 cloud, 3 shadow, 4 snow, 5 water).

    Returns
    -------
    xarray.DataTree
        Lazily masked copy: in each resolution group the bands (``band_names``) are NaN on masked pixels and
        ``nodata`` is True there; the mask's own group gains ``fmask`` (and ``cloud_confidence`` where given),
        integer layers with a ``nodata`` attribute. Root attrs gain ``cloud_mask_classes`` and
        ``cloud_mask_group``. Pixels where the mask itself has no data are left as they are.
    """
    blanked = sorted({int(c) for c in classes})
    band_names = set(scene.attrs.get("band_names", []))
    home = str(masks.attrs.get("fmask_grid_group", ""))
    children: dict[str, xr.DataTree] = {}
    whole_classes: da.Array | None = None
    for name, child in scene.children.items():
        if not _is_resolution_group(name):
            children[name] = child.copy()
            continue
        ds = child.to_dataset()
        # where the group's grid nests in the mask's (a Sentinel-2 tile's 10 m and 20 m grids in Fmask's 20 m),
        # each block of a variable looks its pixels up in the class layer in its own task (_blanked); elsewhere
        # one mask for the group, looked up by nearest neighbour
        mask_grid, group_grid = masks.odc.geobox, ds.odc.geobox
        placement = nested_within(mask_grid, group_grid) if mask_grid is not None and group_grid is not None else None
        targets = [band for band in ds.data_vars if band in band_names] + (["nodata"] if "nodata" in ds else [])
        per_block = placement is not None and all(isinstance(ds[v].data, da.Array) for v in targets)
        if per_block and whole_classes is None:
            whole_classes = _whole(masks["fmask"].data)
        nested = (whole_classes, placement) if per_block else None
        group_mask = None
        if not per_block:
            on_grid = masks if name == home else mask_on_grid(masks, ds)
            group_mask = xr.DataArray(on_grid["fmask"].isin(blanked).variable.data, dims=("y", "x"))
        updated = {v: _hidden(ds[v], True if v == "nodata" else np.nan, blanked, nested, group_mask) for v in targets}
        if name == home:
            for layer in ("fmask", "cloud_confidence"):
                if layer in masks:
                    updated[layer] = xr.DataArray(masks[layer].data, dims=("y", "x"), attrs=dict(masks[layer].attrs))
        children[name] = xr.DataTree(ds.assign(updated))
    attrs = dict(scene.attrs) | {"cloud_mask_classes": blanked, "cloud_mask_group": home}
    return xr.DataTree(dataset=xr.Dataset(attrs=attrs), children=children)


def _hidden(var: xr.DataArray, fill: float | bool, blanked: list[int],
            nested: tuple[da.Array, tuple[int, int, int]] | None, group_mask: xr.DataArray | None) -> xr.DataArray:
    """``var`` set to ``fill`` on the masked classes: block by block (``nested``: the class layer in one chunk and
    where ``var``'s grid nests in it), else by the group's mask."""
    if nested is not None:
        # no encoding kept, as `where` keeps none: the source file is no longer what the values are
        return xr.DataArray(_blanked(var.data, *nested, fill, blanked=blanked), dims=var.dims, coords=var.coords,
                            attrs=var.attrs)
    return var.where(~group_mask, fill).assign_attrs(var.attrs)


def _whole(classes: da.Array | np.ndarray) -> da.Array:
    """The class layer in one chunk: one task that the blocks of every band depend on (joined once, not per band)."""
    return da.asarray(classes).rechunk(-1)


def _blanked(band: da.Array, classes: da.Array, placement: tuple[int, int, int], fill: float | bool, *,
             blanked: list[int]) -> da.Array:
    """``band`` set to ``fill`` where ``classes`` (the class layer in one chunk, :func:`_whole`, on the grid that
    ``band``'s nests in, ``placement``) are among ``blanked``: each block looks its pixels up in its own task. A
    mask made once per block and shared by the group's variables was made ahead of them and held until the last
    had taken it: at a whole tile ~150 MiB of 10 m and 20 m masks, made at the start of the final pass. The class
    layer is one array (~30 MB at a whole tile's 20 m grid), the lookup a few ms per block."""
    # map_blocks does not align its arrays: the one-chunk layer goes whole to every block of the band
    return da.map_blocks(_blanked_block, band, classes, blanked=np.asarray(blanked, dtype=np.uint8),
                         origin=placement[:2], factor=placement[2], fill=fill, dtype=band.dtype,
                         name=f"cloud-blanked-{tokenize(band.name, classes.name, blanked, placement, fill)}",
                         meta=np.empty((0, 0), dtype=band.dtype))


def _blanked_block(block: np.ndarray, classes: np.ndarray, blanked: np.ndarray, origin: tuple[int, int],
                   factor: int, fill: float | bool, block_info: dict | None = None) -> np.ndarray:
    (top, bottom), (left, right) = block_info[0]["array-location"]
    hidden = np.isin(nested_window(classes, (origin[0] + top, origin[0] + bottom),
                                   (origin[1] + left, origin[1] + right), factor), blanked)
    return np.where(hidden, np.array(fill, dtype=block.dtype), block)
