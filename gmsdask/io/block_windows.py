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

    One task per part, not one per block for all windows (as :func:`map_neighbourhoods` cuts its strips): a
    warp's windows are large parts of their blocks, and cut all at once they waited in memory for windows that
    run much later. Tried on 2026-12-01 for the warps and the tie points: a Landsat scene's job went from 9,700
    to 7,500 tasks and took as long (137.9 and 138.9 s against 137.1 and 136.5 s), its peak worker memory
    3.4-3.7 GiB instead of 2.9-3.1 GiB."""
    row_edges = np.cumsum((0, *data.chunks[0]))
    col_edges = np.cumsum((0, *data.chunks[1]))
    under = _blocks_under(row_edges, col_edges, rows, cols)
    keys = []
    for (by, bx), part_rows, part_cols in under:
        key = (data.name, by, bx)
        if (part_rows.stop - part_rows.start, part_cols.stop - part_cols.start) != (data.chunks[0][by],
                                                                                    data.chunks[1][bx]):
            layer[part_key + (len(keys),)] = (_part, key, part_rows, part_cols)
            key = part_key + (len(keys),)
        keys.append(key)
    n_block_cols = sum(block[0] == under[0][0][0] for block, _rows, _cols in under)
    # every block is cut to the window (a block row is cut in rows for all its blocks or for none; columns
    # alike), so the stitched blocks are the window itself
    return keys, n_block_cols, slice(0, rows.stop - rows.start), slice(0, cols.stop - cols.start)


def _part(block: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    return block[rows, cols].copy()


def map_neighbourhoods(function: Callable[..., np.ndarray], arrays: Sequence[da.Array], depth: int, *,
                       extra: Sequence[Any] = (), dtype: np.dtype, name: str, **kwargs: Any) -> da.Array:
    """``function(*windows, *extra, **kwargs)`` for every block of ``arrays`` (2-D, one chunking), trimmed back
    to the block: each window is the block with ``depth`` pixels of its neighbours on every side, fewer at the
    arrays' edges (``dask.array.map_overlap`` with ``boundary="none"``). ``function`` returns one 2-D array of
    its windows' shape; ``extra`` may hold 0-d Dask arrays (a scene statistic), passed as their values.

    One task per block, from the blocks under its window, where ``map_overlap`` makes each window of ~20 small
    tasks (slices of the eight neighbours, concatenations, a trim) and keeps the padded copies in memory until
    their block's task runs. The strips a block lends its neighbours are cut by one task per array and block,
    as copies (the block itself can go once they are cut, as with :func:`window_blocks`), not by one task per
    strip: a Landsat scene's Fmask pass had ~3,800 such strip tasks of a few milliseconds each, and on two cores
    the scheduler's and the workers' cost per task left a fifth of the pass idle."""
    first = arrays[0]
    if any(array.chunks != first.chunks for array in arrays):
        raise ValueError("map_neighbourhoods takes arrays of one chunking")
    token = tokenize(function, *(array.name for array in arrays), depth, extra, kwargs)
    out_name = f"{name}-{token}"
    extra_args = [value.__dask_keys__()[0] if isinstance(value, da.Array) else value for value in extra]
    row_edges = np.cumsum((0, *first.chunks[0]))
    col_edges = np.cumsum((0, *first.chunks[1]))
    n_rows, n_cols = first.shape
    # every array has the same chunking, so a window's blocks and strips are the same for all of them:
    # windows[(by, bx)] = (pieces, layout for assemble_window, trim_rows, trim_cols), a piece (source block,
    # index of its strip or None for the whole block); strips[source block] = {strip: index}, the strips cut
    # from the block for all the windows that reach into it
    strips: dict[tuple[int, int], dict[tuple[int, int, int, int], int]] = {}
    windows = {}
    for by in range(len(first.chunks[0])):
        rows = slice(int(max(row_edges[by] - depth, 0)), int(min(row_edges[by + 1] + depth, n_rows)))
        trim_rows = slice(int(row_edges[by] - rows.start), int(row_edges[by + 1] - rows.start))
        for bx in range(len(first.chunks[1])):
            cols = slice(int(max(col_edges[bx] - depth, 0)), int(min(col_edges[bx + 1] + depth, n_cols)))
            trim_cols = slice(int(col_edges[bx] - cols.start), int(col_edges[bx + 1] - cols.start))
            pieces, n_block_cols = [], 0
            for (sby, sbx), part_rows, part_cols in _blocks_under(row_edges, col_edges, rows, cols):
                whole = (part_rows.stop - part_rows.start, part_cols.stop - part_cols.start) == (
                    first.chunks[0][sby], first.chunks[1][sbx])
                cut = strips.setdefault((sby, sbx), {})
                index = None if whole else cut.setdefault(
                    (part_rows.start, part_rows.stop, part_cols.start, part_cols.stop), len(cut))
                pieces.append(((sby, sbx), index))
                n_block_cols += sby == pieces[0][0][0]
            layout = (n_block_cols, slice(0, rows.stop - rows.start), slice(0, cols.stop - cols.start))
            windows[(by, bx)] = (pieces, layout, trim_rows, trim_cols)
    layer: dict = {}
    for index, array in enumerate(arrays):
        for block, cut in strips.items():
            if cut:
                layer[(f"{out_name}-strips", index, *block)] = (_strips, (array.name, *block), list(cut))
    for (by, bx), (pieces, layout, trim_rows, trim_cols) in windows.items():
        reads = []
        for index, array in enumerate(arrays):
            # lists: Dask replaces keys in lists, not in tuples; a strip is [its block's strips, its index]
            blocks = [(array.name, *block) if strip is None else [(f"{out_name}-strips", index, *block), strip]
                      for block, strip in pieces]
            reads.append([blocks, layout])
        layer[(out_name, by, bx)] = (apply, _neighbourhood_task, [function, reads, extra_args, trim_rows,
                                                                 trim_cols], kwargs)
    dependencies = [*arrays, *(value for value in extra if isinstance(value, da.Array))]
    graph = HighLevelGraph.from_collections(out_name, layer, dependencies=dependencies)
    return da.Array(graph, out_name, chunks=first.chunks, dtype=dtype, meta=np.empty((0, 0), dtype=dtype))


def _blocks_under(row_edges: np.ndarray, col_edges: np.ndarray, rows: slice, cols: slice
                  ) -> list[tuple[tuple[int, int], slice, slice]]:
    """The blocks under the window ``[rows, cols]``, row-major, each as ``((block row, block column), rows,
    cols)`` of the window's part within the block (slices relative to the block)."""
    by0 = int(np.searchsorted(row_edges, rows.start, side="right")) - 1
    by1 = int(np.searchsorted(row_edges, rows.stop, side="left"))
    bx0 = int(np.searchsorted(col_edges, cols.start, side="right")) - 1
    bx1 = int(np.searchsorted(col_edges, cols.stop, side="left"))

    def part(start: int, stop: int, edges: np.ndarray, index: int) -> slice:
        return slice(int(max(start, edges[index]) - edges[index]), int(min(stop, edges[index + 1]) - edges[index]))
    return [((by, bx), part(rows.start, rows.stop, row_edges, by), part(cols.start, cols.stop, col_edges, bx))
            for by in range(by0, by1) for bx in range(bx0, bx1)]


def _strips(block: np.ndarray, cuts: list[tuple[int, int, int, int]]) -> list[np.ndarray]:
    """Copies of ``block[r0:r1, c0:c1]`` for every ``(r0, r1, c0, c1)`` of ``cuts``."""
    return [block[r0:r1, c0:c1].copy() for r0, r1, c0, c1 in cuts]


def _neighbourhood_task(function: Callable[..., np.ndarray], reads: list, extra: list, trim_rows: slice,
                        trim_cols: slice, **kwargs: Any) -> np.ndarray:
    windows = [assemble_window([piece if isinstance(piece, np.ndarray) else piece[0][piece[1]] for piece in blocks],
                               *layout) for blocks, layout in reads]
    return function(*windows, *extra, **kwargs)[trim_rows, trim_cols]
