"""The job's Dask client as the scheduler of everything a level computes, so that ``stop()`` reaches it all.

A level's ``work`` is computed by the controller, which cancels it when the job stops. A level's small eager steps
(L1B's matching windows, L1C's aerosol and water-vapour sums) call ``dask.compute`` themselves, on the scheduler
in ``dask.config``. With the bare client there, such a step waited for its tasks to the end even after a stop:
queued behind a long task on busy workers, a stop took as long as that task (seen in CI: 12 s for a stop during a
scene's cube write, while another scene's L1C sums waited for a worker).
:class:`StoppableClient` computes them as futures and cancels them as soon as the job is stopped.
"""

from __future__ import annotations

import threading
from typing import Any

from distributed import Client, futures_of

from ..errors import GmsdaskError

__all__ = ["Cancelled", "StoppableClient", "gather_or_cancel"]

#: Seconds between looks at the state of futures (a stop wakes the wait at once).
_POLL_S = 0.1


class Cancelled(GmsdaskError):
    """The job was stopped while this scene was in flight."""


def gather_or_cancel(client: Client, futures: Any, stopped: threading.Event, job_id: int) -> Any:
    """The results of ``futures`` (any structure of futures: a list, ``Client.get``'s packed keys), gathered once
    every one is done; cancels them and raises :class:`Cancelled` as soon as ``stopped`` is set. Looks only at the
    futures' own state: ``distributed.wait`` would need ``client`` to be the process's default client, which a
    job's client is not."""
    flat = futures_of(futures)
    while not all(future.done() for future in flat):
        if stopped.wait(_POLL_S):
            client.cancel(flat)
            raise Cancelled(f"job {job_id} was stopped")
    try:
        return client.gather(futures)
    except Exception:
        if stopped.is_set():  # stop() cancelled them from another thread between the wait and the gather
            raise Cancelled(f"job {job_id} was stopped") from None
        raise


class StoppableClient:
    """A job's ``distributed.Client`` as a Dask scheduler (``dask.config.set(scheduler=...)``): ``dask.compute``
    runs on the cluster with the job's ``retries`` and raises :class:`Cancelled` within a poll of the job's stop;
    ``persist`` and the client methods the cube writes use (``submit``, ``compute``, ``cancel``, ``gather``) are
    the client's, ``compute`` with the job's ``retries`` (the cube writer polls the stop flag itself)."""

    def __init__(self, client: Client, stopped: threading.Event, job_id: int, retries: int) -> None:
        self.client = client
        self._stopped = stopped
        self._job_id = job_id
        self._retries = retries

    def __call__(self, graph: Any, keys: Any, **kwargs: Any) -> Any:
        """Dask's scheduler protocol: the values of ``keys`` in ``graph``, in the structure of ``keys``."""
        kwargs.setdefault("retries", self._retries)
        return gather_or_cancel(self.client, self.client.get(graph, keys, sync=False, **kwargs), self._stopped,
                                self._job_id)

    # ``dask.persist`` calls the scheduler's ``persist`` when it has one: the results stay on the workers
    def persist(self, collections: Any, **kwargs: Any) -> Any:
        return self.client.persist(collections, **kwargs)

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        return self.client.submit(*args, **kwargs)

    def compute(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("retries", self._retries)  # the cube writer's chunk writes (each writes a fork: rerunnable)
        return self.client.compute(*args, **kwargs)

    def cancel(self, *args: Any, **kwargs: Any) -> Any:
        return self.client.cancel(*args, **kwargs)

    def gather(self, *args: Any, **kwargs: Any) -> Any:
        return self.client.gather(*args, **kwargs)
