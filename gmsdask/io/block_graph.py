"""Dask graphs of writers: the tasks that store blocks, built by hand over the arrays' optimized graph.

Dask's blockwise fusion names a fused layer anew and keeps each output key as an ``Alias`` task pointing to the
fused one. The distributed scheduler runs every alias as a task of its own: for a writer that stores each block of
~40 variables, one extra scheduler round trip per variable and chunk (a quarter of a scene's tasks through L2B).
The writers here (:func:`window_tasks` for the cube writers, and the level products) take the blocks from the fused
keys directly and drop the aliases (every task reads the fused key instead). Dask has no public API for this; ``dask._task_spec`` has the types the fusion emits (dask >= 2024.12).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

import dask.array as da
from dask._task_spec import Alias, DataNode, GraphNode, List, Task, TaskRef
from dask.array.optimization import optimize as optimize_array_graph
from dask.core import flatten, get_dependencies
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

__all__ = ["optimized_graph", "block_keys", "window_tasks", "DeferredBlock", "materialized"]


def optimized_graph(arrays: list[da.Array]) -> dict:
    """The task graph of ``arrays`` optimized as one, as a plain dict holding every block key of ``arrays``.

    Optimized one by one (``to_delayed()``, or ``dask.optimize``), each variable's graph fuses its own copy of the
    upstream work the variables share (masks, angles, the atmosphere, the chain's reads), which then runs once per
    variable; optimized as one graph, a layer with several dependents is not fused into any of them and runs once.

    The optimization drops the keys of persisted arrays (their values are distributed futures); a task written by
    hand that names such a key must find it in the graph, or the key is passed to it as a literal tuple, so those
    keys are put back with their futures."""
    merged = HighLevelGraph.merge(*(a.__dask_graph__() for a in arrays))
    keys = [a.__dask_keys__() for a in arrays]
    graph = optimize_array_graph(merged, keys)
    dropped = [key for key in flatten(keys) if key not in graph]
    return {**graph, **{key: merged[key] for key in dropped}} if dropped else graph


def block_keys(arrays: list[da.Array]) -> tuple[dict, list[list]]:
    """The optimized graph of ``arrays`` without aliases and, per array, its block keys (nested lists as
    ``__dask_keys__``), each resolved to the task that computes it. Every task that read an alias reads its
    target instead. Tasks built on these keys must be added to the returned graph; the arrays' own output keys
    may be missing from it."""
    graph = optimized_graph(arrays)
    targets = {key: _alias_target(graph, key) for key, task in graph.items() if isinstance(task, Alias)}
    resolved = [_map_nested(lambda key: targets.get(key, key), a.__dask_keys__()) for a in arrays]
    if targets:
        graph = {key: task.substitute(targets) if isinstance(task, GraphNode) else task
                 for key, task in graph.items() if key not in targets}
    return graph, resolved


class DeferredBlock:
    """A block that its window's task reads when its write asks for it (:func:`materialized`): a read of stored
    data that :func:`window_tasks` moved into the window with ``deferred=True``. Read one by one, a window's ~40
    blocks are not all in memory at once: a cube window's task held ~300-350 MiB per worker, every block of its
    window, before its first write."""

    def __init__(self, read: Task) -> None:
        self._read = read

    def __call__(self) -> Any:
        return self._read()


def materialized(block: Any) -> Any:
    """``block`` itself, or its values read now where it is a :class:`DeferredBlock`."""
    return block() if isinstance(block, DeferredBlock) else block


def window_tasks(arrays: list[da.Array], writes: Iterable[tuple[tuple[int, ...], Callable[[list], Any]]],
                 name: str, *, deferred: bool = False) -> list[Delayed]:
    """One delayed task per ``(block index, write)`` of ``writes``: ``write`` called with the list of the blocks
    of ``arrays`` at that index (all arrays share one chunking), on the arrays' graph from :func:`block_keys`.
    Built by hand: one ``dask.delayed`` call per window would merge the whole upstream graph once per window and
    read each block through an alias task of its own. The tasks' keys are ``name`` with a fresh token.

    A block whose task depends on nothing (a read of stored data, as a level product read back in the windows'
    chunks) and that no other task needs is computed inside its window's task instead of as a task of its own
    (:func:`_inline_reads`); with ``deferred`` it reaches ``write`` as a :class:`DeferredBlock` that ``write``
    reads when it needs it (:func:`materialized`)."""
    graph, keys = block_keys(arrays)
    token = uuid.uuid4().hex
    tasks = []
    for index, write in writes:
        key = (f"{name}-{token}", *index)
        graph[key] = Task(key, write, List(*(TaskRef(functools.reduce(lambda nested, i: nested[i], index, of_array))
                                             for of_array in keys)))
        tasks.append(key)
    _inline_reads(graph, tasks, deferred)
    return [Delayed(key, graph) for key in tasks]


def _inline_reads(graph: dict, windows: list[Hashable], deferred: bool = False) -> None:
    """Moves into each of ``windows`` (keys of :class:`Task` s in ``graph``) the tasks it depends on that have no
    dependencies of their own and no other dependent, in place.

    Such a task is a root (Dask's scheduler starts roots as soon as a worker is free) whose result only its window
    consumes: a window of ~40 variables waits for all of them, so roots started early sit in memory until the last
    one is read, and reading a whole tile's product this way held 1-1.4 GB per worker (2026-11-30). Inside the
    window task they are read when the window is written, and the scheduler has ~40 fewer tasks per window."""
    dependents: dict[Hashable, int] = {}
    for task in graph.values():
        for dependency in (task.dependencies if isinstance(task, GraphNode) else get_dependencies(graph, task=task)):
            dependents[dependency] = dependents.get(dependency, 0) + 1
    for window in windows:
        task = graph[window]
        inline = {key: graph[key] for key in task.dependencies
                  if dependents.get(key) == 1 and isinstance(graph.get(key), Task) and not graph[key].dependencies}
        if inline:
            graph[window] = task.substitute({key: DataNode(None, DeferredBlock(read)) for key, read in inline.items()}
                                            if deferred else inline)
            for key in inline:
                del graph[key]


def _alias_target(graph: Mapping, key: Hashable) -> Hashable:
    seen = set()
    while isinstance(task := graph.get(key), Alias) and key not in seen:
        seen.add(key)
        key = task.target
    return key


def _map_nested(function, nested):
    return [_map_nested(function, item) for item in nested] if isinstance(nested, list) else function(nested)
