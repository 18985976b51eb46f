"""Windows of Dask arrays by hand-built tasks (gmsdask.io.block_windows)."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from gmsdask.algorithms.warp import assemble_window
from gmsdask.io.block_windows import map_neighbourhoods, window_blocks


@pytest.mark.parametrize("rows, cols", [(slice(0, 50), slice(0, 40)), (slice(45, 118), slice(3, 97)),
                                        (slice(50, 100), slice(40, 80)), (slice(99, 101), slice(0, 120))])
def test_window_blocks_stitch_to_the_window_and_name_whole_blocks_as_they_are(rows, cols):
    values = np.arange(150 * 120, dtype=np.float32).reshape(150, 120)
    data = da.from_array(values, chunks=((50, 50, 50), (40, 40, 40)))
    layer: dict = {}
    keys, n_block_cols, inner_rows, inner_cols = window_blocks(data, rows, cols, layer, ("part", 0))
    graph = {**dict(data.__dask_graph__()), **layer}
    blocks = [dask.get(graph, key) for key in keys]
    np.testing.assert_array_equal(assemble_window(blocks, n_block_cols, inner_rows, inner_cols), values[rows, cols])
    whole = [key for key in keys if key[0] == data.name]
    assert len(whole) + len(layer) == len(keys)  # every block is either named as it is or cut by a task
    assert all(dask.get(graph, key).shape == (50, 40) for key in whole)
    assert all(part.base is None for part in (dask.get(graph, key) for key in layer))  # copies, not views


def test_map_neighbourhoods_equals_map_overlap_without_boundary_in_one_task_per_block():
    rng = np.random.default_rng(3)
    first = rng.random((157, 131)).astype(np.float32)
    second = (rng.random((157, 131)) > 0.7)
    arrays = [da.from_array(first, chunks=(40, 50)), da.from_array(second, chunks=(40, 50))]
    offset = da.from_array(np.array(0.25))  # a 0-d statistic, as Fmask's scene statistics

    def neighbourhood(values: np.ndarray, mask: np.ndarray, shift: np.ndarray, *, size: int) -> np.ndarray:
        # depends on pixels up to size // 2 away, and on where the window ends (the array's edges)
        return ndimage.maximum_filter(np.where(mask, values, 0.0), size=size, mode="nearest") + shift.item()

    out = map_neighbourhoods(neighbourhood, arrays, 3, extra=(offset,), dtype=np.dtype(np.float32),
                             name="test-neighbourhood", size=7)
    expected = da.map_overlap(lambda v, m: neighbourhood(v, m, np.array(0.25), size=7), *arrays, depth=3,
                              boundary="none", dtype=np.float32)
    np.testing.assert_array_equal(out.compute(), expected.compute())
    np.testing.assert_array_equal(out.compute(), neighbourhood(first, second, np.array(0.25), size=7))
    layer = dict(out.__dask_graph__().layers[out.name])
    blocks = [key for key in layer if key[0] == out.name]
    assert len(blocks) == out.npartitions == 12
    assert len(layer) - len(blocks) <= 8 * 2 * len(blocks)  # the parts of the eight neighbours, per array


def test_map_neighbourhoods_refuses_arrays_of_different_chunkings():
    with pytest.raises(ValueError, match="one chunking"):
        map_neighbourhoods(lambda a, b: a, [da.zeros((10, 10), chunks=5), da.zeros((10, 10), chunks=4)], 1,
                           dtype=np.dtype(np.float64), name="x")
