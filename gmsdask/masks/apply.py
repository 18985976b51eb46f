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
import xarray as xr

from ..algorithms.fmask_qa import CLEAR, CLOUD, NODATA, SHADOW, SNOW, WATER
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
    for name, child in scene.children.items():
        if not _is_resolution_group(name):
            children[name] = child.copy()
            continue
        ds = child.to_dataset()
        on_grid = masks if name == home else mask_on_grid(masks, ds)
        hidden = on_grid["fmask"].isin(blanked).variable.data
        hidden_da = xr.DataArray(hidden, dims=("y", "x"))
        updated = {}
        for band in (v for v in ds.data_vars if v in band_names):
            updated[band] = ds[band].where(~hidden_da).assign_attrs(ds[band].attrs)
        if "nodata" in ds:
            updated["nodata"] = (ds["nodata"] | hidden_da).assign_attrs(ds["nodata"].attrs)
        if name == home:
            for layer in ("fmask", "cloud_confidence"):
                if layer in masks:
                    updated[layer] = xr.DataArray(masks[layer].data, dims=("y", "x"), attrs=dict(masks[layer].attrs))
        children[name] = xr.DataTree(ds.assign(updated))
    attrs = dict(scene.attrs) | {"cloud_mask_classes": blanked, "cloud_mask_group": home}
    return xr.DataTree(dataset=xr.Dataset(attrs=attrs), children=children)
