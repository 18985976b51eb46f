"""Pixel windows of Dask arrays read by hand-built tasks: the blocks under a window, cut and stitched.

A task that needs ``data[rows, cols]`` of a chunked array (a warp's source window, a tie point block's matching
windows) names the blocks under the window; :func:`gmsdask.algorithms.warp.assemble_window` stitches them. Built
by hand because ``dask.array``'s slicing, rechunking and ``overlap`` make a window from several layers of small
tasks (split, merge, getitem, concatenate: ~25 per window), each a scheduler round trip of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
from dask.utils import apply

from ..algorithms.warp import assemble_window

__all__ = ["window_blocks", "map_neighbourhoods"]


def window_blocks(data: da.Array, rows: slice, cols: slice, layer: dict, part_key: tuple
                  ) -> tuple[list[tuple], int, slice, slice]:
    """The block keys whose blocks, stitched by ``assemble_window(blocks, n_block_cols, inner_rows,
    inner_cols)``, are ``data[rows, cols]`` (2-D, pixel slices with steps of 1); returned as ``(keys,
    n_block_cols, inner_rows, inner_cols)``.

    A block the window covers whole is named as it is. The part of a block the window covers in part is a task
    of its own, added to ``layer`` under ``part_key + (n,)``, that copies the part out: a view would keep the
    whole block (or what the block is a view of, e.g. L1C's two-layer blocks) in memory for as long as the
    window's task waits for its other parts, and the copy lets the block go once its parts are cut. The tasks
    that read ``keys`` belong to a layer that depends on ``data``.

    One task per part, not one per block for all the windows that take parts of it, which would spare the
    scheduler and the workers thousands of tasks of a few milliseconds: tried on 2026-12-01 (measured in
    ``docs/performance.md``, Landsat), it made no job faster beyond the machine's spread and held parts in memory
    for windows that run much later (peak worker memory: a Landsat scene's with the warps' and tie points'
    parts 3.4-3.7 GiB instead of 2.9-3.1 GiB, a whole tile's with Fmask's strips 963-971 MiB instead of
    879-926 MiB)."""
    row_edges = np.cumsum((0, *data.chunks[0]))
    col_edges = np.cumsum((0, *data.chunks[1]))
    by0 = int(np.searchsorted(row_edges, rows.start, side="right")) - 1
    by1 = int(np.searchsorted(row_edges, rows.stop, side="left"))
    bx0 = int(np.searchsorted(col_edges, cols.start, side="right")) - 1
    bx1 = int(np.searchsorted(col_edges, cols.stop, side="left"))

    def part(start: int, stop: int, edges: np.ndarray, index: int) -> slice:
        return slice(int(max(start, edges[index]) - edges[index]), int(min(stop, edges[index + 1]) - edges[index]))
    keys = []
    for by in range(by0, by1):
        part_rows = part(rows.start, rows.stop, row_edges, by)
        for bx in range(bx0, bx1):
            part_cols = part(cols.start, cols.stop, col_edges, bx)
            key = (data.name, by, bx)
            if (part_rows.stop - part_rows.start, part_cols.stop - part_cols.start) != (data.chunks[0][by],
                                                                                        data.chunks[1][bx]):
                layer[part_key + (len(keys),)] = (_part, key, part_rows, part_cols)
                key = part_key + (len(keys),)
            keys.append(key)
    # every block is cut to the window (a block row is cut in rows for all its blocks or for none; columns
    # alike), so the stitched blocks are the window itself
    return keys, bx1 - bx0, slice(0, rows.stop - rows.start), slice(0, cols.stop - cols.start)


def _part(block: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    return block[rows, cols].copy()


def map_neighbourhoods(function: Callable[..., np.ndarray], arrays: Sequence[da.Array], depth: int, *,
                       extra: Sequence[Any] = (), dtype: np.dtype, name: str, **kwargs: Any) -> da.Array:
    """``function(*windows, *extra, **kwargs)`` for every block of ``arrays`` (2-D, one chunking), trimmed back
    to the block: each window is the block with ``depth`` pixels of its neighbours on every side, fewer at the
    arrays' edges (``dask.array.map_overlap`` with ``boundary="none"``). ``function`` returns one 2-D array of
    its windows' shape; ``extra`` may hold 0-d Dask arrays (a scene statistic), passed as their values.

    One task per block, from the blocks under its window (:func:`window_blocks`), where ``map_overlap`` makes
    each window of ~20 small tasks (slices of the eight neighbours, concatenations, a trim) and keeps the
    padded copies in memory until their block's task runs."""
    first = arrays[0]
    if any(array.chunks != first.chunks for array in arrays):
        raise ValueError("map_neighbourhoods takes arrays of one chunking")
    token = tokenize(function, *(array.name for array in arrays), depth, extra, kwargs)
    out_name = f"{name}-{token}"
    extra_args = [value.__dask_keys__()[0] if isinstance(value, da.Array) else value for value in extra]
    row_edges = np.cumsum((0, *first.chunks[0]))
    col_edges = np.cumsum((0, *first.chunks[1]))
    n_rows, n_cols = first.shape
    layer: dict = {}
    for by in range(len(first.chunks[0])):
        rows = slice(int(max(row_edges[by] - depth, 0)), int(min(row_edges[by + 1] + depth, n_rows)))
        trim_rows = slice(int(row_edges[by] - rows.start), int(row_edges[by + 1] - rows.start))
        for bx in range(len(first.chunks[1])):
            cols = slice(int(max(col_edges[bx] - depth, 0)), int(min(col_edges[bx + 1] + depth, n_cols)))
            trim_cols = slice(int(col_edges[bx] - cols.start), int(col_edges[bx + 1] - cols.start))
            reads = []
            for index, array in enumerate(arrays):
                keys, *layout = window_blocks(array, rows, cols, layer, (f"{out_name}-part", by, bx, index))
                reads.append([keys, tuple(layout)])  # a list: Dask replaces keys in lists, not in tuples
            layer[(out_name, by, bx)] = (apply, _neighbourhood_task, [function, reads, extra_args, trim_rows,
                                                                     trim_cols], kwargs)
    dependencies = [*arrays, *(value for value in extra if isinstance(value, da.Array))]
    graph = HighLevelGraph.from_collections(out_name, layer, dependencies=dependencies)
    return da.Array(graph, out_name, chunks=first.chunks, dtype=dtype, meta=np.empty((0, 0), dtype=dtype))


def _neighbourhood_task(function: Callable[..., np.ndarray], reads: list, extra: list, trim_rows: slice,
                        trim_cols: slice, **kwargs: Any) -> np.ndarray:
    windows = [assemble_window(blocks, *layout) for blocks, layout in reads]
    return function(*windows, *extra, **kwargs)[trim_rows, trim_cols]
