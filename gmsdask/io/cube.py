"""MGRS tile datacubes as Icechunk repositories: reading, history, tags, and the writer's public names.

A cube is ``<path_procdata_MGRS>/<virtual_sensor_name>/<TILE>.icechunk``: an Icechunk repository (transactional
Zarr v3, local or on object storage) whose ``main`` branch holds one ``(time, y, x)`` dataset; its layout is in
:mod:`gmsdask.io.cube_schema`, writing in :mod:`gmsdask.io.cube_writer`. Every scene write is one commit, so the
history says which job added which scene, and any commit or tag can be opened again.

Plain xarray reads a cube without gmsdask::

    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(path))
    cube = xr.open_zarr(repo.readonly_session("main").store, consolidated=False).sortby("time")
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import odc.geo.xr  # noqa: F401  (.odc.geobox of the cube)
import pandas as pd
import rioxarray  # noqa: F401  (the cube's CRS via .rio)
import xarray as xr
import zarr

from ..errors import ProcessingError
from .cube_migrate import old_cube_problem
from .cube_schema import FILL_INT16, REFLECTANCE_SCALE, SLOT_COORDINATES
from .cube_storage import (
    CubeStorageOptions,
    cube_location,
    is_url,
    normalize_location,
    open_repository,
)
from .cube_writer import CubeGrid, CubeWrite, SceneSlot, aligned_chunks, write_scene
from .float32_decoding import decode_float32

__all__ = ["REFLECTANCE_SCALE", "FILL_INT16", "CubeCommit", "CubeGrid", "CubeWrite", "SceneSlot", "aligned_chunks",
           "cube_location",
           "open_cube", "open_cube_session", "cube_log", "tag_cube", "write_scene", "scene_slot_coordinates",
           "utc_time"]


@dataclass(frozen=True)
class CubeCommit:
    """One commit of a cube: snapshot ``id``, ``time`` it was written (UTC), ``message`` and ``metadata``
    (``scene_id``, ``job_id`` for scene writes)."""

    id: str
    time: datetime
    message: str
    metadata: Mapping[str, Any]


def open_cube_session(location: str | os.PathLike[str], *, version: str | None = None,
                      options: CubeStorageOptions | None = None):
    """A read-only Icechunk session of the cube: the latest commit of ``main``, or ``version`` (a tag or a
    snapshot id)."""
    location = normalize_location(location)
    problem = None if is_url(location) else old_cube_problem(location)
    if problem:
        raise ProcessingError(location, "cube", problem)
    repo = open_repository(location, options=options)
    if version is None:
        return repo.readonly_session(branch="main")
    if version in repo.list_tags():
        return repo.readonly_session(tag=version)
    try:
        return repo.readonly_session(snapshot_id=version)
    except Exception as error:  # icechunk raises its own errors for unknown/invalid ids
        raise ProcessingError(location, "cube", f"no tag or commit {version!r} in this cube") from error


def open_cube(location: str | os.PathLike[str], *, version: str | None = None,
              options: CubeStorageOptions | None = None) -> xr.Dataset:
    """A cube as a lazy Dataset sorted by time: bands float32 (reflectance 0-1, temperatures in K, NaN for no
    data), ``nodata``/``saturated`` bool, per-slot coordinates as ``time`` coordinates, the CRS via ``.rio.crs``
    and ``.odc.geobox``. ``version``: a tag or commit id (default: the latest commit)."""
    session = open_cube_session(location, version=version, options=options)
    try:
        ds = decode_float32(xr.open_zarr(session.store, consolidated=False, mask_and_scale=False))
    except zarr.errors.GroupNotFoundError:
        raise ProcessingError(str(location), "cube", "holds no scene yet (no write was ever committed)") from None
    for name, var in ds.data_vars.items():
        if var.dims == ("time", "y", "x"):
            if np.issubdtype(var.dtype, np.floating):
                ds[name] = var.astype(np.float32)
            elif name in ("nodata", "saturated"):
                ds[name] = var.astype(bool)
    for name, coord in SLOT_COORDINATES.items():
        if name in ds.coords and coord.dtype == "str":
            ds = ds.assign_coords({name: ("time", np.array(ds[name].values.tolist(), dtype=str))})
    return ds.sortby("time")


def cube_log(location: str | os.PathLike[str], *, options: CubeStorageOptions | None = None) -> list[CubeCommit]:
    """The commits of the cube's ``main`` branch, newest first (the last one is the repository's creation)."""
    repo = open_repository(location, options=options)
    return [CubeCommit(info.id, info.written_at, info.message, dict(info.metadata or {}))
            for info in repo.ancestry(branch="main")]


def tag_cube(location: str | os.PathLike[str], tag: str, snapshot: str | None = None, *,
             options: CubeStorageOptions | None = None) -> str:
    """Tag a commit (default: the latest of ``main``) so it can be opened as ``open_cube(..., version=tag)``.
    Returns the tagged snapshot id; an existing tag raises :class:`ProcessingError`."""
    location = normalize_location(location)
    repo = open_repository(location, options=options)
    snapshot = snapshot or repo.lookup_branch("main")
    if tag in repo.list_tags():
        raise ProcessingError(location, "cube", f"tag {tag!r} exists already (on {repo.lookup_tag(tag)})")
    try:
        repo.create_tag(tag, snapshot_id=snapshot)
    except Exception as error:  # an unknown snapshot id
        raise ProcessingError(location, "cube", f"cannot tag {snapshot!r} as {tag!r}: {error}") from error
    return snapshot


def scene_slot_coordinates(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Per-slot coordinate values from a scene's root attributes (docs/scene-model.md), those present only.

    ``platform``, ``processing_level``, ``quantity``, ``aot550``, ``coreg_status``, ``brdf_normalized`` are taken
    by name; the shift from ``shift_x_m``/``shift_y_m`` or L2A's ``l2a_shift_m`` (dx east, dy north, metres).
    """
    out = {name: attrs[name] for name in SLOT_COORDINATES
           if name != "scene_id" and attrs.get(name) not in (None, "")}
    shift = attrs.get("l2a_shift_m")
    if shift is not None and "shift_x_m" not in out and len(shift) == 2:
        out["shift_x_m"], out["shift_y_m"] = float(shift[0]), float(shift[1])
    if "brdf_normalized" in out:
        out["brdf_normalized"] = int(bool(out["brdf_normalized"]))
    return out


def utc_time(acquisition_time: str) -> np.datetime64:
    """An ISO 8601 time (``2022-10-05T11:54:11.024Z``) as a naive UTC ``datetime64[ms]``."""
    stamp = pd.Timestamp(acquisition_time)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return np.datetime64(stamp.to_datetime64(), "ms")


