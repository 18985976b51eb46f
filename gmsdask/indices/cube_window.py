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

import zarr
from zarr.core.chunk_key_encodings import DefaultChunkKeyEncoding
from zarr.core.sync import sync

__all__ = ["slot_data_window"]


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


def slot_data_window(group: zarr.Group, slot: int, chunks: tuple[int, int]) -> tuple[slice, slice]:
    """The smallest window of whole ``chunks`` (rows, cols) holding every chunk a ``(time, y, x)`` variable of
    storage slot ``slot`` stores; the whole grid when the cube's layout is not understood, the first chunk when
    the slot stores nothing (it has no data at all)."""
    ny, nx = group["y"].shape[0], group["x"].shape[0]
    names = _slot_arrays(group)
    if not names:
        return slice(0, ny), slice(0, nx)
    store = group.store
    prefix = f"{group.path}/" if group.path else ""

    async def _chunk_indices() -> set[tuple[int, int]]:
        found: set[tuple[int, int]] = set()
        for name in names:
            # Icechunk lists whole arrays only (a prefix must name a group or an array)
            wanted = f"{prefix}{name}/c/{slot}/"
            async for key in store.list_prefix(f"{prefix}{name}"):
                if not key.startswith(wanted):
                    continue
                parts = key[len(wanted):].split("/")
                if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                    found.add((int(parts[0]), int(parts[1])))
        return found

    indices = sync(_chunk_indices())
    if not indices:
        return slice(0, min(chunks[0], ny)), slice(0, min(chunks[1], nx))
    rows = [i for i, _ in indices]
    cols = [j for _, j in indices]
    return (slice(min(rows) * chunks[0], min((max(rows) + 1) * chunks[0], ny)),
            slice(min(cols) * chunks[1], min((max(cols) + 1) * chunks[1], nx)))
