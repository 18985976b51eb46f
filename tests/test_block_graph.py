"""Writers' graphs: blocks taken from the tasks that compute them, without the aliases of Dask's fusion."""

from __future__ import annotations

import functools

import dask
import dask.array as da
import numpy as np
from dask._task_spec import Alias

from gmsdask.io.block_graph import block_keys, optimized_graph, window_tasks


def test_block_keys_leave_no_alias_and_give_the_same_blocks() -> None:
    values = np.arange(64.0).reshape(8, 8)
    source = da.from_array(values, chunks=4)
    scaled = ((source + 1) * 2).astype(np.float32)
    # the fusion keeps each output block as an alias of its fused task: a task of its own on a cluster
    assert sum(isinstance(task, Alias) for task in optimized_graph([scaled]).values()) == 4
    graph, keys = block_keys([scaled])
    assert not any(isinstance(task, Alias) for task in graph.values())
    assert len(keys) == 1 and len(keys[0]) == 2 and len(keys[0][0]) == 2
    (blocks,) = dask.get(graph, keys)
    np.testing.assert_array_equal(np.block([list(row) for row in blocks]), ((values + 1) * 2).astype(np.float32))


def test_a_task_that_read_an_alias_reads_its_target() -> None:
    """An alias read by another output (here a shared intermediate) is replaced in that task, not left dangling."""
    source = da.from_array(np.ones((4, 4)), chunks=2)
    intermediate = source + 1
    total = intermediate.sum(axis=0)
    graph, keys = block_keys([intermediate, total])
    assert not any(isinstance(task, Alias) for task in graph.values())
    np.testing.assert_array_equal(np.concatenate(dask.get(graph, keys[1])), [8.0, 8.0, 8.0, 8.0])


def test_window_tasks_give_each_write_the_blocks_at_its_index() -> None:
    values = np.arange(36.0).reshape(6, 6)
    first, second = ((da.from_array(values, chunks=3) + 1) * 2), da.from_array(-values, chunks=3)
    seen = {}

    def write(index, parts):
        seen[index] = parts
        return index

    writes = [((i, j), functools.partial(write, (i, j))) for i in range(2) for j in range(2)]
    tasks = window_tasks([first, second], writes, "test-window")
    assert [task.key[1:] for task in tasks] == [index for index, _write in writes]
    assert not any(isinstance(task, Alias) for task in tasks[0].__dask_graph__().values())
    assert dask.compute(*tasks, scheduler="sync") == tuple(index for index, _write in writes)
    np.testing.assert_array_equal(seen[(1, 0)][0], (values[3:, :3] + 1) * 2)
    np.testing.assert_array_equal(seen[(1, 0)][1], -values[3:, :3])
