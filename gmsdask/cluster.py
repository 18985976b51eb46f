"""Which Dask cluster executes a job: the current client, a scheduler address, or a new LocalCluster."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import dask
from distributed import Client, LocalCluster

from .config import JobConfig

__all__ = ["WORKER_CONFIG", "WORKER_ENVIRONMENT", "job_client", "worker_environment"]

#: Environment variables of the worker processes gmsdask starts, set before they spawn (glibc reads them once, at
#: start-up). ``distributed`` sets ``MALLOC_TRIM_THRESHOLD_``, and setting any of glibc's malloc thresholds also
#: freezes its mmap threshold at 128 KiB: every array above that is then a fresh ``mmap``, whose pages the kernel
#: faults in and zeroes when they are first written, and which is unmapped again when freed. A chain allocates
#: and frees blocks and temporaries of 1-12 MiB by the thousand (a 20 m Fmask block, a 30 m L2A block), so a
#: quarter of the workers' CPU time went to the kernel. Below 12 MiB they now come from the heap and are reused;
#: larger ones (a 2048 x 2048 float32 block is 16 MiB) stay mapped, which keeps the retained heap, and so the
#: resident memory, in bounds. Measured on the benchmark's whole synthetic tile (2 workers, 2026-11-29): job
#: 209.4 -> 164.3 s, worker system CPU 95.4 -> 33.3 s, peak worker memory 1427 -> 1645 MiB (32 MiB gave 166.2 s
#: and 1759 MiB, 4 MiB most of the gain on a quarter tile: 59.5 -> 50.4 s, against 47.4 s with 12 MiB).
#:
#: ``ZARR_THREADING__MAX_WORKERS=1``: one worker is one core, as for GDAL's decoding (``gmsdask.io.raster``) and
#: ``distributed``'s ``OMP_NUM_THREADS=1``. Zarr compresses and decompresses in a pool of its own (up to 6 threads
#: on 2 cores), so a worker also ran codecs on the cores of the others: a worker alone on the benchmark's 2 cores used
#: 1.06 of them (211.6 CPU s in 199.5 s, 4 quarter tiles), and two workers each fought the other for its core.
#: Measured 2026-11-30 (4 quarter tiles, 2 workers, two pairs): 110.2 and 112.8 s with one codec thread against
#: 114.0 and 114.3 s; the whole tile 126.7 s (126.9 s), the Landsat scene 193.3 s (199.9 s in the bench before).
#: A lone worker on an idle machine is slower without the pool (203.8 s in `make bench`, 218.8 s in one run, against
#: 197-201 s): it no longer borrows the idle core. Run as many workers as cores.
#:
#: ``MALLOC_ARENA_MAX=1``: one malloc heap per worker process. glibc gives threads that allocate at once heaps of
#: their own (up to 8 per core), and a worker has several that do: its task thread, Zarr's codec thread, Icechunk's
#: Tokio threads, the event loop. Memory freed in one heap is not reused by a thread of another, so each kept its
#: own high-water mark, and large buffers were mapped and faulted in again. One worker computes one task at a time,
#: so the heaps' lock is barely contended. Measured 2026-11-30 (2 workers, one run each, against the default):
#: the Landsat scene 171.3 s against 188.2 and 189.2 s (worker system CPU 61 s against 79 and 89 s; its cube
#: windows 60 s of task time against 83-89 s); 4 quarter tiles 105.3 s against 108.3 s; the whole tile's peak
#: worker memory 917-919 MiB against 982-987 MiB, the quarter tile's 739-761 MiB against 813-864 MiB, as fast.
WORKER_ENVIRONMENT: dict[str, str] = {"MALLOC_MMAP_THRESHOLD_": str(12 * 2**20), "MALLOC_ARENA_MAX": "1",
                                      "ZARR_THREADING__MAX_WORKERS": "1"}

#: Dask configuration of the worker processes gmsdask starts (a nanny hands its configuration to its worker).
#:
#: ``distributed.worker.profile.interval`` 100 ms instead of 10 ms: a worker samples its task thread's Python stack
#: for the statistical profile (the dashboard's profile page, ``Client.profile``, performance reports) on its
#: event loop, and at 10 ms that took ~2.5 % of its CPU. A lone worker on a machine with a core to spare pays it
#: there; with as many workers as cores it comes out of the tasks. Measured 2026-12-01 (4 quarter tiles, 2
#: workers, two pairs): the workers' event loops 3.7 and 4.2 s of CPU against 6.3 and 6.2 s, the workers' CPU
#: 191.4 and 194.8 s against 197.0 and 200.5 s, the job 101.4 and 105.8 s against 105.2 and 108.4 s. Ten
#: samples a second per worker still give a job of minutes thousands of samples (the benchmarks' per-level
#: shares come from them).
WORKER_CONFIG: dict[str, str] = {"distributed.worker.profile.interval": "100ms"}


def worker_environment() -> contextlib.AbstractContextManager:
    """Dask configuration under which a ``LocalCluster`` (or ``Nanny``) created inside starts its worker processes
    with :data:`WORKER_ENVIRONMENT` (beside ``distributed``'s own ``pre-spawn-environ``) and :data:`WORKER_CONFIG`.
    Workers restarted later by their nanny keep both."""
    return dask.config.set({f"distributed.nanny.pre-spawn-environ.{name}": value
                            for name, value in WORKER_ENVIRONMENT.items()} | WORKER_CONFIG)


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
    with worker_environment():  # read when the nannies are made, here; the job itself runs outside it
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                               memory_limit=cfg.memory_limit_per_worker, silence_logs=logging.WARNING)
    with cluster, Client(cluster, set_as_default=False) as client:
        log.info("started a LocalCluster with %d workers (dashboard: %s)", workers, client.dashboard_link)
        yield client
