"""Running one benchmark job on a fresh catalogue and measuring it: wall time, per-level worker time from Dask's
statistical profile, peak resident memory of each worker process, the client's CPU per scene and the time spent
in catalogue calls.

Per-level shares come from the profile, not from the levels' wall times: a lazy chain computes most of its
pixels in the level that writes (L2C), so wall times per level would say little. Every profiled sample is given
to the innermost gmsdask frame of a module that belongs to one level (``_LEVEL_OF_MODULE``); libraries count for
the gmsdask code that called them (GDAL's warps under L2A's resampling are L2A's), and for a fixed level
(``_LEVEL_OF_LIBRARY``) only where no gmsdask frame called them (Zarr reading a level product inside a Dask task
belongs to L2C, which reads it). Level products written under the exec flags are their level's work: only L2B
writes one by default, so ``gmsdask/io/scene_store`` counts for L2B; decoding a product read back
(``gmsdask/io/float32_decoding``) counts for L2C, which reads it. Samples with no such frame (Dask's own
bookkeeping, numpy called from Dask directly) count as ``other``.

Until 2026-11-29 libraries were matched like gmsdask modules, innermost first, so GDAL's warps (``/rasterio/``)
counted for L1A and the L2B product's compression (``/numcodecs/``) for L2C: a whole tile read L1A 72 %, L2A 0 %
and L2B 2 % of the worker time, where it reads 63 %, 8 % and 6 % now.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from distributed import Client, LocalCluster, performance_report

from gmsdask import set_config
from gmsdask.catalog import Catalog
from gmsdask.cluster import worker_environment
from gmsdask.controller import ProcessController

#: gmsdask module path fragments (as in a frame's file name) -> the level whose work they do; first match wins.
_LEVEL_OF_MODULE: tuple[tuple[str, str], ...] = (
    ("gmsdask/io/cube", "L2C"), ("gmsdask/levels/l2c", "L2C"),
    ("gmsdask/coregistration/", "L1B"), ("gmsdask/levels/l1b", "L1B"),
    ("gmsdask/atmosphere/", "L1C"), ("gmsdask/masks/", "L1C"), ("gmsdask/levels/l1c", "L1C"),
    ("gmsdask/geometry/", "L2A"), ("gmsdask/levels/l2a", "L2A"),
    ("gmsdask/spectral/", "L2B"), ("gmsdask/levels/l2b", "L2B"), ("gmsdask/io/scene_store", "L2B"),
    ("gmsdask/io/float32_decoding", "L2C"),  # decoding a level product or cube read back: L2C reads them
    ("gmsdask/io/", "L1A"), ("gmsdask/levels/l1a", "L1A"),
)
#: Library path fragments -> the level of a sample with no gmsdask level frame above them.
_LEVEL_OF_LIBRARY: tuple[tuple[str, str], ...] = (
    ("/zarr/", "L2C"), ("/icechunk/", "L2C"), ("/numcodecs/", "L2C"), ("/rasterio/", "L1A"),
)
LEVELS = ("L1A", "L1B", "L1C", "L2A", "L2B", "L2C", "other")
#: Catalogue methods the controller calls per scene (their time is the catalogue's per-scene overhead).
_CATALOG_CALLS = ("scene", "level_status", "level_records", "record_level", "record_tile", "tiles_written",
                  "claim_job", "finish_job", "update_statistics", "set_job_status", "failures", "job")


@dataclass
class JobRun:
    """What one job cost."""

    seconds: float
    scenes: int
    level_wall_s: dict[str, float]
    profile_share: dict[str, float]
    worker_peak_rss_mib: list[float]
    client_cpu_s: float
    #: CPU seconds of the whole client process during the run: the scene threads, the Dask client's event loop
    #: and, with a LocalCluster, the scheduler (it runs in the client's process)
    client_process_cpu_s: float
    catalog_s: float
    ingest_s: float
    task_s: float
    workers: int
    cubes: list[str] = field(default_factory=list)
    #: 6S runs L1C made in the job: 0 when its lookup tables were warm, as the chain figures assume
    sixs_runs: int = 0

    @property
    def utilization(self) -> float:
        """Share of the workers' wall time spent in tasks."""
        return self.task_s / (self.seconds * self.workers)


class _RssSampler:
    """Peak resident memory of each worker process, sampled every ``interval_s`` in a thread."""

    def __init__(self, pids: Sequence[int], interval_s: float = 0.05) -> None:
        self.processes = [psutil.Process(pid) for pid in pids]
        self.peak = {p.pid: 0 for p in self.processes}
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for process in self.processes:
                with contextlib.suppress(psutil.Error):
                    self.peak[process.pid] = max(self.peak[process.pid], process.memory_info().rss)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "_RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def _catalog_timer() -> Iterator[list[float]]:
    """Seconds spent in the catalogue's per-scene calls while the context is open (outermost calls only)."""
    total = [0.0]
    depth = threading.local()
    originals = {name: getattr(Catalog, name) for name in _CATALOG_CALLS if hasattr(Catalog, name)}

    def timed(method):
        @functools.wraps(method)
        def wrapper(*args, **kwargs):
            level = getattr(depth, "n", 0)
            depth.n = level + 1
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                depth.n = level
                if level == 0:
                    total[0] += time.perf_counter() - started
        return wrapper

    for name, method in originals.items():
        setattr(Catalog, name, timed(method))
    try:
        yield total
    finally:
        for name, method in originals.items():
            setattr(Catalog, name, method)


def _level_of(filename: str, table: tuple[tuple[str, str], ...] = _LEVEL_OF_MODULE) -> str | None:
    path = filename.replace(os.sep, "/")
    return next((level for fragment, level in table if fragment in path), None)


def profile_shares(profile: dict[str, Any]) -> dict[str, float]:
    """Share of the profiled worker samples per level (see the module doc)."""
    counts: Counter = Counter()

    def walk(node: dict[str, Any], owner: str) -> None:
        filename = str((node.get("description") or {}).get("filename", ""))
        owner = _level_of(filename) or (_level_of(filename, _LEVEL_OF_LIBRARY) if owner == "other" else None) or owner
        children = node.get("children", {}).values()
        own = node.get("count", 0) - sum(child.get("count", 0) for child in children)
        counts[owner] += max(own, 0)
        for child in children:
            walk(child, owner)

    walk(profile, "other")
    total = sum(counts.values()) or 1
    return {level: counts[level] / total for level in LEVELS}


@contextlib.contextmanager
def cluster(workers: int, *, processes: bool = True) -> Iterator[Client]:
    """A local cluster of ``workers`` single-threaded workers (processes: no shared GIL, as in production), whose
    processes start with the environment gmsdask gives the workers it starts itself."""
    with worker_environment():
        local = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes, dashboard_address=":0",
                             memory_limit=0, silence_logs=40)
    with local, Client(local) as client:
        yield client


def run_job(client: Client, products: Sequence[Path], folder: Path, *, reference: Path | None = None,
            report_html: Path | None = None, **options: Any) -> JobRun:
    """One job of ``products`` (``reference`` catalogued beside them, outside the job) through L2C."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = set_config(db_url=f"sqlite:///{folder / 'catalog.sqlite'}", path_procdata_MGRS=folder / "cubes",
                     path_procdata_scenes=folder / "scenes", path_job_logs=folder / "logs", **options)
    catalog = Catalog.from_config(cfg)
    started = time.perf_counter()
    scene_ids = catalog.add_products(list(products))
    if reference is not None:
        catalog.add_products([reference])
    ingest_s = time.perf_counter() - started
    job_id = catalog.create_job(scene_ids, cfg)
    pids = list(client.run(os.getpid).values())
    workers = len(pids)
    client.get_task_stream()  # starts the scheduler's task-stream plugin
    controller = ProcessController(job_id, db_url=cfg.db_url)
    report = performance_report(filename=str(report_html)) if report_html else contextlib.nullcontext()
    with _RssSampler(pids) as rss, _catalog_timer() as catalog_s, report:
        profile_start = time.time()
        started, process_cpu = time.perf_counter(), time.process_time()
        results = controller.run_all_processors()
        seconds, process_cpu = time.perf_counter() - started, time.process_time() - process_cpu
        profile = client.profile(start=profile_start)
        stream = client.get_task_stream(start=profile_start)
    if catalog.job(job_id).status != "finished":
        raise RuntimeError(f"benchmark job {job_id} in {folder}: {catalog.job(job_id).status}, "
                           f"{[(r.product_id, r.failed_level, r.message) for r in results if r.failed_level]}")
    level_wall = controller.timings.groupby("level")["seconds"].sum().to_dict()
    task_s = sum(stop - begin for task in stream for action in task.get("startstops", ())
                 if action.get("action") == "compute" for begin, stop in [(action["start"], action["stop"])])
    cubes = sorted({t.path for t in catalog.tiles_written(job_id)})
    sixs_runs = sum(int((record.facts or {}).get("sixs_runs", 0)) for record in catalog.level_records(job_id)
                    if record.level == "L1C")
    controller.shutdown()
    return JobRun(seconds=seconds, scenes=len(scene_ids), level_wall_s=dict(level_wall),
                  profile_share=profile_shares(profile), worker_peak_rss_mib=[v / 2**20 for v in rss.peak.values()],
                  client_cpu_s=sum(r.client_cpu_s for r in results), client_process_cpu_s=process_cpu,
                  catalog_s=catalog_s[0], ingest_s=ingest_s,
                  task_s=task_s, workers=workers, cubes=cubes, sixs_runs=sixs_runs)
