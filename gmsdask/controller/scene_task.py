"""Small scenes as one Dask task each: the scene's whole chain (every level's graph, built and computed) runs on a
worker, and the client only submits the task and records what it returns.

Why: building a level's lazy graph costs the client the same whatever the scene's size (xarray and Dask graph
construction, level products, catalogue calls: about 1 s of client CPU per scene for six levels). For a small
scene that is more than its pixel work, so a job of many small scenes was bound by the client's one Python
thread (29 % of a 100-scene run) while the workers waited. As one task, the building runs on the workers, in
parallel, and a small scene's pixel work runs there with Dask's synchronous scheduler (no graph to ship, no
scheduler round trips). Large scenes keep the client-built graph, their chunks spread over every worker, unless
the job has at least as many scenes as workers: then products up to ``whole_scene_task_max_mb`` run as tasks too,
whole scenes side by side, and wait for their references inside (:mod:`.level_events`).

What stays as it was: only the client writes the catalogue and the job log (the task records its catalogue
calls, level events and log lines, and the client replays them in order); a scene's failure is recorded with its
level, exception and traceback; a task is retried ``retries`` times, also after a lost worker (a rerun of the
chain is safe: level products are swapped into place and a scene's cube slot is rewritten, never appended twice);
``stop()`` reaches a running task through a ``distributed.Event`` within a second, and the task's chain then stops
at its next cancellation check (a cube write is never committed after a stop).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
from distributed import Client, Event

from ..catalog import ErrorReport, LevelRecord, SceneRecord
from ..config import JobConfig
from ..io.cube_storage import quiet_handled_icechunk_warnings
from ..levels import LevelRegistry
from .level_events import SharedLevels

__all__ = ["SceneTask", "SceneTaskReport", "run_scene_task", "product_megabytes", "workers_outside"]

#: Seconds between the worker's looks at the job's stop event (it also wakes at once when the event is set).
_STOP_POLL_S = 1.0


@dataclass(frozen=True)
class SceneTask:
    """Everything a worker needs to run one scene's chain; picklable."""

    job_id: int
    config: JobConfig
    registry: LevelRegistry
    record: SceneRecord
    target: str
    references: tuple[tuple[str, SceneRecord], ...]
    #: the scene's level states when the task was submitted (the chain's only catalogue read)
    level_records: tuple[LevelRecord, ...]
    #: name of the ``distributed.Event`` the client sets when the job is stopped
    stop_event: str
    #: the job's shared level announcements: the task waits for its references inside and announces its levels
    #: as it completes them; None: its references were complete when it was submitted
    shared_levels: SharedLevels | None = None
    #: the job's scenes (a reference outside the job is complete already)
    job_scene_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class SceneTaskReport:
    """What a scene task did: its result and, in order, what the client has to record and log."""

    result: Any  # SceneResult (typed loosely: scene_chain imports this module)
    #: ``("catalog", method, args, kwargs)``, ``("level", args, kwargs)`` (the chain's ``on_level``) and
    #: ``("log", levelno, message)``
    events: tuple[tuple, ...] = ()


@dataclass
class _RecordingCatalog:
    """The catalogue as a scene chain on a worker sees it: its level states as submitted, writes recorded."""

    records: tuple[LevelRecord, ...]
    events: list[tuple] = field(default_factory=list)

    def level_records(self, job_id: int, scene_id: int | None = None) -> list[LevelRecord]:
        return list(self.records)

    def record_level(self, *args: Any, error: BaseException | ErrorReport | None = None, **kwargs: Any) -> None:
        if error is not None:
            kwargs["error"] = ErrorReport.of(error)  # text: whatever the exception's class pickles like
        self.events.append(("catalog", "record_level", args, kwargs))

    def record_tile(self, *args: Any, **kwargs: Any) -> None:
        self.events.append(("catalog", "record_tile", args, kwargs))


class _EventLog(logging.Handler):
    """Keeps a chain's log lines (formatted, with their level) for the client's job log."""

    def __init__(self, events: list[tuple]) -> None:
        super().__init__()
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(("log", record.levelno, record.getMessage()))


_sync_lock = threading.Lock()
_sync_users = [0, None]  # [tasks inside, the scheduler setting they replaced]


@contextmanager
def _synchronous_dask() -> Iterator[None]:
    """Dask's synchronous scheduler for every ``compute`` of the scene task's thread.

    The levels compute small things on "the current scheduler" (tie points, aerosol sums, cube windows); inside a
    worker that would be the cluster, and a task that waits for other tasks can starve a one-thread worker. Dask's
    scheduler setting is process-wide, so tasks running at once in one worker process share one setting, counted
    here (module state, per worker process, on purpose: ``dask.config.set`` restores per call and would hand a
    still-running task the cluster when another task ends first).
    """
    with _sync_lock:
        if _sync_users[0] == 0:
            _sync_users[1] = dask.config.get("scheduler", None)
            dask.config.set(scheduler="sync")
        _sync_users[0] += 1
    try:
        yield
    finally:
        with _sync_lock:
            _sync_users[0] -= 1
            if _sync_users[0] == 0:
                dask.config.set(scheduler=_sync_users[1])


@contextmanager
def _stop_watcher(name: str, stop: threading.Event) -> Iterator[None]:
    """Sets ``stop`` when the client sets the job's ``distributed.Event`` ``name``."""
    event = Event(name)
    if event.client is None:  # bound here, in the task's thread: the watcher's own thread finds no worker client
        yield  # not on a worker (a test runs the task in-process): nothing to watch
        return
    done = threading.Event()

    def watch() -> None:
        try:
            while not done.is_set():
                if event.wait(timeout=_STOP_POLL_S):
                    stop.set()
                    return
        except Exception:  # noqa: BLE001 - the scheduler went away: the task's result has nowhere to go anyway
            return

    watcher = threading.Thread(target=watch, name=f"stop-watch-{name}", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()


def run_scene_task(task: SceneTask) -> SceneTaskReport:
    """Run one scene's chain in this process (on a worker): the function a scene task executes."""
    from .scene_chain import SceneChain  # scene_chain submits this function

    quiet_handled_icechunk_warnings()
    events: list[tuple] = []
    catalog = _RecordingCatalog(task.level_records, events)
    logger = logging.getLogger(f"gmsdask.job.{task.job_id}.scene.{task.record.id}.{uuid.uuid4().hex[:6]}")
    logger.setLevel(task.config.log_level)
    logger.propagate = False
    handler = _EventLog(events)
    logger.addHandler(handler)
    stop = threading.Event()

    def on_level(*args: Any, **kwargs: Any) -> None:
        events.append(("level", args, kwargs))

    chain = SceneChain(task.job_id, task.config, task.registry, catalog, client=None,  # type: ignore[arg-type]
                       logger=logger, cancel=stop, references={task.record.id: task.references},
                       on_level=on_level, shared_levels=task.shared_levels)
    try:
        # the watcher first: binding its event may create the worker's client, which makes itself the process's
        # Dask scheduler
        with _stop_watcher(task.stop_event, stop), _synchronous_dask():
            if task.shared_levels is not None:
                task.shared_levels.task_started(task.record.id)
            result = chain.run(task.record, task.target,
                               set(task.job_scene_ids) if task.shared_levels is not None else {task.record.id})
    finally:
        logger.removeHandler(handler)
        logging.Logger.manager.loggerDict.pop(logger.name, None)  # one logger per task: do not keep them all
    return SceneTaskReport(result, tuple(events))


def replay(report: SceneTaskReport, catalog: Any, logger: logging.Logger,
           on_level: Callable[..., None]) -> None:
    """Record a scene task's catalogue writes, level events and log lines on the client, in their order."""
    for event in report.events:
        if event[0] == "catalog":
            _, method, args, kwargs = event
            getattr(catalog, method)(*args, **kwargs)
        elif event[0] == "level":
            on_level(*event[1], **event[2])
        else:
            logger.log(event[1], "%s", event[2])


def product_megabytes(path: str | os.PathLike[str]) -> float:
    """Size on disk of a product (an archive file, or every file of a product folder), in MB (1e6 bytes)."""
    root = Path(path)
    if root.is_file():
        return root.stat().st_size / 1e6
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except OSError:  # a broken link: L1A names the problem when it reads the product
                continue
    return total / 1e6


def workers_outside(client: Client) -> bool:
    """Whether every worker of ``client``'s cluster runs in another process than this one. Scene tasks need it:
    an in-process worker shares this process's Dask scheduler setting, which the job sets to the cluster."""
    try:
        pids = client.run(os.getpid)
    except Exception:  # noqa: BLE001 - a cluster that cannot run a function here gets client-built graphs
        return False
    return bool(pids) and os.getpid() not in set(pids.values())


def stop_event_name(job_id: int) -> str:
    """A unique name for one run's stop event."""
    return f"gmsdask-job-{job_id}-stop-{uuid.uuid4().hex}"
