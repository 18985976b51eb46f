"""The product's own cloud mask as Fmask classes, and any mask brought onto another grid of the scene.

``cloud_masking_algorithm = PRODUCT_QA`` uses :func:`product_qa_masks` instead of
:func:`gmsdask.masks.fmask_scene`; both give a Dataset with an ``fmask`` variable of the same classes, so L2A
handles either the same way, and :func:`mask_on_grid` puts it on each resolution group before resampling.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ..algorithms.fmask_qa import CLASS_NAMES, QA_LAYERS, product_qa_classes
from ..errors import ProcessingError
from .esa_gml import rasterize_esa_cloud_mask
from .fmask import _groups, _nearest_index, _scene_name, _take_nearest

__all__ = ["mask_on_grid", "product_qa_masks"]


def mask_on_grid(masks: xr.Dataset, grid: xr.Dataset) -> xr.Dataset:
    """``masks`` (e.g. the result of ``fmask_scene``) looked up at the pixel centres of ``grid`` (another
    resolution group of the same scene, same CRS): nearest neighbour, lazy, chunked like ``grid``.

    Within a nested Sentinel-2 tile a 10 m pixel takes the class of the 20 m pixel it lies in.
    """
    rows = _nearest_index(grid.y.values, masks.y.values)
    cols = _nearest_index(grid.x.values, masks.x.values)
    first = next(iter(grid.data_vars.values()))
    chunks = first.data.chunks if isinstance(first.data, da.Array) else "auto"
    variables = {}
    for name, variable in masks.data_vars.items():
        data = variable.data if isinstance(variable.data, da.Array) else da.from_array(variable.data)
        variables[name] = (("y", "x"), _take_nearest(data, rows, cols).rechunk(chunks), dict(variable.attrs))
    coords: dict[str, Any] = {"x": grid.x, "y": grid.y}
    if "spatial_ref" in grid.coords:
        coords["spatial_ref"] = grid.spatial_ref
    return xr.Dataset(variables, coords=coords, attrs=dict(masks.attrs))


def _classes_block(*layers: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    return product_qa_classes(dict(zip(names, layers)))


def product_qa_masks(scene: xr.DataTree) -> xr.Dataset:
    """Fmask classes (``fmask``, uint8) from the scene's own quality layers, lazily.

    Layers: ``QA_PIXEL``/``BQA`` (Landsat), ``SCL`` and ``MSK_CLASSI_*`` (Sentinel-2), on the grid of the
    first of them (finer layers of other groups are looked up by nearest neighbour). A Sentinel-2 L1C product
    before baseline 04.00 has only ``MSK_CLOUDS_B00.gml``: its polygons are rasterized on the ``r20m`` grid
    (a small eager step: vectors to a uint8 raster); there, every other valid pixel is clear.

    Raises
    ------
    ProcessingError
        When the scene has no quality layer at all.
    """
    groups = _groups(scene)
    present = [(name, group) for name in QA_LAYERS for group, ds in groups.items() if name in ds.data_vars]
    attrs = {"fmask_source": "product QA"}
    flags = sorted(CLASS_NAMES)
    var_attrs = {"long_name": "product QA class", "flag_values": flags,
                 "flag_meanings": " ".join(CLASS_NAMES[v] for v in flags), "nodata": 0}
    if present:
        grid = groups[present[0][1]]
        names = tuple(name for name, _ in present)
        chunks = grid[names[0]].data.chunks
        arrays = []
        for name, group in present:
            source = groups[group]
            data = source[name].data
            if group != present[0][1]:
                rows = _nearest_index(grid.y.values, source.y.values)
                cols = _nearest_index(grid.x.values, source.x.values)
                data = _take_nearest(data, rows, cols)
            arrays.append(data.rechunk(chunks))
        classes = da.map_blocks(_classes_block, *arrays, names=names, dtype=np.uint8,
                                meta=np.empty((0, 0), dtype=np.uint8))
        attrs |= {"fmask_grid_group": present[0][1], "fmask_qa_layers": list(names)}
    elif scene.attrs.get("sensor") == "MSI" and "r20m" in groups:
        grid = groups["r20m"]
        product = str(scene.attrs.get("product_path", ""))
        cloud = da.from_array(rasterize_esa_cloud_mask(product, grid), chunks=grid["nodata"].data.chunks)
        nodata = grid["nodata"].data
        classes = da.where(nodata, np.uint8(0), da.where(cloud, np.uint8(2), np.uint8(1))).astype(np.uint8)
        attrs |= {"fmask_grid_group": "r20m", "fmask_qa_layers": ["MSK_CLOUDS_B00.gml"]}
    else:
        raise ProcessingError(_scene_name(scene), "L1C", "cloud_masking_algorithm PRODUCT_QA: the product has no "
                                                         f"quality layer ({', '.join(QA_LAYERS)})")
    coords: dict[str, Any] = {"x": grid.x, "y": grid.y}
    if "spatial_ref" in grid.coords:
        coords["spatial_ref"] = grid.spatial_ref
    return xr.Dataset({"fmask": (("y", "x"), classes, var_attrs)}, coords=coords, attrs=attrs)
