"""Pixel windows of Dask arrays read by hand-built tasks: the blocks under a window, cut and stitched.

A task that needs ``data[rows, cols]`` of a chunked array (a warp's source window, a tie point block's matching
windows) names the blocks under the window; :func:`gmsdask.algorithms.warp.assemble_window` stitches them. Built
by hand because ``dask.array``'s slicing, rechunking and ``overlap`` make a window from several layers of small
tasks (split, merge, getitem, concatenate: ~25 per window), each a scheduler round trip of its own.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

__all__ = ["window_blocks"]


def window_blocks(data: da.Array, rows: slice, cols: slice, layer: dict, part_key: tuple
                  ) -> tuple[list[tuple], int, slice, slice]:
    """The block keys whose blocks, stitched by ``assemble_window(blocks, n_block_cols, inner_rows,
    inner_cols)``, are ``data[rows, cols]`` (2-D, pixel slices with steps of 1); returned as ``(keys,
    n_block_cols, inner_rows, inner_cols)``.

    A block the window covers whole is named as it is. The part of a block the window covers in part is a task
    of its own, added to ``layer`` under ``part_key + (n,)``, that copies the part out: a view would keep the
    whole block (or what the block is a view of, e.g. L1C's two-layer blocks) in memory for as long as the
    window's task waits for its other parts, and the copy lets the block go once its parts are cut. The tasks
    that read ``keys`` belong to a layer that depends on ``data``."""
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
