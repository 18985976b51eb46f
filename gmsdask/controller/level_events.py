"""Which scenes of a job have reached which level, seen by the client and by every scene task of the job.

A level that needs another scene of the job (L1B's reference) waits until that scene has completed the level's
``reference_level``. Scenes whose chains the client builds announce their levels in the client's process;
a scene task on a worker used to be submitted only once its references had reached every level it would wait
for, and announced its own levels when it ended. That is right for small scenes, but for a job of whole scenes
side by side (``whole_scene_task_max_mb``) it ran a reference's whole chain before any scene that needs it
could start: 4 quarter tiles on 2 workers took 159 s, one worker idle for the first 53 s.

Here the announcements are ``distributed.Event`` s named after the job run, the scene and the level, set by
whoever completes the level (the client or a scene task) and waited for where the level runs. A scene task that
waits leaves its worker's thread pool while it does (``secede``), so the worker runs other tasks meanwhile, the
reference's among them: with single-threaded workers a waiting task would otherwise hold the only thread its
reference needs.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from distributed import Client, Event, rejoin, secede
from distributed.worker import get_worker

__all__ = ["SharedLevels"]

#: Seconds between looks at the job's stop flag while waiting for a level.
_POLL_S = 0.2
#: Pseudo-level announced by a scene task as it starts.
STARTED = "(task started)"


@dataclass(frozen=True)
class SharedLevels:
    """The level announcements of one job run: ``distributed.Event`` s named ``<prefix>-<scene id>-<level>``."""

    prefix: str

    def _event(self, scene_id: int, level: str, client: Client | None) -> Event:
        # on a worker (client None) the event binds the worker's own client, in the task's thread
        return Event(f"{self.prefix}-{scene_id}-{level}", client=client)

    def announce(self, scene_id: int, levels: list[str], client: Client | None) -> None:
        """Scene ``scene_id`` completed (or will never run) ``levels``."""
        for level in levels:
            self._event(scene_id, level, client).set()

    def task_started(self, scene_id: int) -> None:
        """Called by the task of scene ``scene_id`` on a worker as it starts."""
        self._event(scene_id, STARTED, None).set()

    def wait(self, scene_id: int, level: str, client: Client | None, cancel: threading.Event) -> bool:
        """Waits until scene ``scene_id`` has reached ``level``; False when ``cancel`` was set first. In a task
        on a worker the wait leaves the worker's thread to other tasks, unless the scene waited for runs as a task
        already (then on another worker: it needs no thread of this one). A seceded task resumes only when a task
        of its worker ends, so leaving the thread for a short wait would delay it by a whole scene."""
        event = self._event(scene_id, level, client)
        running = self._event(scene_id, STARTED, client).is_set()
        with contextlib.nullcontext() if running else _seceded():
            while not event.wait(timeout=_POLL_S):
                if cancel.is_set():
                    return False
        return True


@contextlib.contextmanager
def _seceded() -> Iterator[None]:
    """Out of the worker's thread pool for the block when running in a task on a worker; else nothing."""
    try:
        get_worker()
    except ValueError:  # the client, or a scene task run in-process by a test
        yield
        return
    secede()
    try:
        yield
    finally:
        rejoin()
