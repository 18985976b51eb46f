"""The catalogue's per-scene overhead (issue 13: < 50 ms per scene), without any pixel work.

``python -m benchmarks catalog [--scenes N] [--threads T] [--busy B] [--repeat R] [--postgres] [--profile FILE]``

Replays on a fresh catalogue the calls :class:`gmsdask.controller.ProcessController` makes for a job of ``N``
scenes up to L2C (``_run`` and ``SceneChain``): per job ``job``, ``claim_job``, ``scene`` of every scene,
``scenes(tile=...)`` of every tile (reference planning); per scene ``level_status`` and ``level_records``,
per level ``record_level`` running, then done (with version, note and facts), ``record_tile`` for every tile
at L2C; then ``update_statistics``, ``finish_job``, ``tiles_written`` and ``job``. Scenes run in ``T`` threads
as the controller's scene threads do (two per worker). ``B`` busy threads burn pure-Python CPU meanwhile, as
the client's graph building does during a real job: a catalogue call that gives up the GIL for each of its
SQL statements then waits for a busy thread at every one of them (CPython's switch interval is 5 ms), so its
cost under load grows with its number of statements, which a quiet run hides.

The figure is the one of ``benchmarks/jobs.py`` (``catalogue_ms_per_scene``): wall milliseconds spent in the
controller's catalogue calls (outermost calls only, ``_CATALOG_CALLS``), divided by the number of scenes;
also per method, and the number of SQL statements (and of explicit ``BEGIN``) per scene. Adding the scenes and creating the
job are reported apart (``ingest``). Each setting runs ``R`` times on new catalogues and the median run is
reported (with every run's figure). Results go to ``benchmarks/results/catalog.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import pstats
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from gmsdask.catalog import Catalog
from gmsdask.config import LEVELS, JobConfig

from .common import report
from .jobs import _CATALOG_CALLS

#: Methods timed besides the controller's per-scene calls (reported, not part of the figure).
_OTHER_CALLS = ("add_scene", "create_job", "scenes", "heartbeat")
#: MGRS tiles every fake scene touches (a small Sentinel-2 scene near a tile edge touches two).
_TILES_PER_SCENE = 2
_TILE_NAMES = ("32UMU", "32UNU", "32UMV", "32UNV", "33UUP", "33UUQ")


def fake_attrs(index: int) -> dict[str, Any]:
    """Root attrs of a small Sentinel-2 L1C scene (docs/scene-model.md), as ``open_scene`` gives them."""
    day = datetime(2024, 6, 1, 10, 30, tzinfo=UTC) + timedelta(days=index)
    tile = _TILE_NAMES[index % len(_TILE_NAMES)]
    product_id = f"S2A_MSIL1C_{day:%Y%m%dT%H%M%S}_N0510_R022_T{tile}_{day:%Y%m%dT%H%M%S}"
    return {"product_id": product_id, "product_path": f"/archive/{product_id}.SAFE", "platform": "SENTINEL2A",
            "sensor": "MSI", "processing_level": "L1C", "acquisition_time": day.isoformat(),
            "cloud_cover_pct": float(index % 50), "mgrs_tile": tile,
            "footprint": "POLYGON ((9 47, 10.4 47, 10.4 48, 9 48, 9 47))"}


def scene_tiles(index: int) -> list[str]:
    """The tiles of fake scene ``index``: its own and the next one."""
    return [_TILE_NAMES[(index + k) % len(_TILE_NAMES)] for k in range(_TILES_PER_SCENE)]


class CallTimer:
    """Wall seconds and call counts of a catalogue's methods (outermost calls of each thread only), and the SQL
    statements (and explicit BEGINs) its engine runs."""

    def __init__(self, catalog: Catalog, names: tuple[str, ...]) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self.statements = 0
        #: explicit transactions (``BEGIN`` sent through the driver: SQLite; PostgreSQL's drivers begin implicitly)
        self.begins = 0
        self._catalog, self._names = catalog, names
        self._depth = threading.local()
        self._lock = threading.Lock()

    def _wrap(self, name: str, method: Any) -> Any:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            level = getattr(self._depth, "n", 0)
            self._depth.n = level + 1
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._depth.n = level
                if level == 0:
                    with self._lock:
                        self.seconds[name] += time.perf_counter() - started
                        self.calls[name] += 1
        return timed

    def _count_statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        with self._lock:
            self.statements += 1
            self.begins += statement.lstrip().upper().startswith("BEGIN")

    @contextlib.contextmanager
    def timing(self) -> Iterator[CallTimer]:
        """Time the methods (instance attributes shadow the class's) and count statements while open."""
        engine = self._catalog._engine
        for name in self._names:
            setattr(self._catalog, name, self._wrap(name, getattr(self._catalog, name)))
        event.listen(engine, "before_cursor_execute", self._count_statement)
        try:
            yield self
        finally:
            event.remove(engine, "before_cursor_execute", self._count_statement)
            for name in self._names:
                delattr(self._catalog, name)


def _busy(stop: threading.Event) -> None:
    """Pure-Python CPU work holding the GIL between switch intervals, as building Dask graphs does."""
    total = 0
    while not stop.is_set():
        for value in range(2000):
            total += value * value


def _run_scene(catalog: Catalog, job_id: int, scene_id: int, index: int) -> None:
    """One scene's calls in ``SceneChain._run_chain`` / ``_run_level``, L1A..L2C all done."""
    catalog.level_status(job_id, scene_id)
    catalog.level_records(job_id, scene_id)
    for level in LEVELS:
        catalog.record_level(job_id, scene_id, level, "running")
        if level == LEVELS[-1]:
            for tile in scene_tiles(index):
                catalog.record_tile(job_id, tile, "MSI_30m", f"/cubes/{tile}.icechunk", scene_id)
        catalog.record_level(job_id, scene_id, level, "done", output=f"/scenes/{scene_id}/{level}.zarr",
                             note="", version="1.0", facts={"shift_x_m": 1.5, "reliability": 0.9} if level == "L1B"
                             else {})


def replay_job(catalog: Catalog, n_scenes: int, *, threads: int = 4) -> tuple[list[int], int]:
    """Catalogue ``n_scenes`` fake scenes, create their job and run the controller's calls; (scene ids, job id)."""
    scene_ids = [catalog.add_scene(fake_attrs(i), scene_tiles(i)) for i in range(n_scenes)]
    job_id = catalog.create_job(scene_ids, JobConfig())
    catalog.job(job_id)                                   # ProcessController.DB_job_record in _run
    catalog.claim_job(job_id)
    records = [catalog.scene(scene_id) for scene_id in scene_ids]
    for tile in sorted({tile for record in records for tile in record.mgrs_tiles}):
        catalog.scenes(tile=tile)                         # plan_references: the catalogue's neighbours
    if threads == 1:     # in this thread: a profile sees it
        for index, scene_id in enumerate(scene_ids):
            _run_scene(catalog, job_id, scene_id, index)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda item: _run_scene(catalog, job_id, item[1], item[0]), enumerate(scene_ids)))
    catalog.heartbeat(job_id)
    catalog.update_statistics(job_id)
    status = catalog.finish_job(job_id)
    if status != "finished":
        raise RuntimeError(f"replayed job {job_id} ended {status}")
    catalog.tiles_written(job_id)
    catalog.job(job_id)
    return scene_ids, job_id


def measure(url: str, n_scenes: int, *, threads: int = 4, busy: int = 0) -> dict[str, Any]:
    """Replay a job of ``n_scenes`` on the new catalogue ``url`` with ``busy`` CPU-bound threads running."""
    stop = threading.Event()
    burners = [threading.Thread(target=_busy, args=(stop,), daemon=True) for _ in range(busy)]
    with Catalog(url) as catalog:
        timer = CallTimer(catalog, tuple(dict.fromkeys(_CATALOG_CALLS + _OTHER_CALLS)))
        for burner in burners:
            burner.start()
        try:
            with timer.timing():
                started = time.perf_counter()
                replay_job(catalog, n_scenes, threads=threads)
                wall = time.perf_counter() - started
        finally:
            stop.set()
            for burner in burners:
                burner.join()
    per_scene = sum(timer.seconds[name] for name in _CATALOG_CALLS) / n_scenes
    ingest = timer.seconds["add_scene"] + timer.seconds["create_job"]
    return {
        "scenes": n_scenes, "threads": threads, "busy_threads": busy, "wall_s": wall,
        "catalogue_ms_per_scene": 1000 * per_scene,
        "ingest_ms_per_scene": 1000 * ingest / n_scenes,
        "statements_per_scene": timer.statements / n_scenes,
        "begins_per_scene": timer.begins / n_scenes,
        "ms_per_call": {name: 1000 * timer.seconds[name] / timer.calls[name] for name in sorted(timer.calls)},
        "ms_per_scene_by_method": {name: 1000 * timer.seconds[name] / n_scenes for name in sorted(timer.calls)},
        "calls_per_scene": {name: timer.calls[name] / n_scenes for name in sorted(timer.calls)},
    }


def profile(url: str, n_scenes: int, out: Path, top: int = 30) -> None:
    """cProfile of one single-threaded replay; prints the ``top`` functions by cumulative time."""
    with Catalog(url) as catalog:
        profiler = cProfile.Profile()
        profiler.enable()
        replay_job(catalog, n_scenes, threads=1)
        profiler.disable()
    profiler.dump_stats(out)
    pstats.Stats(str(out)).sort_stats("cumulative").print_stats(top)
    pstats.Stats(str(out)).sort_stats("tottime").print_stats(top)


def _print(name: str, result: dict[str, Any]) -> None:
    repeats = ", ".join(f"{ms:.1f}" for ms in result.get("repeats_ms_per_scene", []))
    print(f"-- {name}: {result['catalogue_ms_per_scene']:.1f} ms per scene (target < 50; runs {repeats}), "
          f"{result['statements_per_scene']:.1f} statements ({result['begins_per_scene']:.1f} BEGIN) per "
          f"scene, ingest {result['ingest_ms_per_scene']:.1f} ms per scene, wall {result['wall_s']:.2f} s")
    for method, ms in result["ms_per_scene_by_method"].items():
        print(f"   {method:<20} {ms:8.2f} ms/scene  {result['ms_per_call'][method]:7.2f} ms/call  "
              f"{result['calls_per_scene'][method]:6.2f} calls/scene")


def _median_run(url_of: Any, n_scenes: int, repeat: int, **options: Any) -> dict[str, Any]:
    """The run with the median figure of ``repeat`` runs, each on a new catalogue ``url_of(i)``; every
    run's figure is kept (the machine is shared: one run can meet other load)."""
    runs = sorted((measure(url_of(i), n_scenes, **options) for i in range(repeat)),
                  key=lambda run: run["catalogue_ms_per_scene"])
    return runs[len(runs) // 2] | {"repeats_ms_per_scene": [run["catalogue_ms_per_scene"] for run in runs]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks catalog", description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--threads", type=int, default=4, help="scene threads (the controller: 2 per worker)")
    parser.add_argument("--busy", type=int, default=1, help="CPU-bound threads of the loaded run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per setting; the median is reported")
    parser.add_argument("--postgres", action="store_true",
                        help="also on a throw-away PostgreSQL server (tests/postgres.py; needs initdb)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of a quiet single-threaded replay here")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    settings = (("quiet", 0), ("loaded", args.busy))
    with tempfile.TemporaryDirectory() as folder:
        if args.profile:
            profile(f"sqlite:///{folder}/profile.sqlite", args.scenes, args.profile)
        for name, busy in settings:
            results[f"sqlite_{name}"] = _median_run(lambda i, name=name: f"sqlite:///{folder}/{name}_{i}.sqlite",
                                                    args.scenes, args.repeat, threads=args.threads, busy=busy)
            _print(f"sqlite_{name}", results[f"sqlite_{name}"])
    if args.postgres:
        from tests.postgres import PostgresServer  # the test suite's throw-away server

        server = PostgresServer.start()
        try:
            for name, busy in settings:
                results[f"postgresql_{name}"] = _median_run(lambda _i: server.create_schema(), args.scenes,
                                                            args.repeat, threads=args.threads, busy=busy)
                _print(f"postgresql_{name}", results[f"postgresql_{name}"])
        finally:
            server.stop()
    return report("catalog", {f"{name}_ms_per_scene": result["catalogue_ms_per_scene"]
                              for name, result in results.items()} | {"runs": results})
