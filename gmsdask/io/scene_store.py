"""Per-scene level products on disk: a scene ``DataTree`` as Zarr, reflectance as int16 x 10000 via CF encoding."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from dask.delayed import Delayed

__all__ = ["reflectance_encoding", "write_scene", "read_scene"]

REFLECTANCE_SCALE = 1e-4
REFLECTANCE_FILL = -9999

# Level products carry consolidated metadata on purpose (one read opens a product); zarr 3 warns about it at every
# write, from each worker process that writes one (scene tasks). A filter, not ``catch_warnings``, which is not
# thread-safe; limited to this message from zarr.
warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part", category=UserWarning,
                        module=r"zarr\.")


def reflectance_encoding(variable: xr.DataArray) -> dict[str, Any]:
    """CF encoding of one variable: unitless float reflectance -> int16 x 10000 with fill -9999."""
    if variable.dtype == np.float32 and variable.attrs.get("units") == "1":
        return {"dtype": "int16", "scale_factor": np.float32(REFLECTANCE_SCALE), "add_offset": np.float32(0.0),
                "_FillValue": REFLECTANCE_FILL}
    return {}


def write_scene(scene: xr.DataTree, path: str | Path, *, compute: bool = True) -> Delayed | None:
    """Write a scene tree to a Zarr store (replacing an earlier version of it); lazy with ``compute=False``."""
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    # an explicit encoding replaces the variable's own, so keep its grid_mapping (the CRS link)
    encoding = {
        node.path: {name: {k: v for k, v in var.encoding.items() if k == "grid_mapping"} | reflectance_encoding(var)
                    for name, var in node.dataset.data_vars.items()}
        for node in scene.subtree if node.has_data
    }
    return scene.to_zarr(str(path), mode="w", encoding=encoding, compute=compute, consolidated=True)


def read_scene(path: str | Path) -> xr.DataTree:
    """A scene tree written by :func:`write_scene`, lazily (reflectance decoded back to float)."""
    tree = xr.open_datatree(str(path), engine="zarr", chunks={}, decode_coords="all")
    # Zarr v3 keeps attributes as JSON, so the float32 type of scale_factor is lost; restore float32 values
    return tree.map_over_datasets(_as_float32)


def _as_float32(dataset: xr.Dataset) -> xr.Dataset:
    scaled = [name for name, var in dataset.data_vars.items() if "scale_factor" in var.encoding]
    return dataset.assign({name: dataset[name].astype(np.float32) for name in scaled}) if scaled else dataset
