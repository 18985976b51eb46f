"""Zarr v3 datacubes of one MGRS tile: ``(time, y, x)``, one time slot per scene, safe for concurrent writers.

Layout of ``<TILE>.zarr``:

- one int16 variable per band: reflectance x 10 000 (``scale_factor`` 1e-4, ``_FillValue`` -9999), brightness
  temperature (units K) in 0.01 degC steps (``scale_factor`` 0.01, ``add_offset`` 273.15); plain
  ``xarray.open_zarr`` decodes them to floats with NaN where there is no data;
- ``nodata`` (uint8, 1 = no data, also where nothing was written), ``saturated`` (uint8), QA layers as their own
  integers (attribute ``nodata`` = their fill value; not CF-masked, so bit tests keep working);
- coordinates ``x``, ``y`` (pixel centres), ``time`` (acquisition time), ``spatial_ref`` (CRS), and per time slot
  ``scene_id`` and ``platform``.

Concurrency: slot allocation (creating the cube, adding variables, growing the time axis, writing the slot's
``time``/``scene_id``/``platform``) happens under an exclusive ``fcntl.flock`` on ``<TILE>.zarr.lock``. The pixel
data are written afterwards, outside the lock, as region writes of whole Zarr chunks; each time slot is its own
chunk along time, so two scenes never write the same chunk. Metadata files are replaced atomically by zarr's
local store, and only the locked section rewrites them. (``flock`` needs a local or lock-aware file system.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (the cube's CRS via .rio)
import xarray as xr
import zarr
from dask.delayed import Delayed
from odc.geo.geobox import GeoBox
from zarr.codecs import BloscCodec, BloscShuffle

from ..errors import ProcessingError

__all__ = [
    "REFLECTANCE_SCALE",
    "FILL_INT16",
    "VariableSpec",
    "variable_spec",
    "cube_lock",
    "allocate_time_slot",
    "slot_dataset",
    "write_time_slot",
    "open_cube",
    "utc_time",
]

REFLECTANCE_SCALE = 1e-4
THERMAL_SCALE, THERMAL_OFFSET = 0.01, 273.15
FILL_INT16 = -9999
_TIME_UNITS = "milliseconds since 1970-01-01"
_PER_SLOT = ("time", "scene_id", "platform")
_SLOT_CHUNK = 1024  # 1-D per-slot arrays are only written under the lock, so they may share chunks


@dataclass(frozen=True)
class VariableSpec:
    """How one variable is stored: kind (``reflectance``, ``thermal``, ``mask``, ``qa``), dtype, fill value.

    ``fill`` is in stored units (-9999 for bands, 1 for ``nodata``, the layer's fill for QA).
    """

    kind: str
    dtype: str
    fill: int


def variable_spec(name: str, var: xr.DataArray) -> VariableSpec:
    """The storage of a scene variable, from its name, dtype and attrs."""
    if name in ("nodata", "saturated"):
        return VariableSpec("mask", "uint8", 1 if name == "nodata" else 0)
    if np.issubdtype(var.dtype, np.floating):
        kind = "thermal" if str(var.attrs.get("units", "1")) == "K" else "reflectance"
        return VariableSpec(kind, "int16", FILL_INT16)
    if np.issubdtype(var.dtype, np.integer) or var.dtype == bool:
        fill = var.attrs.get("nodata", var.attrs.get("_FillValue", 0))
        return VariableSpec("qa", "uint8" if var.dtype == bool else str(var.dtype), int(fill))
    raise ProcessingError(name, "L2C", f"cannot store a variable of dtype {var.dtype} in a cube")


def _compressors(compressor: str) -> tuple:
    # byte shuffling puts the high bytes of int16 together; measured on the real 29UNU tile, Blosc-zstd level 1
    # with shuffle was smaller (ratio 4.8) and faster (0.5 GB/s) than plain zstd level 3 (4.6, 0.4 GB/s)
    if compressor == "zstd":
        return (BloscCodec(cname="zstd", clevel=1, shuffle=BloscShuffle.shuffle),)
    if compressor == "lz4":
        return (BloscCodec(cname="lz4", clevel=5, shuffle=BloscShuffle.shuffle),)
    if compressor == "none":
        return ()
    raise ProcessingError("cube", "L2C", f"unknown compressor {compressor!r}; allowed: zstd, lz4, none")


def _encoding(spec: VariableSpec, chunks: tuple[int, int], compressor: str) -> dict:
    enc: dict = {"chunks": (1, *chunks), "compressors": _compressors(compressor), "fill_value": spec.fill}
    if spec.kind == "reflectance":
        enc.update(dtype="int16", scale_factor=REFLECTANCE_SCALE, _FillValue=FILL_INT16)
    elif spec.kind == "thermal":
        enc.update(dtype="int16", scale_factor=THERMAL_SCALE, add_offset=THERMAL_OFFSET, _FillValue=FILL_INT16)
    return enc


def _attrs(name: str, spec: VariableSpec, source_attrs: Mapping) -> dict:
    attrs = {k: v for k, v in source_attrs.items()
             if k not in ("nodata", "_FillValue", "scale_factor", "add_offset", "grid_mapping", "coordinates")}
    attrs.update(grid_mapping="spatial_ref", coordinates="spatial_ref")
    if spec.kind == "mask":
        attrs.update(flag_values=[0, 1], flag_meanings="false true")
    elif spec.kind == "qa":
        attrs["nodata"] = spec.fill
    return attrs


@contextlib.contextmanager
def cube_lock(path: Path) -> Iterator[None]:
    """Exclusive lock of a cube across threads and processes (``fcntl.flock`` on ``<cube>.lock``)."""
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o664)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _consolidate(path: Path) -> None:
    with warnings.catch_warnings():
        # zarr warns that consolidated metadata is not part of the v3 spec yet; xarray reads it either way
        warnings.simplefilter("ignore", category=UserWarning)
        zarr.consolidate_metadata(str(path))


def _template(variables: Mapping[str, xr.DataArray], specs: Mapping[str, VariableSpec], gbox: GeoBox,
              n_time: int) -> xr.Dataset:
    """A lazy dataset with the cube's variables and ``n_time`` slots (written as metadata only)."""
    ny, nx = gbox.shape.yx
    data_vars = {}
    for name, var in variables.items():
        spec = specs[name]
        dtype = np.float32 if spec.kind in ("reflectance", "thermal") else np.dtype(spec.dtype)
        # one Dask block per slot: the template is never computed, a fine block grid only costs graph size
        data = da.zeros((n_time, ny, nx), dtype=dtype, chunks=(1, ny, nx))
        data_vars[name] = xr.DataArray(data, dims=("time", "y", "x"), attrs=_attrs(name, spec, var.attrs))
    return xr.Dataset(data_vars)


def _create(path: Path, variables: Mapping[str, xr.DataArray], specs: Mapping[str, VariableSpec], gbox: GeoBox,
            chunks: tuple[int, int], compressor: str, attrs: Mapping) -> None:
    ds = _template(variables, specs, gbox, 0)
    affine = gbox.affine
    ny, nx = gbox.shape.yx
    ds = ds.assign_coords(
        x=("x", affine.c + (np.arange(nx) + 0.5) * affine.a, {"units": "m", "axis": "X"}),
        y=("y", affine.f + (np.arange(ny) + 0.5) * affine.e, {"units": "m", "axis": "Y"}),
        time=("time", np.array([], dtype="datetime64[ms]"), {"long_name": "acquisition time (UTC)"}),
    )
    ds["scene_id"] = xr.DataArray(np.array([], dtype=np.dtypes.StringDType()), dims="time",
                                  attrs={"coordinates": "spatial_ref"})
    ds["platform"] = xr.DataArray(np.array([], dtype=np.dtypes.StringDType()), dims="time",
                                  attrs={"coordinates": "spatial_ref"})
    ds = ds.rio.write_crs(str(gbox.crs)).rio.write_transform(affine)
    ds.attrs.update(attrs)
    encoding = {name: _encoding(specs[name], chunks, compressor) for name in variables}
    encoding["time"] = {"units": _TIME_UNITS, "dtype": "int64", "chunks": (_SLOT_CHUNK,)}
    encoding["scene_id"] = {"chunks": (_SLOT_CHUNK,)}
    encoding["platform"] = {"chunks": (_SLOT_CHUNK,)}
    ds.to_zarr(str(path), mode="w-", compute=False, encoding=encoding, zarr_format=3, consolidated=False)


def _check_grid(path: Path, group: zarr.Group, gbox: GeoBox) -> None:
    ny, nx = gbox.shape.yx
    x, y = group["x"], group["y"]
    affine = gbox.affine
    expected_x0, expected_y0 = affine.c + 0.5 * affine.a, affine.f + 0.5 * affine.e
    if x.shape != (nx,) or y.shape != (ny,) or not np.isclose(x[0], expected_x0) or not np.isclose(y[0], expected_y0):
        raise ProcessingError(str(path), "L2C", f"the existing cube's grid ({y.shape[0]} x {x.shape[0]} px from "
                                                f"x={x[0]}, y={y[0]}) differs from the tile grid of this job "
                                                f"({ny} x {nx} px from x={expected_x0}, y={expected_y0}); "
                                                "target_gsd or mgrs_pixel_buffer changed?")


def _time_arrays(group: zarr.Group) -> dict[str, zarr.Array]:
    """The arrays with a time axis (first dimension), by name."""
    return {name: arr for name, arr in group.arrays() if (arr.metadata.dimension_names or (None,))[0] == "time"}


def allocate_time_slot(path: Path, variables: Mapping[str, xr.DataArray], gbox: GeoBox, *,
                       scene_id: str, time: np.datetime64, platform: str, chunks: tuple[int, int],
                       compressor: str, attrs: Mapping) -> tuple[int, bool, bool]:
    """The time slot of ``scene_id`` in the cube at ``path``, creating the cube and the slot as needed.

    Under the cube's lock: creates the cube (grid ``gbox``, Zarr chunks ``(1, *chunks)``, root ``attrs``),
    adds variables it lacks, finds the scene's slot (and empties it, so nothing of an earlier version survives
    outside the region written next) or appends one, and records ``time``/``scene_id``/``platform``.
    Returns ``(slot, created_cube, replaced_slot)``.
    """
    specs = {name: variable_spec(name, var) for name, var in variables.items()}
    with cube_lock(path):
        created = not (path / "zarr.json").exists()
        if created:
            _create(path, variables, specs, gbox, chunks, compressor, attrs)
        group = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        _check_grid(path, group, gbox)
        if not str(group["time"].attrs.get("units", "")).startswith(_TIME_UNITS):
            raise ProcessingError(str(path), "L2C", f"time units {group['time'].attrs.get('units')!r} are not "
                                                    f"{_TIME_UNITS!r}; the cube was not written by gmsdask")
        n_time = group["time"].shape[0]
        missing = {name: var for name, var in variables.items() if name not in group}
        if missing:
            new = _template(missing, specs, gbox, n_time)
            encoding = {name: _encoding(specs[name], chunks, compressor) for name in missing}
            new.to_zarr(str(path), mode="a", compute=False, encoding=encoding, consolidated=False)
            group = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        ids = list(group["scene_id"][:]) if n_time else []
        replaced = scene_id in ids
        slot = ids.index(scene_id) if replaced else n_time
        for name, arr in _time_arrays(group).items():
            if not replaced:
                arr.resize((n_time + 1, *arr.shape[1:]))
            elif name not in _PER_SLOT:
                arr[slot] = arr.fill_value  # all-fill chunks are deleted, not stored
        group["time"][slot] = int(np.datetime64(time, "ms").astype(np.int64))
        group["scene_id"][slot] = scene_id
        group["platform"][slot] = platform
        _consolidate(path)
    return slot, created, replaced


def slot_dataset(path: Path, variables: Mapping[str, xr.DataArray]) -> xr.Dataset:
    """The data of one time slot in decoded units, with every cube variable, clipped to its stored range.

    ``variables`` are ``(y, x)`` arrays of one window of the cube grid. Cube variables the scene lacks are
    filled, so that a re-written slot keeps nothing of an earlier version.
    """
    group = zarr.open_group(str(path), mode="r", use_consolidated=False)
    shape = next(iter(variables.values())).shape
    out = {}
    for name, arr in _time_arrays(group).items():
        if name in _PER_SLOT:
            continue
        chunks = arr.chunks[1:]
        if "scale_factor" in arr.attrs:
            scale, offset = float(arr.attrs["scale_factor"]), float(arr.attrs.get("add_offset", 0.0))
            # keep values inside int16 and off the fill code, so no valid pixel decodes as "no data"
            low, high = (FILL_INT16 + 1) * scale + offset, 32767 * scale + offset
            data = (da.clip(variables[name].data.astype(np.float32), low, high) if name in variables
                    else da.full(shape, np.nan, dtype=np.float32, chunks=chunks))
        else:
            data = (variables[name].data.astype(arr.dtype) if name in variables
                    else da.full(shape, arr.fill_value, dtype=arr.dtype, chunks=chunks))
        out[name] = xr.DataArray(data[np.newaxis], dims=("time", "y", "x"))
    return xr.Dataset(out)


def _aligned(blocks: tuple[int, ...], start: int, size: int, total: int) -> bool:
    """True when blocks written from ``start`` cover whole Zarr chunks of ``size`` (the last may end at
    ``total``)."""
    edges = start + np.cumsum((0, *blocks))
    return bool(np.all((edges % size == 0) | (edges == total)))


def write_time_slot(path: Path, data: xr.Dataset, slot: int, origin: tuple[int, int] = (0, 0)) -> Delayed:
    """A delayed region write of ``data`` (``(1, y, x)`` per variable) into time ``slot`` at pixel ``origin``.

    Dask blocks are rechunked to the Zarr chunks first; a write whose blocks would still straddle Zarr chunks
    is refused, because two tasks writing parts of one chunk lose data.
    """
    group = zarr.open_group(str(path), mode="r", use_consolidated=False)
    row0, col0 = origin
    aligned = {}
    for name, var in data.data_vars.items():
        arr = group[name]
        _, chunk_y, chunk_x = arr.chunks
        # Dask chunks of the window that coincide with the Zarr chunks of the cube
        first_y, first_x = chunk_y - row0 % chunk_y, chunk_x - col0 % chunk_x
        ny, nx = var.shape[1:]
        rows = _split(ny, first_y, chunk_y)
        cols = _split(nx, first_x, chunk_x)
        array = var.data.rechunk(((1,), rows, cols))
        if not (_aligned(array.chunks[1], row0, chunk_y, arr.shape[1])
                and _aligned(array.chunks[2], col0, chunk_x, arr.shape[2])
                and row0 + ny <= arr.shape[1] and col0 + nx <= arr.shape[2]):
            raise ProcessingError(str(path), "L2C", f"{name}: a window of {ny} x {nx} px at {origin} with Dask "
                                                    f"blocks {array.chunks[1:]} does not cover whole Zarr chunks "
                                                    f"{arr.chunks} of the cube {arr.shape}")
        aligned[name] = xr.DataArray(array, dims=var.dims)
    ds = xr.Dataset(aligned)
    region = {"time": slice(slot, slot + 1), "y": slice(row0, row0 + ds.sizes["y"]),
              "x": slice(col0, col0 + ds.sizes["x"])}
    # consolidated=False: only the locked slot allocation may rewrite the consolidated metadata
    return ds.to_zarr(str(path), region=region, mode="r+", consolidated=False, compute=False)


def _split(length: int, first: int, size: int) -> tuple[int, ...]:
    """Block lengths covering ``length`` whose first block is ``first`` (if shorter) and the rest ``size``."""
    blocks = [min(first, length)]
    while sum(blocks) < length:
        blocks.append(min(size, length - sum(blocks)))
    return tuple(blocks)


def open_cube(path: str | Path) -> xr.Dataset:
    """A cube as a lazy Dataset sorted by time: bands float32 with NaN, ``nodata``/``saturated`` bool."""
    path = Path(path)
    if not (path / "zarr.json").exists():
        raise ProcessingError(str(path), "L2C", "no Zarr cube at this path")
    ds = xr.open_zarr(str(path))
    for name, var in ds.data_vars.items():
        if var.dims == ("time", "y", "x"):
            if np.issubdtype(var.dtype, np.floating):
                ds[name] = var.astype(np.float32)
            elif name in ("nodata", "saturated"):
                ds[name] = var.astype(bool)
    for name in ("scene_id", "platform"):
        ds[name] = xr.DataArray(np.array(ds[name].values.tolist(), dtype=str), dims="time")
    return ds.sortby("time")


def utc_time(acquisition_time: str) -> np.datetime64:
    """An ISO 8601 time (``2022-10-05T11:54:11.024Z``) as a naive UTC ``datetime64[ms]``."""
    stamp = pd.Timestamp(acquisition_time)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return np.datetime64(stamp.to_datetime64(), "ms")
