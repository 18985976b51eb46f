"""Per-scene level products on disk: a scene ``DataTree`` as Zarr, reflectance as int16 x 10000 via CF encoding."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from dask.base import tokenize
from dask.core import flatten
from dask.delayed import Delayed
from xarray.backends.zarr import encode_zarr_variable

from .block_graph import block_keys
from .float32_decoding import decode_float32

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
    """Write a scene tree to a Zarr store (replacing an earlier version of it); lazy with ``compute=False``.

    The store's metadata (groups, arrays, attributes, consolidated) and every in-memory variable are written at
    once, by xarray; Dask-backed variables are then written block by block with xarray's encoding, by a graph of
    half the tasks of xarray's own (see :func:`_write_blocks`).
    """
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    # an explicit encoding replaces the variable's own, so keep its grid_mapping (the CRS link)
    encoding = {
        node.path: {name: {k: v for k, v in var.encoding.items() if k == "grid_mapping"} | reflectance_encoding(var)
                    for name, var in node.dataset.data_vars.items()}
        for node in scene.subtree if node.has_data
    }
    template = xr.DataTree.from_dict({node.path: _placeholders(node.to_dataset(inherit=False))
                                      for node in scene.subtree})
    template.to_zarr(str(path), mode="w", encoding=encoding, compute=False, consolidated=False, zarr_format=3)
    zarr.consolidate_metadata(str(path))
    return _write_blocks(scene, str(path), encoding, compute=compute)


def _placeholders(dataset: xr.Dataset) -> xr.Dataset:
    """``dataset`` with every Dask-backed data variable replaced by a graph of one task per chunk that is never
    computed: ``to_zarr(compute=False)`` of it creates the arrays (chunking from the Dask chunks) and writes the
    in-memory variables, without building the store graph of the real variables."""
    lazy = {name: var.copy(data=da.empty(var.shape, dtype=var.dtype, chunks=var.chunks))
            for name, var in dataset.data_vars.items() if isinstance(var.data, da.Array)}
    return dataset.assign(lazy) if lazy else dataset


def _write_blocks(scene: xr.DataTree, path: str, encoding: dict[str, dict[str, dict]], *,
                  compute: bool) -> Delayed | None:
    """One task per variable and chunk that encodes and stores its block, fused with the block's own last step
    where Dask can (so a block is stored as soon as it exists), and one task that waits for them all. xarray's
    ``to_zarr`` makes two tasks per variable and chunk, the fused store and its alias (``block_graph``)."""
    written = []
    for node in scene.subtree:
        group = node.path.strip("/")
        for name, var in node.dataset.data_vars.items():
            if isinstance(var.data, da.Array):
                spec = (var.dims, dict(var.attrs), encoding[node.path][name])
                token = tokenize(path, group, name, var.data.name)  # two names of one array are two stores
                written.append(var.data.map_blocks(_write_block, path, group, name, spec, dtype=np.uint8,
                                                   chunks=tuple((1,) * len(c) for c in var.data.chunks),
                                                   name=f"write-level-product-{token}"))
    graph, blocks = block_keys(written) if written else ({}, [])
    keys = list(flatten(blocks))
    done = f"level-product-written-{tokenize(path, *keys)}"
    delayed = Delayed(done, {**graph, done: (_written, keys)})
    return delayed if not compute else delayed.compute()


def _write_block(block: np.ndarray, path: str, group: str, name: str, spec: tuple[tuple[str, ...], dict, dict],
                 block_info: dict | None = None) -> np.ndarray:
    """Encode one block as xarray's ``to_zarr`` does and store it at its place in the variable's array;
    ``spec``: the variable's dimensions, attributes and encoding."""
    dims, attrs, encoding = spec
    region = tuple(slice(start, stop) for start, stop in block_info[0]["array-location"])
    encoded = encode_zarr_variable(xr.Variable(dims, np.asarray(block), attrs, encoding), name=name, zarr_format=3)
    zarr.open_array(path, path=f"{group}/{name}" if group else name, mode="r+")[region] = encoded.data
    return np.zeros((1,) * np.ndim(block), dtype=np.uint8)


def _written(_blocks: list) -> None:
    """The product's last task: it ends when every block is written."""
    return None


def read_scene(path: str | Path) -> xr.DataTree:
    """A scene tree written by :func:`write_scene`, lazily (reflectance decoded back to float)."""
    tree = xr.open_datatree(str(path), engine="zarr", chunks={}, decode_coords="all", mask_and_scale=False)
    return tree.map_over_datasets(decode_float32)
