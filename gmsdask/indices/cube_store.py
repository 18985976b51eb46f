"""Storing Sen2Chain's cloud masks and indices in time slots of an Icechunk tile cube, as one commit per call.

One call of :func:`store_slot_variables` is one transaction on the cube's ``main`` branch, as a scene write of
:mod:`gmsdask.io.cube_writer` is:

1. a fork of a fresh writable session creates the variables the cube lacks (for every slot, unwritten chunks read
   as the fill value) and checks that the slots still hold the scenes the caller computed;
2. one Dask task per Zarr chunk window and slot encodes the values and writes them into (a copy of) the fork and
   returns it; the forks are merged on the client (``Session.fork``/``merge``, Icechunk's cooperative writes).
   ``icechunk.xarray.to_icechunk`` does the same, but refuses a session that already holds changes (step 1);
3. commit under :func:`~gmsdask.io.cube_storage.commit_guard`, with Icechunk's rebase; when the changes collide
   (another writer appended a slot, which resizes every variable), the transaction is repeated on a new session
   and the already encoded chunks are copied from the failed one, so nothing is computed twice.

Variables are created with the cube's own chunks and compressors. Their Zarr documents are written by xarray into
an in-memory store and copied into the cube (as :mod:`gmsdask.io.cube_schema` does for the bands), so the CF
encoding is xarray's; :func:`~gmsdask.io.cube_schema.template_documents` itself does not fit, since it gives every
scaled variable the bands' fill -9999, which is a valid index value (-0.9999).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import dask
import dask.array as da
import icechunk
import numpy as np
import xarray as xr
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from ..errors import CubeWriteError, ProcessingError
from ..io.block_graph import window_tasks
from ..io.cube_schema import SLOT_COORDINATES, copy_slot_rows, put_documents
from ..io.cube_storage import CubeStorageOptions, commit_guard, normalize_location, open_repository
from .cloudmasks import MASK_FILL

__all__ = ["INDEX_SCALE", "INDEX_FILL", "band_layout", "store_slot_variables"]

#: Indices are stored as int16 = round(value / INDEX_SCALE), INDEX_FILL where there is no value.
INDEX_SCALE = 1e-4
INDEX_FILL = -32768
_LEVEL = "INDICES"
_DEFAULT_ATTEMPTS = 20


def band_layout(group: zarr.Group) -> tuple[tuple[int, int], tuple]:
    """Spatial Zarr chunks ``(y, x)`` in pixels and the compressors of the cube's bands (the first
    ``(time, y, x)`` array), which new variables get too."""
    for _, arr in group.arrays():
        if (arr.metadata.dimension_names or (None,))[0] == "time" and arr.ndim == 3:
            return (arr.chunks[1], arr.chunks[2]), tuple(arr.compressors)
    raise ProcessingError(str(group.store), _LEVEL, "the cube has no (time, y, x) variable")


def _is_index(var: xr.DataArray) -> bool:
    return bool(np.issubdtype(var.dtype, np.floating))


def _template_documents(data: xr.Dataset, names: Sequence[str], shape: tuple[int, int], chunks: tuple[int, int],
                        compressors: tuple) -> dict[str, bytes]:
    """Zarr documents of empty ``(0, y, x)`` variables ``names``: indices int16 x 10 000 (fill -32768), masks
    uint8 (attribute ``nodata`` 255, not CF-masked, as the cube's QA layers)."""
    variables, encoding = {}, {}
    for name in names:
        var = data[name]
        attrs = {k: v for k, v in var.attrs.items()
                 if k not in ("_FillValue", "scale_factor", "add_offset", "grid_mapping", "coordinates", "nodata")}
        # as the bands: readers (rioxarray, odc-geo) find the CRS only when spatial_ref is a listed coordinate
        attrs.update(grid_mapping="spatial_ref", coordinates=" ".join(("spatial_ref", *SLOT_COORDINATES)))
        enc: dict = {"chunks": (1, *chunks), "compressors": compressors}
        if _is_index(var):
            enc.update(dtype="int16", scale_factor=INDEX_SCALE, _FillValue=INDEX_FILL, fill_value=INDEX_FILL)
            dtype = np.float32
        else:
            attrs["nodata"] = MASK_FILL
            enc.update(dtype="uint8", fill_value=MASK_FILL)
            dtype = np.uint8
        variables[name] = xr.DataArray(np.zeros((0, *shape), dtype=dtype), dims=("time", "y", "x"), attrs=attrs)
        encoding[name] = enc
    store = zarr.storage.MemoryStore()
    xr.Dataset(variables).to_zarr(store, mode="w-", encoding=encoding, zarr_format=3, consolidated=False)

    async def _read() -> dict[str, bytes]:
        keys = [key async for key in store.list() if key.split("/")[0] in names and key.endswith("zarr.json")]
        return {key: (await store.get(key, prototype=default_buffer_prototype())).to_bytes() for key in keys}

    return sync(_read())


def _prepare(store: icechunk.IcechunkStore, location: str, data: xr.Dataset, slots: Sequence[int],
             scene_ids: Sequence[str] | None) -> list[str]:
    """Step 1 in a fork's store: the slots' scene ids checked, the missing variables created; returns their names."""
    group = zarr.open_group(store, mode="r+")
    if "time" not in group or "scene_id" not in group:
        raise ProcessingError(location, _LEVEL, "not a gmsdask tile cube (no time or scene_id variable)")
    n_time = group["time"].shape[0]
    stored_ids = [str(v) for v in group["scene_id"][:]] if n_time else []
    for i, slot in enumerate(slots):
        if not 0 <= slot < n_time:
            raise ProcessingError(location, _LEVEL, f"slot {slot} is not in the cube ({n_time} slots)")
        if scene_ids is not None and stored_ids[slot] != scene_ids[i]:
            raise ProcessingError(location, _LEVEL, f"slot {slot} holds {stored_ids[slot]!r}, not {scene_ids[i]!r}: "
                                                    "the cube changed (compacted?) since it was read; run again")
    missing = [str(name) for name in data.data_vars if name not in group]
    if missing:
        shape = (group["y"].shape[0], group["x"].shape[0])
        chunks, compressors = band_layout(group)
        put_documents(store, _template_documents(data, missing, shape, chunks, compressors))
        for name in missing:
            zarr.open_array(store, path=name, mode="r+").resize((n_time, *shape))
        # A slot appended meanwhile by another writer resizes every variable but these, and Icechunk would rebase
        # onto it cleanly: re-writing the last slot's time (unchanged) makes that append a conflict
        # (chunks updated in an array whose shape changed), so the new variables are sized again on retry
        group["time"][n_time - 1] = group["time"][n_time - 1]
    return missing


def _encode(block: np.ndarray, array: zarr.Array) -> np.ndarray:
    """Decoded values as the stored integers: indices round(value / scale), fill for NaN; masks as they are."""
    if "scale_factor" in array.attrs:
        values = np.asarray(block, dtype=np.float64) / float(array.attrs["scale_factor"])
        ok = np.isfinite(values)
        scaled = np.clip(np.round(np.where(ok, values, 0.0)), INDEX_FILL + 1, np.iinfo(np.int16).max)
        return np.where(ok, scaled, INDEX_FILL).astype(array.dtype)
    return np.asarray(block).astype(array.dtype)


def _write_window(fork: icechunk.ForkSession, slot: int, rows: tuple[int, int], cols: tuple[int, int],
                  names: list[str], parts: list[np.ndarray]) -> icechunk.ForkSession:
    """Step 2 for one slot and chunk window: encode and write every variable's block (``parts`` of the variables
    ``names``, each ``(1, y, x)``); returns the fork."""
    for name, block in zip(names, parts):
        array = zarr.open_array(fork.store, path=name, mode="r+")
        array[slot, slice(*rows), slice(*cols)] = _encode(np.asarray(block)[0], array)
    return fork


def _chunk_tasks(fork: icechunk.ForkSession, data: xr.Dataset, slots: Sequence[int],
                 chunks: tuple[int, int], origin: tuple[int, int] = (0, 0)) -> list:
    """Step 2's delayed tasks, one per slot and Zarr chunk window; ``data`` starts at pixel ``origin`` (row, col)
    of the cube grid, a corner of a chunk. As the scene cube writer's, they are built on the variables' common
    optimized graph without Dask's alias tasks (``gmsdask.io.block_graph``)."""
    names = list(data.data_vars)
    arrays = [(var.data if isinstance(var.data, da.Array) else da.from_array(var.data)).rechunk((1, *chunks))
              for var in data.data_vars.values()]
    _, ny, nx = next(iter(data.data_vars.values())).shape
    row0, col0 = origin
    writes = []
    for t, slot in enumerate(slots):
        for i, row in enumerate(range(0, ny, chunks[0])):
            for j, col in enumerate(range(0, nx, chunks[1])):
                rows = (row0 + row, row0 + min(row + chunks[0], ny))
                cols = (col0 + col, col0 + min(col + chunks[1], nx))
                writes.append(((t, i, j), functools.partial(_write_window, fork, int(slot), rows, cols, names)))
    return window_tasks(arrays, writes, "index-cube-window")


def _window_geometry(location: str, window: tuple[slice, slice] | None, shape: tuple[int, ...],
                     chunks: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Origin (row, col) and shape of ``window`` on a cube grid of ``shape``; refused unless chunk-aligned."""
    if window is None:
        return (0, 0), (int(shape[0]), int(shape[1]))
    bounds = [s.indices(int(n))[:2] for s, n in zip(window, shape)]
    if any(start % chunk or start >= stop for (start, stop), chunk in zip(bounds, chunks)):
        raise ProcessingError(location, _LEVEL, f"window {window} does not start at a chunk corner of {chunks} px")
    return (bounds[0][0], bounds[1][0]), (bounds[0][1] - bounds[0][0], bounds[1][1] - bounds[1][0])


def store_slot_variables(location: str | os.PathLike[str], data: xr.Dataset, slots: Sequence[int], *,
                         scene_ids: Sequence[str] | None = None, message: str = "",
                         options: CubeStorageOptions | None = None,
                         max_attempts: int = _DEFAULT_ATTEMPTS,
                         window: tuple[slice, slice] | None = None) -> str:
    """Write ``data`` into the given time slots of the cube at ``location`` as one commit; returns its id.

    Parameters
    ----------
    data
        Variables ``(time, y, x)`` on the whole cube grid (or on ``window``), ``time`` of length ``len(slots)``. Float variables are
        indices (stored int16 = round(value x 10 000), -32768 for NaN), integer ones masks (uint8; 0 clear,
        1 masked, 255 unknown). Variables the cube lacks are created for every slot (fill values).
    slots
        Storage indices of the slots (not their position in time order), as ``CubeWrite.time_index``.
    scene_ids
        The ``scene_id`` each slot must hold; a slot holding another scene (the cube was compacted after it was
        read) raises :class:`ProcessingError` and nothing is written.
    message
        Commit message; default names the variables and the slots.
    max_attempts
        Commits tried when other writers keep committing first.
    window
        ``(rows, cols)`` slices of the cube grid ``data`` covers, starting at a chunk corner (default: the whole
        grid). The rest of the slots keeps what it holds (the fill value for new variables).

    Raises
    ------
    CubeWriteError
        Storage errors or conflicts not resolved in ``max_attempts``; the cube keeps its previous commit.
    """
    location = normalize_location(location)
    slots = [int(slot) for slot in slots]
    if data.sizes.get("time") != len(slots) or any(var.dims != ("time", "y", "x") for var in data.data_vars.values()):
        raise ProcessingError(location, _LEVEL, f"expected (time, y, x) variables with {len(slots)} time steps, got "
                                                f"{dict(data.sizes)}")
    if scene_ids is not None and len(scene_ids) != len(slots):
        raise ProcessingError(location, _LEVEL, f"{len(scene_ids)} scene ids for {len(slots)} slots")
    data = data.drop_vars(list(data.coords))
    names = [str(name) for name in data.data_vars]
    if not slots or not names:
        raise ProcessingError(location, _LEVEL, "nothing to write: no slot or no variable")
    where = ", ".join(f"{slot} ({scene_ids[i]})" if scene_ids else str(slot) for i, slot in enumerate(slots))
    message = message or f"indices: {', '.join(names)} into slot(s) {where}"
    metadata = {"variables": names, "slots": slots, "scene_ids": list(scene_ids or [])}
    try:
        repo = open_repository(location, options=options)
        previous: icechunk.Session | None = None
        for _attempt in range(max_attempts):
            session = repo.writable_session("main")
            fork = session.fork()
            _prepare(fork.store, location, data, slots, scene_ids)
            if previous is None:
                shape = tuple(zarr.open_array(fork.store, path=names[0], mode="r").shape[1:])
                chunks = band_layout(zarr.open_group(fork.store, mode="r"))[0]
                origin, expected = _window_geometry(location, window, shape, chunks)
                if tuple(data[names[0]].shape[1:]) != expected:
                    raise ProcessingError(location, _LEVEL, f"data of {data[names[0]].shape[1:]} px for a window of "
                                                            f"{expected} px of a cube of {shape} px")
                forks = dask.compute(*_chunk_tasks(fork, data, slots, chunks, origin))
                others = [other for other in forks if other is not fork]
                if others:
                    fork.merge(*others)
            else:  # the encoded chunks of the failed transaction, copied into the same slots
                for name in names:
                    for slot in slots:
                        copy_slot_rows(zarr.open_array(previous.store, path=name, mode="r"),
                                       zarr.open_array(fork.store, path=name, mode="r+"), slot, slot)
            session.merge(fork)
            try:
                with commit_guard(location):
                    return session.commit(message, metadata=metadata, rebase_with=icechunk.ConflictDetector(),
                                          rebase_tries=3)
            except (icechunk.ConflictError, icechunk.RebaseFailedError):
                previous = session
    except (CubeWriteError, ProcessingError):
        raise
    except (OSError, icechunk.IcechunkError) as error:
        raise CubeWriteError(location, _LEVEL, f"writing {', '.join(names)} failed ({type(error).__name__}: "
                                               f"{error}); the cube keeps its last commit") from error
    raise CubeWriteError(location, _LEVEL, f"other writers kept committing first; gave up after {max_attempts} "
                                           "attempts")
