"""The part of a tile cube where one slot has data: the bounding window of the Zarr chunks its variables store.

L2C writes a scene into the window of whole cube chunks it reaches, and Zarr does not store a chunk that holds
only the fill value; a chunk no variable of the slot stores reads as fill in every variable (no band, ``nodata``
set, no QA class). Masks and indices there are fill too (a mask is 255 where its inputs have no data; an index
is no data where its bands are), so :func:`~gmsdask.indices.cube.write_indices_to_cube` computes and writes only
this window. A scene covering a corner of a 10980 x 10980 px tile then costs its corner, not the tile.

Listing the chunk keys is a small eager step (a manifest read per variable, no chunk data). Cubes whose chunk
keys are not Zarr v3's default ``c/t/i/j`` get the whole grid.
"""

from __future__ import annotations

from collections.abc import Iterable

import zarr
from zarr.core.chunk_key_encodings import DefaultChunkKeyEncoding
from zarr.core.sync import sync

__all__ = ["slot_data_windows"]


def _slot_arrays(group: zarr.Group) -> list[str]:
    names = []
    for name, array in group.arrays():
        dims = array.metadata.dimension_names or ()
        if array.ndim != 3 or not dims or dims[0] != "time":
            continue
        encoding = array.metadata.chunk_key_encoding
        if not isinstance(encoding, DefaultChunkKeyEncoding) or encoding.separator != "/":
            return []  # unknown layout: the caller uses the whole grid
        names.append(str(name))
    return names


def slot_data_windows(group: zarr.Group, slots: Iterable[int], chunks: tuple[int, int]) -> dict[int, tuple[slice, slice]]:
    """Per storage slot, the smallest window of whole ``chunks`` (rows, cols) holding every chunk a ``(time, y, x)``
    variable of that slot stores; the whole grid when the cube's layout is not understood, the first chunk when the
    slot stores nothing (it has no data at all). One listing of the chunk keys serves every slot."""
    ny, nx = group["y"].shape[0], group["x"].shape[0]
    wanted = {int(slot) for slot in slots}
    names = _slot_arrays(group)
    if not names:
        return {slot: (slice(0, ny), slice(0, nx)) for slot in wanted}
    store = group.store
    prefix = f"{group.path}/" if group.path else ""

    async def _chunk_indices() -> dict[int, set[tuple[int, int]]]:
        found: dict[int, set[tuple[int, int]]] = {slot: set() for slot in wanted}
        for name in names:
            # Icechunk lists whole arrays only (a prefix must name a group or an array)
            head = f"{prefix}{name}/c/"
            async for key in store.list_prefix(f"{prefix}{name}"):
                parts = key[len(head):].split("/") if key.startswith(head) else []
                if len(parts) == 3 and all(part.isdigit() for part in parts) and int(parts[0]) in wanted:
                    found[int(parts[0])].add((int(parts[1]), int(parts[2])))
        return found

    windows = {}
    for slot, indices in sync(_chunk_indices()).items():
        if not indices:
            windows[slot] = (slice(0, min(chunks[0], ny)), slice(0, min(chunks[1], nx)))
            continue
        rows = [i for i, _ in indices]
        cols = [j for _, j in indices]
        windows[slot] = (slice(min(rows) * chunks[0], min((max(rows) + 1) * chunks[0], ny)),
                         slice(min(cols) * chunks[1], min((max(cols) + 1) * chunks[1], nx)))
    return windows
