"""Writers' graphs: blocks taken from the tasks that compute them, without the aliases of Dask's fusion."""

from __future__ import annotations

import functools

import dask
import dask.array as da
import numpy as np
from dask._task_spec import Alias

from gmsdask.io.block_graph import DeferredBlock, block_keys, materialized, optimized_graph, window_tasks


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


def _stored_arrays(tmp_path) -> tuple[np.ndarray, list[da.Array]]:
    """Two 8 x 8 Zarr arrays of the same values, read as Dask arrays of 4 x 4 blocks (each read a root task)."""
    import zarr

    values = np.arange(64, dtype=np.float32).reshape(8, 8)
    stored = []
    for name in ("a", "b"):
        array = zarr.open_array(str(tmp_path / f"{name}.zarr"), mode="w", shape=(8, 8), chunks=(4, 4), dtype="f4")
        array[:] = values
        stored.append(da.from_array(array, chunks=4, inline_array=True))
    return values, stored


def test_reads_only_a_window_needs_run_inside_its_task(tmp_path) -> None:
    """Blocks read from storage (no dependencies) that one window alone consumes are read inside its task: no task
    of their own for the scheduler to start ahead of the window; a block other tasks need stays a task."""
    values, stored = _stored_arrays(tmp_path)
    own, shared = stored[0] * 2, stored[1] - 3
    also_needs_shared = shared.sum(axis=0)  # a second consumer of `shared`'s blocks
    writes = [((i, j), lambda parts: [float(part.sum()) for part in parts]) for i in range(2) for j in range(2)]
    tasks = window_tasks([own, shared], writes, "test-window")
    graph = dict(tasks[0].__dask_graph__())
    assert len(graph) == 4  # every block read inside its window
    got = dask.compute(*tasks, scheduler="sync")
    for (i, j), sums in zip([w[0] for w in writes], got):
        block = values[4 * i:4 * i + 4, 4 * j:4 * j + 4]
        assert sums == [float((block * 2).sum()), float((block - 3).sum())]
    # the shared blocks have two consumers when both are computed together: they stay tasks of their own
    both = window_tasks([own, shared, also_needs_shared[None, :].rechunk((1, 4))], [((0, j), writes[j][1])
                        for j in range(2)], "test-window")
    graph = dict(both[0].__dask_graph__())
    assert sum(key[0].startswith("test-window") for key in graph) == 2 and len(graph) > 2


def test_deferred_reads_reach_the_write_unread_and_are_read_one_at_a_time(tmp_path) -> None:
    """With ``deferred`` the window's own reads reach its write as ``DeferredBlock`` s, read when the write asks:
    a cube window then holds one of its ~40 variables at a time instead of all of them; a block computed by a
    task of its own still arrives as values."""
    values, stored = _stored_arrays(tmp_path)
    computed = da.from_array(values, chunks=2).rechunk(4) + 1  # merges of other tasks: a task of its own
    events = []

    def write(parts):
        assert [isinstance(part, DeferredBlock) for part in parts] == [True, True, False]
        sums = []
        for number, part in enumerate(parts):
            block = materialized(part)
            events.append(f"read {number}")
            sums.append(float(block.sum()))
        return sums

    tasks = window_tasks([stored[0] * 2, stored[1] - 3, computed], [((1, 1), write)], "test-window", deferred=True)
    (sums,) = dask.compute(*tasks, scheduler="sync")
    block = values[4:, 4:]
    assert sums == [float((block * 2).sum()), float((block - 3).sum()), float((block + 1).sum())]
    assert events == ["read 0", "read 1", "read 2"]
