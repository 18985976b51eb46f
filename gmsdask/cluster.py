"""Which Dask cluster executes a job: the current client, a scheduler address, or a new LocalCluster."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from distributed import Client, LocalCluster

from .config import JobConfig

__all__ = ["job_client"]


def _current_client() -> Client | None:
    try:
        from distributed import get_client

        return get_client()
    except ValueError:
        return None


@contextlib.contextmanager
def job_client(cfg: JobConfig, logger: logging.Logger | None = None) -> Iterator[Client]:
    """A ``distributed.Client`` for one job; closes only what it started.

    Order: the client the user already has; else ``cfg.scheduler_address``; else a ``LocalCluster`` with
    ``cfg.CPUs`` single-threaded worker processes (default: all cores) and ``cfg.memory_limit_per_worker``.
    """
    log = logger or logging.getLogger(__name__)
    existing = _current_client()
    if existing is not None:
        log.info("using the current Dask client %s (dashboard: %s)", existing.scheduler.address,
                 existing.dashboard_link)
        yield existing
        return
    if cfg.scheduler_address:
        with Client(cfg.scheduler_address, set_as_default=False) as client:
            log.info("connected to Dask scheduler %s (dashboard: %s)", cfg.scheduler_address, client.dashboard_link)
            yield client
        return
    workers = cfg.CPUs or os.cpu_count() or 1
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                      memory_limit=cfg.memory_limit_per_worker, silence_logs=logging.WARNING) as cluster, \
            Client(cluster, set_as_default=False) as client:
        log.info("started a LocalCluster with %d workers (dashboard: %s)", workers, client.dashboard_link)
        yield client
