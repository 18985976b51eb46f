"""Writing one scene into a tile cube as one Icechunk transaction.

A write is a commit on the repository's ``main`` branch holding everything of the scene: the slot (appended, or the
scene's own slot when the scene id is already in the cube), its per-slot coordinates, and every pixel chunk. Until
the commit nothing is visible; a crash, a full disk or a cancel leaves the cube at its last commit (the orphaned
chunk objects are removed by Icechunk's garbage collection).

Steps, on a fresh writable session (of a staging repository when a local cube does not exist yet, see 4):

1. a fork of the session creates the cube (first write), adds variables the cube lacks, finds or appends the
   scene's slot, writes the per-slot coordinates and, for a re-written slot, deletes its chunks outside the new
   window so nothing of the old version survives;
2. one Dask task per Zarr chunk window computes the scene's blocks, derives the slot's ``nodata`` from the bands of
   that window, encodes and writes them into (a copy of) the fork, and returns it; the forks are merged on the
   client, as Icechunk's cooperative distributed writes do (``Session.fork`` / ``merge``);
3. commit, with the job and scene in the message. If another writer committed first, Icechunk's rebase
   (``ConflictDetector``) is tried; when the changes collide (both appended a slot), the write is repeated on a new
   session: the slot is allocated again and the already encoded chunks are copied from the failed session to the
   new slot, so the scene is never computed twice;
4. a new local cube is created and written in a hidden staging directory beside its location
   (:func:`~gmsdask.io.cube_storage.staged_repository`) and, after its commit, renamed to the location under the
   commit lock: a tile appears with its first scene or not at all (a ``skip_empty`` write that found no pixel, a
   failure or a cancel removes the staging directory; only a killed process leaves one, ``.<TILE>.icechunk.staging-*``,
   which can be deleted). When another writer created the cube meanwhile, the commit is moved into that cube as in
   step 3. Object stores have no rename: a new cube is created in place there.

A small write (at most ``_EXCLUSIVE_MAX_WINDOWS`` chunk windows) into a local cube whose chunks are computed in the
writing thread (a scene task) holds the tile's write lock (:func:`~gmsdask.io.cube_storage.write_guard`) through
steps 1-4, so that writers of small scenes take turns instead of colliding in step 3.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import icechunk
import numpy as np
import xarray as xr
import zarr
from odc.geo.geobox import GeoBox

from ..errors import CubeWriteCanceled, CubeWriteError, ProcessingError
from .block_graph import DeferredBlock, materialized, window_tasks
from .cube_migrate import old_cube_problem
from .cube_schema import (
    TIME_UNITS,
    VariableSpec,
    copy_slot_rows,
    encode_block,
    is_band,
    put_documents,
    slot_coordinate_values,
    spec_from_array,
    template_documents,
    variable_spec,
)
from .cube_storage import (
    CubeStorageOptions,
    commit_guard,
    is_url,
    normalize_location,
    open_repository,
    repository_exists,
    staged_repository,
    write_guard,
)

__all__ = ["CubeGrid", "SceneSlot", "CubeWrite", "write_scene", "aligned_chunks"]

_BATCH = 64  # chunk tasks per computation: the forks of a batch are merged before the next starts
_CANCEL_POLL_S = 0.1  # how often a running batch looks at the cancel flag
_DEFAULT_ATTEMPTS = 20
#: Writes of at most this many chunk windows, computed in the writing thread, hold the tile's write lock from slot
#: allocation to commit (``cube_storage.write_guard``); larger ones stay lock-free, so that writers do not wait for
#: each other's pixels.
_EXCLUSIVE_MAX_WINDOWS = 4


@dataclass(frozen=True)
class CubeGrid:
    """The grid and storage layout of a tile cube.

    ``geobox``: the tile grid (CRS, pixel size in metres, shape); ``chunks``: Zarr chunk ``(y, x)`` in pixels
    (each time slot is its own chunk along time); ``compressor``: ``zstd``, ``lz4`` or ``none``; ``attrs``: root
    attributes written when the cube is created.
    """

    geobox: GeoBox
    chunks: tuple[int, int]
    compressor: str = "zstd"
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SceneSlot:
    """What identifies a scene's time slot: ``scene_id`` (unique in a cube), acquisition ``time`` (naive UTC
    ``datetime64``) and per-slot coordinate values by name (see :data:`~gmsdask.io.cube_schema.SLOT_COORDINATES`;
    missing ones are stored as fills)."""

    scene_id: str
    time: np.datetime64
    coords: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CubeWrite:
    """A committed scene write: cube location, the scene's slot index (storage order, not time order), whether
    the cube was created and whether an earlier version of the scene's slot was replaced, the commit id, and how
    many attempts the commit needed."""

    location: str
    scene_id: str
    time_index: int
    created_cube: bool
    replaced_slot: bool
    snapshot_id: str
    attempts: int


@dataclass(frozen=True)
class _Slot:
    index: int
    created: bool
    replaced: bool
    chunks: tuple[int, int]


def _time_arrays(group: zarr.Group) -> dict[str, zarr.Array]:
    return {name: arr for name, arr in group.arrays() if (arr.metadata.dimension_names or (None,))[0] == "time"}


def _pixel_arrays(group: zarr.Group) -> dict[str, zarr.Array]:
    return {name: arr for name, arr in _time_arrays(group).items() if arr.ndim == 3}


def _check_grid(location: str, group: zarr.Group, gbox: GeoBox) -> None:
    ny, nx = gbox.shape.yx
    x, y = group["x"], group["y"]
    affine = gbox.affine
    x0, y0 = affine.c + 0.5 * affine.a, affine.f + 0.5 * affine.e
    if x.shape != (nx,) or y.shape != (ny,) or not np.isclose(x[0], x0) or not np.isclose(y[0], y0):
        raise ProcessingError(location, "L2C", f"the cube's grid ({y.shape[0]} x {x.shape[0]} px from x={x[0]}, "
                                               f"y={y[0]}) differs from the tile grid of this job ({ny} x {nx} px "
                                               f"from x={x0}, y={y0}); target_gsd or mgrs_pixel_buffer changed?")
    if not str(group["time"].attrs.get("units", "")).startswith(TIME_UNITS):
        raise ProcessingError(location, "L2C", f"time units {group['time'].attrs.get('units')!r} are not "
                                               f"{TIME_UNITS!r}; the cube was not written by gmsdask")


def _covered_chunks(rows: slice, cols: slice, chunks: tuple[int, int],
                    shape: tuple[int, int]) -> set[tuple[int, int]]:
    """The chunks (row, col indices) that the window covers whole (a grid's last, shorter chunk counts when the
    window reaches the grid's edge)."""
    def whole(window: slice, chunk: int, size: int) -> range:
        first = -(-window.start // chunk)
        last = size // chunk + (1 if size % chunk else 0) if window.stop >= size else window.stop // chunk
        return range(first, last)
    return {(r, c) for r in whole(rows, chunks[0], shape[0]) for c in whole(cols, chunks[1], shape[1])}


def _prepare(store: icechunk.IcechunkStore, location: str, grid: CubeGrid, specs: Mapping[str, tuple],
             slot: SceneSlot, window: tuple[slice, slice]) -> _Slot:
    """Step 1 in a fork's store: cube, variables, slot, per-slot coordinates, stale chunks of a re-written slot."""
    group = zarr.open_group(store, mode="a")
    created = "time" not in group
    if created:
        put_documents(store, template_documents(specs, grid.geobox, chunks=grid.chunks,
                                                 compressor=grid.compressor, attrs=grid.attrs))
    else:
        _check_grid(location, group, grid.geobox)
        grid = replace(grid, chunks=_stored_chunks(group, grid.chunks))
        missing = {name: spec for name, spec in specs.items() if name not in group}
        if missing:
            documents = template_documents(missing, grid.geobox, chunks=grid.chunks, compressor=grid.compressor,
                                           attrs={})
            put_documents(store, {key: raw for key, raw in documents.items() if key.split("/")[0] in missing})
    group = zarr.open_group(store, mode="r+")
    n_time = group["time"].shape[0]
    ids = [str(v) for v in group["scene_id"][:]] if n_time else []
    replaced = slot.scene_id in ids
    index = ids.index(slot.scene_id) if replaced else n_time
    length = n_time if replaced else n_time + 1
    for arr in _time_arrays(group).values():
        if arr.shape[0] != length:
            arr.resize((length, *arr.shape[1:]))
    group["time"][index] = int(np.datetime64(slot.time, "ms").astype(np.int64))
    for name, value in slot_coordinate_values({**slot.coords, "scene_id": slot.scene_id}, slot.scene_id).items():
        group[name][index] = value
    if replaced:
        # chunks the new window covers whole are rewritten; every other chunk of the slot is cleared first (a
        # partly covered one is then written over the fill value, so nothing of the old scene stays in it)
        keep = _covered_chunks(*window, grid.chunks, grid.geobox.shape.yx)
        for name, arr in _pixel_arrays(group).items():
            _clear_slot(store, name, arr, index, keep if name in specs else set())
    return _Slot(index, created, replaced, grid.chunks)


def _stored_chunks(group: zarr.Group, default: tuple[int, int]) -> tuple[int, int]:
    """The spatial chunks ``(y, x)`` of an existing cube, which it keeps whatever ``tiling_block_size_XY`` a
    later job has: each chunk task writes whole stored chunks in a fork of its own, and two forks that wrote
    parts of one chunk would lose one part when they are merged."""
    for arr in _pixel_arrays(group).values():
        return int(arr.chunks[1]), int(arr.chunks[2])
    return default


def _clear_slot(store: icechunk.IcechunkStore, name: str, arr: zarr.Array, index: int,
                keep: set[tuple[int, int]]) -> None:
    """Deletes the stored chunks of slot ``index`` outside ``keep`` (a deleted chunk reads as the fill value)."""
    from zarr.core.sync import sync

    async def _stale() -> list[tuple[int, ...]]:
        return [coords async for coords in store.session.chunk_coordinates(f"/{name}")
                if coords[0] == index and tuple(coords[1:]) not in keep]

    for coords in set(sync(_stale())):
        sync(store.delete(f"{name}/{arr.metadata.encode_chunk_key(coords)}"))


def _write_window(fork: icechunk.ForkSession, specs: Mapping[str, VariableSpec], index: int,
                  rows: tuple[int, int], cols: tuple[int, int], names: list[str],
                  parts: list[np.ndarray | DeferredBlock]) -> tuple[icechunk.ForkSession, int]:
    """Step 2 for one chunk window: encode and write the blocks (``parts`` of the variables ``names``, arrays or
    :class:`~gmsdask.io.block_graph.DeferredBlock` s read here one at a time) and the window's ``nodata``; returns
    the fork and the window's count of pixels with data (all pixels when the scene has no bands to tell)."""
    blocks = dict(zip(names, parts))
    region = (index, slice(*rows), slice(*cols))
    bands = {name for name, spec in specs.items() if is_band(name, spec)}
    valid = (rows[1] - rows[0]) * (cols[1] - cols[0])
    # the slot's nodata, from this window's bands as they are written: no band is read back from the cube
    nodata = np.zeros((rows[1] - rows[0], cols[1] - cols[0]), dtype=bool) if bands else None
    for name, spec in specs.items():
        if nodata is not None and name == "nodata":
            continue  # written last, once every band has been seen
        block = materialized(blocks.pop(name))
        if nodata is not None and name in bands:
            nodata |= ~np.isfinite(block)
        zarr.open_array(fork.store, path=name, mode="r+")[region] = encode_block(spec, block)
        del block  # before the next variable is read
    if nodata is not None:
        if "nodata" in specs:
            zarr.open_array(fork.store, path="nodata", mode="r+")[region] = encode_block(specs["nodata"], nodata)
        valid = int(nodata.size - np.count_nonzero(nodata))
    return fork, valid


def aligned_chunks(start: int, length: int, chunk: int) -> tuple[int, ...]:
    """Dask chunk sizes of ``length`` pixels from grid pixel ``start`` whose boundaries are the cube's Zarr chunk
    boundaries (the first and last may be partial): the blocks the writer writes a scene's window in, one chunk
    window per block."""
    sizes, position, stop = [], start, start + length
    while position < stop:
        end = min((position // chunk + 1) * chunk, stop)
        sizes.append(end - position)
        position = end
    return tuple(sizes)


def _chunk_tasks(fork: icechunk.ForkSession, data: xr.Dataset, specs: Mapping[str, VariableSpec], index: int,
                 origin: tuple[int, int], chunks: tuple[int, int]) -> list:
    """Step 2's delayed tasks, one per Zarr chunk the scene's window reaches, each writing its part of it."""
    derived = any(is_band(name, spec) for name, spec in specs.items())
    sources = {name: var.data for name, var in data.data_vars.items() if not (derived and name == "nodata")}
    ny, nx = next(iter(sources.values())).shape
    blocks = (aligned_chunks(origin[0], ny, chunks[0]), aligned_chunks(origin[1], nx, chunks[1]))
    arrays = [(array if isinstance(array, da.Array) else da.from_array(array)).rechunk(blocks)
              for array in sources.values()]
    row_starts = origin[0] + np.concatenate([[0], np.cumsum(blocks[0])])
    col_starts = origin[1] + np.concatenate([[0], np.cumsum(blocks[1])])
    writes = []
    for i in range(len(blocks[0])):
        for j in range(len(blocks[1])):
            rows = (int(row_starts[i]), int(row_starts[i + 1]))
            cols = (int(col_starts[j]), int(col_starts[j + 1]))
            writes.append(((i, j), functools.partial(_write_window, fork, specs, index, rows, cols, list(sources))))
    return window_tasks(arrays, writes, "cube-window", deferred=True)


def _copy_slot(source: icechunk.Session, target: icechunk.IcechunkStore, names: list[str], old: int, new: int,
               window: tuple[slice, slice]) -> None:
    """Re-places the already encoded window of slot ``old`` of ``source`` into slot ``new`` of ``target``."""
    for name in names:
        copy_slot_rows(zarr.open_array(source.store, path=name, mode="r"),
                       zarr.open_array(target, path=name, mode="r+"), old, new, window)


def _write_error(location: str, scene_id: str, error: BaseException) -> CubeWriteError:
    # Icechunk's own storage layer reports a full disk inside its error text, Python code as errno ENOSPC
    if (isinstance(error, OSError) and error.errno == errno.ENOSPC) or "No space left" in str(error):
        problem = f"no space left on the device of {location} ({error}); the cube keeps its last commit"
    else:
        problem = f"writing into {location} failed ({type(error).__name__}: {error}); the cube keeps its last commit"
    return CubeWriteError(scene_id, "L2C", problem)


def _check_cancel(should_cancel: Callable[[], bool] | None, location: str, scene_id: str) -> None:
    if should_cancel is not None and should_cancel():
        raise CubeWriteCanceled(scene_id, "L2C", f"canceled before the commit into {location}; nothing was written")


def _computes_in_this_thread() -> bool:
    """Whether the chunk tasks run in the writing thread (a scene task on a worker, a synchronous test). Only then
    may a write hold the tile's write lock: a writer that waits for cluster workers while holding it could wait
    forever for workers whose scene tasks wait for the lock."""
    return dask.config.get("scheduler", None) in ("sync", "synchronous", "single-threaded")


def _compute(tasks: list, should_cancel: Callable[[], bool] | None, location: str, scene_id: str) -> list:
    """The chunk tasks computed; on a distributed scheduler as futures that a cancel stops within a poll (a batch
    of slow chunks would otherwise run to its end before the cancel is seen)."""
    scheduler = dask.config.get("scheduler", None)
    if should_cancel is None or not (hasattr(scheduler, "compute") and hasattr(scheduler, "cancel")):
        return list(dask.compute(*tasks))
    futures = scheduler.compute(list(tasks))
    while not all(future.done() for future in futures):
        if should_cancel():
            scheduler.cancel(futures)
            _check_cancel(should_cancel, location, scene_id)
        time.sleep(_CANCEL_POLL_S)
    return scheduler.gather(futures)


def write_scene(location: str | os.PathLike[str], data: xr.Dataset, grid: CubeGrid, slot: SceneSlot, *,
                origin: tuple[int, int] = (0, 0), message: str = "", job_id: int | None = None,
                should_cancel: Callable[[], bool] | None = None, options: CubeStorageOptions | None = None,
                max_attempts: int = _DEFAULT_ATTEMPTS, skip_empty: bool = False) -> CubeWrite | None:
    """Write one scene into the cube at ``location`` as one commit, creating the cube if needed.

    Parameters
    ----------
    data
        The scene's ``(y, x)`` variables on the window of ``grid`` starting at pixel ``origin`` ``(row, col)``
        (any window inside the grid; the slot reads as no data outside it), in decoded units: float bands (NaN =
        no data), masks and QA integers; lazy Dask arrays are computed per Zarr chunk the window reaches, each
        task writing its part of that chunk. A ``nodata`` variable is replaced by the one derived from the bands
        of each part.
    grid, slot
        The cube's grid and layout; the scene's id, time and per-slot coordinates.
    message
        Commit message; default ``"job <job_id>: write scene <scene_id>"``.
    should_cancel
        Polled between batches of chunk writes and before the commit; when it returns True the uncommitted
        transaction is dropped and :class:`~gmsdask.errors.CubeWriteCanceled` is raised.
    max_attempts
        Commits tried when other writers keep committing first.
    skip_empty
        When the scene has no pixel with data in the window (known from the same chunk tasks that write it, so no
        pass over the pixels precedes the write), drop the transaction and return None: the cube is not changed,
        and a local cube this call would have created does not appear at all (its staging directory is removed).
        On object storage a new cube is created in place, so an empty repository remains there
        (:func:`gmsdask.open_cube` says it is empty).

    Raises
    ------
    CubeWriteError
        Storage errors (e.g. ``ENOSPC``) while writing or committing, or conflicts not resolved in
        ``max_attempts``; the cube keeps its previous commit.
    """
    location = normalize_location(location)
    if not slot.scene_id:
        raise ProcessingError(location, "L2C", "scene_id must not be empty")
    if not data.data_vars:
        raise ProcessingError(slot.scene_id, "L2C", f"nothing to write into {location}: the scene has no variables")
    origin = (int(origin[0]), int(origin[1]))
    ny, nx = next(iter(data.data_vars.values())).shape
    window = (slice(origin[0], origin[0] + ny), slice(origin[1], origin[1] + nx))
    gy, gx = grid.geobox.shape.yx
    if min(origin) < 0 or window[0].stop > gy or window[1].stop > gx:
        raise ProcessingError(slot.scene_id, "L2C", f"a window of {ny} x {nx} px at {origin} leaves the cube grid "
                                                    f"{gy} x {gx}")
    specs = {name: variable_spec(name, var) for name, var in data.data_vars.items()}
    if any(is_band(name, spec) for name, spec in specs.items()):
        specs.setdefault("nodata", variable_spec("nodata", xr.DataArray(np.uint8(0))))
    template_specs = {name: (spec, data[name].attrs if name in data else {}) for name, spec in specs.items()}
    message = message or f"job {job_id if job_id is not None else '-'}: write scene {slot.scene_id}"
    metadata = {"scene_id": slot.scene_id, "job_id": job_id}
    _check_cancel(should_cancel, location, slot.scene_id)
    if not is_url(location) and not repository_exists(location):
        problem = old_cube_problem(Path(location).with_suffix(".zarr"))
        if problem:
            raise CubeWriteError(slot.scene_id, "L2C", problem)
    windows = (len(aligned_chunks(origin[0], ny, grid.chunks[0]))
               * len(aligned_chunks(origin[1], nx, grid.chunks[1])))
    exclusive = (write_guard(location) if windows <= _EXCLUSIVE_MAX_WINDOWS and _computes_in_this_thread()
                 else contextlib.nullcontext())
    valid = 0
    try:
        # the write lock (small writes) before the staging decision: a writer that waited sees the cube created
        with exclusive, staged_repository(location, options) as (repo, publish):
            previous: tuple[icechunk.Session, _Slot] | None = None
            for attempt in range(1, max_attempts + 1):
                session = repo.writable_session("main")
                fork = session.fork()
                placed = _prepare(fork.store, location, grid, template_specs, slot, window)
                stored = {name: spec_from_array(name, zarr.open_array(fork.store, path=name, mode="r"))
                          for name in specs}
                if previous is None:
                    tasks = _chunk_tasks(fork, data, stored, placed.index, origin, placed.chunks)
                    forks = []
                    for start in range(0, len(tasks), _BATCH):
                        _check_cancel(should_cancel, location, slot.scene_id)
                        for written, count in _compute(tasks[start:start + _BATCH], should_cancel, location,
                                                       slot.scene_id):
                            forks.append(written)
                            valid += count
                    if skip_empty and not valid:
                        return None  # nothing committed; a staging repository goes with the context
                    others = [other for other in forks if other is not fork]
                    if others:
                        fork.merge(*others)
                else:
                    _copy_slot(previous[0], fork.store, list(specs), previous[1].index, placed.index, window)
                session.merge(fork)
                _check_cancel(should_cancel, location, slot.scene_id)
                try:
                    # a staging repository is private to this call: no lock (nor a lock file left beside it)
                    with commit_guard(location) if publish is None else contextlib.nullcontext():
                        snapshot = session.commit(message, metadata=metadata,
                                                  rebase_with=icechunk.ConflictDetector(), rebase_tries=3)
                except (icechunk.ConflictError, icechunk.RebaseFailedError):
                    previous = (session, placed)
                    continue
                if publish is not None and not publish():
                    # another writer created the cube meanwhile: the slot's encoded chunks are copied from the
                    # staging repository (removed only when the context exits) into the real one, as after a conflict
                    previous = (repo.readonly_session("main"), placed)
                    repo, publish = open_repository(location, options=options), None
                    continue
                return CubeWrite(location, slot.scene_id, placed.index, placed.created, placed.replaced, snapshot,
                                 attempt)
    except (CubeWriteError, ProcessingError):
        raise
    except (OSError, icechunk.IcechunkError) as error:
        raise _write_error(location, slot.scene_id, error) from error
    raise CubeWriteError(slot.scene_id, "L2C", f"{location}: other writers kept committing first; gave up after "
                                               f"{max_attempts} attempts")
