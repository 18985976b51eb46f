"""Writers' graphs: blocks taken from the tasks that compute them, without the aliases of Dask's fusion."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
from dask._task_spec import Alias

from gmsdask.io.block_graph import block_keys, optimized_graph


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
