"""Cubes for tools that do not read Icechunk, and cubes rewritten in time order.

- :func:`export_cube` writes Cloud-Optimized GeoTIFFs, one per variable and time slot, as NASA HLS ships its tiles
  (int16 with the scale factor and offset in the band metadata, the fill as nodata; GDAL's ``COG`` driver through
  rasterio), or a plain Zarr v3 copy that any Zarr reader opens.
- :func:`compact_cube` reorders a cube's slots by time in one commit (scenes are appended in processing order; the
  readers sort on the fly, a compacted cube is sorted on disk).
"""

from __future__ import annotations

import os
from pathlib import Path

import icechunk
import numpy as np
import pandas as pd
import rasterio
import xarray as xr
import zarr

from ..errors import CubeWriteError, ProcessingError
from .cube_schema import copy_slot_rows
from .cube_storage import (
    CubeStorageOptions,
    commit_guard,
    normalize_location,
    open_repository,
)

__all__ = ["export_cube", "compact_cube", "time_range"]

_COMPACT_ATTEMPTS = 10


def time_range(time: str | tuple | None) -> tuple[np.datetime64, np.datetime64] | None:
    """A selection of acquisition times: ``"2022-10-05"`` (that day), ``"2022-10-01/2022-10-31"`` (both days
    included), a ``(start, end)`` pair, or None (all). Returns ``[start, end)`` as naive UTC ``datetime64[ms]``."""
    if time is None:
        return None
    if isinstance(time, str):
        start, _, end = time.partition("/")
        end = end or start
    else:
        start, end = time
    try:
        first, last = pd.Timestamp(start), pd.Timestamp(end)
    except ValueError as error:
        raise ProcessingError(str(time), "cube export", "times must be ISO dates or date/date ranges") from error
    if last == last.normalize():  # a day: up to its end
        last = last + pd.Timedelta(days=1)
    else:
        last = last + pd.Timedelta(milliseconds=1)
    return np.datetime64(first.tz_localize(None) if first.tzinfo else first, "ms"), \
        np.datetime64(last.tz_localize(None) if last.tzinfo else last, "ms")


def _selected_slots(group: zarr.Group, time: str | tuple | None) -> list[int]:
    """Storage indices of the selected slots, in time order."""
    times = group["time"][:].astype("datetime64[ms]")
    order = np.argsort(times, kind="stable")
    window = time_range(time)
    if window is not None:
        order = [int(t) for t in order if window[0] <= times[t] < window[1]]
    return [int(t) for t in order]


def _transform(group: zarr.Group) -> rasterio.Affine:
    x, y = group["x"][:], group["y"][:]
    dx, dy = float(x[1] - x[0]), float(y[1] - y[0])
    return rasterio.Affine(dx, 0.0, float(x[0]) - dx / 2, 0.0, dy, float(y[0]) - dy / 2)


def _write_cog(path: Path, data: np.ndarray, arr: zarr.Array, crs: str, transform: rasterio.Affine) -> None:
    attrs = arr.attrs
    profile = {"driver": "COG", "width": data.shape[1], "height": data.shape[0], "count": 1,
               "dtype": str(data.dtype), "crs": crs, "transform": transform, "compress": "DEFLATE",
               "nodata": attrs.get("_FillValue", attrs.get("nodata", arr.fill_value))}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        if "scale_factor" in attrs:
            dst.scales = (float(attrs["scale_factor"]),)
            dst.offsets = (float(attrs.get("add_offset", 0.0)),)
        if "units" in attrs:
            dst.units = (str(attrs["units"]),)


def export_cube(location: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, format: str = "cog",
                time: str | tuple | None = None, variables: list[str] | None = None,
                options: CubeStorageOptions | None = None) -> list[Path]:
    """Export the latest commit of a cube; returns the files (COG) or the Zarr folder written.

    ``format="cog"``: ``<out_dir>/<TILE>.<YYYYmmddTHHMMSS>.<scene_id>.<variable>.tif`` for every pixel variable
    (default: all; ``variables`` to choose) of every selected slot holding data for it, int16 bands with
    ``scale``/``offset`` metadata as HLS. ``format="zarr"``: ``<out_dir>/<TILE>.zarr``, sorted by time.
    ``time``: see :func:`time_range`.
    """
    location = normalize_location(location)
    if format not in ("cog", "zarr"):
        raise ProcessingError(location, "cube export", f"unknown format {format!r}; allowed: cog, zarr")
    session = open_repository(location, options=options).readonly_session(branch="main")
    group = zarr.open_group(session.store, mode="r")
    tile = str(group.attrs.get("mgrs_tile", Path(location).stem))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    slots = _selected_slots(group, time)
    if format == "zarr":
        target = out_dir / f"{tile}.zarr"
        ds = xr.open_zarr(session.store, consolidated=False).isel(time=slots)
        if variables:
            ds = ds[variables]
        ds.to_zarr(target, mode="w-", zarr_format=3, consolidated=False)
        return [target]
    crs = str(group["spatial_ref"].attrs.get("crs_wkt"))
    transform = _transform(group)
    pixel = [name for name, arr in group.arrays() if arr.ndim == 3 and (not variables or name in variables)]
    written = []
    times, scene_ids = group["time"][:], group["scene_id"][:]
    for t in slots:
        stamp = pd.Timestamp(int(times[t]), unit="ms").strftime("%Y%m%dT%H%M%S")
        scene_id = str(scene_ids[t])
        for name in sorted(pixel):
            arr = group[name]
            data = arr[t]
            if np.all(data == arr.fill_value) and name != "nodata":
                continue  # this scene has no such variable (e.g. an accuracy layer added later)
            path = out_dir / f"{tile}.{stamp}.{scene_id}.{name}.tif"
            _write_cog(path, data, arr, crs, transform)
            written.append(path)
    return written


def compact_cube(location: str | os.PathLike[str], *, message: str = "",
                 options: CubeStorageOptions | None = None) -> str | None:
    """Rewrite the cube with its slots in time order, as one commit; returns its id, or None when the cube was
    in order already (nothing is committed then). Concurrent scene writes make it retry."""
    location = normalize_location(location)
    repo = open_repository(location, options=options)
    for _ in range(_COMPACT_ATTEMPTS):
        session = repo.writable_session("main")
        source = repo.readonly_session(snapshot_id=session.snapshot_id)
        src, dst = zarr.open_group(source.store, mode="r"), zarr.open_group(session.store, mode="r+")
        times = src["time"][:]
        order = np.argsort(times, kind="stable")
        if np.array_equal(order, np.arange(len(order))):
            return None
        moved = [(int(old), new) for new, old in enumerate(order) if old != new]
        for name, arr in src.arrays():
            if (arr.metadata.dimension_names or (None,))[0] != "time":
                continue
            if arr.ndim == 1:
                dst[name][:] = arr[:][order]
            else:
                for old, new in moved:
                    copy_slot_rows(arr, dst[name], old, new)
        try:
            with commit_guard(location):
                return session.commit(message or f"compact: {len(order)} slots in time order "
                                                  f"({len(moved)} moved)")
        except icechunk.ConflictError:
            continue
    raise CubeWriteError(location, "cube compact", f"other writers kept committing; gave up after "
                                                   f"{_COMPACT_ATTEMPTS} attempts")
