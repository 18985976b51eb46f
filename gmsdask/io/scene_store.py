"""Per-scene level products on disk: a scene ``DataTree`` as Zarr, reflectance as int16 x 10000 via CF encoding."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from dask.base import tokenize
from dask.core import flatten
from dask.delayed import Delayed
from zarr.codecs import ZstdCodec
from xarray.backends.zarr import encode_zarr_variable

from .block_graph import block_keys
from .float32_decoding import decode_float32

__all__ = ["reflectance_encoding", "write_scene", "read_scene", "read_window"]

REFLECTANCE_SCALE = 1e-4
REFLECTANCE_FILL = -9999
#: Encoding key of a variable read by :func:`read_scene`: ``(product path, group, variable, Dask array name)``
_ORIGIN = "gmsdask_level_product"
#: Zstandard at level 1 rather than zarr's default level 3. Measured on windows of up to 2048² px of three real
#: Landsat-8 30 m bands as reflectance, one thread: level 3 compressed them 2.03-2.14x in 36-40 ms and decompressed
#: them in 7.0-7.5 ms; level 1 1.83-1.91x in 16-17 ms and 4.5-5.2 ms. The chain writes each block of a product once
#: and reads it several times (a cube window decodes every product chunk it touches whole, and the tiles overlap): on
#: the full Landsat job the product's writes took 20.0 s instead of 25.8 s of worker time, the cube windows 58.2 s
#: instead of 61.2 s. Blosc-LZ4 with byte shuffle was faster again (17.9 s and 50.8 s), but it compressed the real
#: bands 1.18-1.29x: products ~60 % larger than with level 3.
_COMPRESSORS = (ZstdCodec(level=1),)
#: How a product is opened before it is chunked by hand: without Dask, nothing cached in memory (chunked with
#: ``inline_array``, every read is a root task of its own), CF decoding left to :func:`decode_float32`
_UNCHUNKED: dict[str, Any] = {"engine": "zarr", "chunks": None, "cache": False, "decode_coords": "all",
                              "mask_and_scale": False}

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
    once, by xarray; Dask-backed variables are then written block by block with xarray's encoding (reflectance by
    a one-pass encoder of the same CF encoding, :func:`_encoded`), by a graph of half the tasks of xarray's own
    (see :func:`_write_blocks`).
    """
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    # an explicit encoding replaces the variable's own, so keep its grid_mapping (the CRS link)
    encoding = {
        node.path: {name: {k: v for k, v in var.encoding.items() if k == "grid_mapping"} | reflectance_encoding(var)
                    | {"compressors": _COMPRESSORS} for name, var in node.dataset.data_vars.items()}
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
    """Encode one block (:func:`_encoded`) and store it at its place in the variable's array; ``spec``: the
    variable's dimensions, attributes and encoding."""
    region = tuple(slice(start, stop) for start, stop in block_info[0]["array-location"])
    zarr.open_array(path, path=f"{group}/{name}" if group else name, mode="r+")[region] = _encoded(block, name, spec)
    return np.zeros((1,) * np.ndim(block), dtype=np.uint8)


def _encoded(block: np.ndarray, name: str, spec: tuple[tuple[str, ...], dict, dict]) -> np.ndarray:
    """``block`` as stored. Reflectance (:func:`reflectance_encoding`) goes through the cube writer's one-pass
    encoder: xarray's CF coders took 20-22 ms per 2046² float32 block under a worker's allocator (a float copy, the
    offset, the factor, the fill and the rounding each a pass), the compiled loop 3 ms. Its arithmetic is float64,
    so it rounds every value exactly where xarray's float32 division was off by one count for ~0.02 % of the
    pixels, and it clips into int16 above the fill code where xarray's cast wrapped around. Everything else is
    encoded by xarray, as ``to_zarr`` does."""
    dims, attrs, encoding = spec
    if encoding.get("dtype") == "int16" and "scale_factor" in encoding and np.issubdtype(block.dtype, np.floating):
        # imported here: numba's import is paid by the processes that write, not by ``import gmsdask``
        from ..algorithms.scaled_integers import encode_to_scaled_int16

        return encode_to_scaled_int16(np.asarray(block), scale_factor=float(encoding["scale_factor"]),
                                      add_offset=float(encoding.get("add_offset", 0.0)),
                                      fill_value=int(encoding["_FillValue"]))
    return encode_zarr_variable(xr.Variable(dims, np.asarray(block), attrs, encoding), name=name,
                                zarr_format=3).data


def _written(_blocks: list) -> None:
    """The product's last task: it ends when every block is written."""
    return None


def read_scene(path: str | Path, chunks: Mapping[str, int] | None = None) -> xr.DataTree:
    """A scene tree written by :func:`write_scene`, lazily (reflectance decoded back to float).

    ``chunks``: Dask chunks per dimension (``{"y": .., "x": ..}``, other dimensions whole), default the stored
    chunks. The chain reads a product in the job's tiling blocks, which are the cube's chunks: a whole tile's L2B
    product is stored in L2A's blocks (682 px at 30 m), and reading it in those made ~1400 tiny tasks (decode,
    merge) that the workers waited on the scheduler for, where one read per cube chunk and variable does.
    Each lazy variable remembers where it was read from, so that :func:`read_window` can read a window of it
    again in other blocks."""
    if not chunks:
        tree = xr.open_datatree(str(path), engine="zarr", chunks={}, decode_coords="all", mask_and_scale=False)
    else:
        # opened without Dask (cache=False: nothing held in memory), then chunked: opening with chunks that split
        # the stored ones warns about what is wanted here; inline_array keeps each read a root task
        tree = xr.open_datatree(str(path), **_UNCHUNKED).chunk(dict(chunks), inline_array=True)
    decoded = tree.map_over_datasets(decode_float32)
    for node in decoded.subtree:
        for name, var in node.dataset.data_vars.items():
            if isinstance(var.data, da.Array):
                node[name].encoding[_ORIGIN] = (str(path), node.path, name, var.data.name)
    return decoded


def read_window(dataset: xr.Dataset, rows: slice, cols: slice,
                blocks: tuple[tuple[int, ...], tuple[int, ...]]) -> xr.Dataset | None:
    """The variables of ``dataset``, pixels ``[rows, cols]``, read again from the level product that
    :func:`read_scene` read them from, in Dask blocks of ``blocks`` pixels (sizes along y, along x), one read and
    decoding per block; None unless every variable is a ``(y, x)`` array as read from one product group.

    A cube's windows rarely start where the product's blocks do (a tile's cube grid is grown by
    ``mgrs_pixel_buffer`` pixels): rechunking the blocks as read makes merge tasks and shares product blocks
    between windows; reading each window's blocks where it needs them does neither."""
    origins = {tuple(var.encoding.get(_ORIGIN, (None,))[:2]) for var in dataset.data_vars.values()}
    if len(origins) != 1 or None in next(iter(origins)):
        return None
    for name, var in dataset.data_vars.items():
        path, group, stored_name, dask_name = var.encoding[_ORIGIN]
        if stored_name != name or var.dims != ("y", "x") or getattr(var.data, "name", None) != dask_name:
            return None  # renamed or computed on since it was read
    path, group = next(iter(origins))
    stored = xr.open_dataset(path, group=group.strip("/") or None, **_UNCHUNKED)
    window = stored[list(dataset.data_vars)].isel(y=rows, x=cols)
    return decode_float32(window.chunk({"y": blocks[0], "x": blocks[1]}, inline_array=True))
