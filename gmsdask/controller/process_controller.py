"""``ProcessController``: runs a catalogued job's scenes through the registered levels on a Dask cluster.

Each scene's chain is built lazily on the client (opening a product reads only metadata); its pixel work is
computed on the cluster as futures with the job's ``retries``, from one client-side thread per scene in flight.
A product up to ``scene_task_max_mb`` runs its whole chain as one task on a worker instead (``scene_task``).
A scene's failure is caught in its thread and recorded with its level, exception and traceback; the other
scenes go on. Only the client writes the catalogue and the job log (a scene task's records are replayed). A rerun
resumes each scene after its last completed level (a level recorded by an older implementation version counts as
not completed).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import signal
import threading
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dask
import pandas as pd
import xarray as xr
from distributed import performance_report

from ..catalog import Catalog, SceneRecord
from ..cluster import job_client
from ..config import JobConfig, load_config_file, set_config
from ..errors import JobError
from ..io.cube_storage import quiet_handled_icechunk_warnings
from ..levels import LevelRegistry, default_registry
from .planning import plan_references, start_order
from .level_events import SharedLevels
from .progress import JobProgress
from .scene_chain import COMPLETED, SceneChain, SceneResult
from .scene_task import stop_event_name, workers_outside
from .stoppable import StoppableClient

__all__ = ["ProcessController", "SceneResult", "JobSummary"]

_RUN_LEVEL = re.compile(r"^run_(?P<level>\w+?)_processing$")


@dataclass(frozen=True)
class JobSummary:
    """A job's outcome: one row per scene, and succeeded/failed counts per platform."""

    scenes: pd.DataFrame
    by_platform: pd.DataFrame


class ProcessController:
    """The GeoMultiSens process controller for one job of the catalogue.

    Parameters
    ----------
    job_ID
        Id of a job in the catalogue (``Catalog.create_job`` or ``gmsdask job create``).
    registry
        The processing levels (default: :func:`gmsdask.levels.default_registry`, built-in and plugin levels).
    **config_kwargs
        Options for :func:`gmsdask.set_config` (``json_config`` included); they override the configuration
        stored with the job. ``db_url`` says which catalogue holds the job.

    Every level of the registry has a method ``run_<level>_processing()`` (``run_L1A_processing`` ...).
    """

    def __init__(self, job_ID: int, registry: LevelRegistry | None = None, **config_kwargs: Any) -> None:
        json_config = config_kwargs.pop("json_config", "")
        reset_status = bool(config_kwargs.pop("reset_status", False))
        file_options = load_config_file(json_config) if str(json_config).strip() else {}
        locate = set_config(job_ID, **(file_options | config_kwargs))
        self.catalog = Catalog(locate.db_url, create=False)
        stored = {k: v for k, v in self.catalog.job(job_ID).config.items() if k not in ("job_ID", "reset_status")}
        self.config: JobConfig = set_config(job_ID, json.dumps(stored | file_options, default=str), reset_status,
                                            **config_kwargs)
        self.job_ID = job_ID
        self.registry = registry or default_registry()
        self._cancel = threading.Event()
        self._chain: SceneChain | None = None
        self._timings: list[dict[str, Any]] = []
        self._logger = self._make_logger()

    # --- GeoMultiSens API: records ---------------------------------------------------------------------
    @property
    def DB_job_record(self):  # noqa: N802 (GeoMultiSens name)
        """The job's catalogue record (status, scene ids, statistics per level, ...)."""
        return self.catalog.job(self.job_ID)

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    @property
    def sceneids_failed(self) -> list[int]:
        """Ids of the scenes of which a level failed (and was not completed since)."""
        return sorted({f.scene_id for f in self.catalog.failures(self.job_ID)})

    @property
    def summary(self) -> pd.DataFrame:
        """One row per scene: level reached, failed level, exception type and message."""
        failures = {f.scene_id: f for f in self.catalog.failures(self.job_ID)}
        rows = []
        for scene_id in self.DB_job_record.scene_ids:
            scene = self.catalog.scene(scene_id)
            failure = failures.get(scene_id)
            rows.append({
                "scene_id": scene_id, "product_id": scene.product_id, "platform": scene.platform,
                "level_reached": self._last_completed(scene_id) or "-",
                "failed_level": failure.level if failure else "",
                "exception_type": failure.error_type if failure else "",
                "message": failure.error_message if failure else "",
            })
        return pd.DataFrame(rows)

    def create_job_summary(self) -> JobSummary:
        """The job's success summary: per scene (:attr:`summary`, plus tracebacks), and per platform the number
        of scenes that reached the last level and that failed. Also written to the job log."""
        scenes = self.summary
        tracebacks = {f.scene_id: f.error_traceback for f in self.catalog.failures(self.job_ID)}
        scenes["traceback"] = [tracebacks.get(i, "") for i in scenes["scene_id"]] if len(scenes) else []
        last = self.registry.names[-1]
        by_platform = (scenes.assign(succeeded=scenes["level_reached"] == last, failed=scenes["failed_level"] != "")
                       .groupby("platform")[["succeeded", "failed"]].sum().astype(int).reset_index()
                       if len(scenes) else pd.DataFrame(columns=["platform", "succeeded", "failed"]))
        self._logger.info("job %s summary:\n%s", self.job_ID, by_platform.to_string(index=False))
        return JobSummary(scenes, by_platform)

    def update_DB_job_record(self):  # noqa: N802
        """Write the job's statistics and configuration to its catalogue record; return the record."""
        self.catalog.update_statistics(self.job_ID)
        return self.DB_job_record

    def update_DB_job_statistics(self) -> dict[str, dict[str, int]]:  # noqa: N802
        """Recount the job's per-level done/skipped/failed statistics in the catalogue; return them."""
        return self.catalog.update_statistics(self.job_ID)

    # --- GeoMultiSens API: running -----------------------------------------------------------------------
    def run_all_processors(self, custom_data_list: list[int] | None = None,
                           serialize_after_each_mapper: bool = False) -> list[SceneResult]:
        """Run every level for every scene of the job (or the scene ids in ``custom_data_list``).

        ``serialize_after_each_mapper`` is accepted for GeoMultiSens scripts; each level's ``exec_<level>P``
        write flag decides what is written.
        """
        return self._run(self.registry.names[-1], custom_data_list)

    def run_level(self, level: str, scene_ids: list[int] | None = None) -> list[SceneResult]:
        """Run the job up to ``level`` (every level before it that is not completed yet, then ``level``)."""
        return self._run(self.registry[level].name, scene_ids)

    def __getattr__(self, name: str) -> Any:
        match = _RUN_LEVEL.match(name)
        if match and "registry" in self.__dict__ and match["level"] in self.registry:
            level = self.registry[match["level"]]

            def run_processing() -> list[SceneResult]:
                return self.run_level(level.name)

            run_processing.__name__ = name
            run_processing.__doc__ = f"Run Level {level.name[1:]} processing: {level.title}."
            return run_processing
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *(f"run_{name}_processing" for name in self.registry.names)})

    @property
    def timings(self) -> pd.DataFrame:
        """Wall seconds of every level of every scene in this controller's runs (a lazy level's pixels are
        computed by the level that first needs them, so most of a chain's time shows at the level that writes)."""
        return pd.DataFrame(self._timings, columns=["scene_id", "product_id", "level", "status", "seconds"])

    def benchmark(self) -> pd.DataFrame:
        """Run the job (all levels not completed yet) and return each scene's level timings in seconds.

        Use ``reset_status=True`` to time every level from L1A.
        """
        self._timings = []
        self.run_all_processors()
        return self.timings

    def stop(self, signum: int | None = None, frame: Any = None) -> None:
        """Interrupt the running job gracefully: computations in flight are cancelled within seconds, no level
        starts, uncommitted cube transactions are dropped; the job and the interrupted levels say canceled."""
        self._logger.warning("job %s: stop requested (signal %s); cancelling", self.job_ID, signum)
        self._cancel.set()
        if self._chain is not None:
            self._chain.stop_scene_tasks()

    def shutdown(self) -> None:
        """Close the job's log handlers and the catalogue's connections."""
        for handler in list(self._logger.handlers):
            handler.close()
            self._logger.removeHandler(handler)
        self.catalog.close()

    # --- GeoMultiSens API: scenes on disk -----------------------------------------------------------------
    def add_local_availability(self, datasets: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Check which level each dataset (subsystem) has completed, and keep the subsystems of a scene together.

        ``datasets`` holds one mapping per scene or subsystem with ``scene_ID`` (or ``scene_id``) and optionally
        ``proc_level`` (the level it is known to have). Each gets ``proc_level``: the last level the catalogue
        records as completed, lowered to the level given if that is lower. Where the entries of one scene
        disagree, all get the lowest, and the scene's catalogue states after it are reset so that a rerun
        processes them again.
        """
        names = list(self.registry.names)

        def rank(level: str | None) -> int:
            return names.index(level) if level in names else -1

        by_scene: dict[int, list[dict[str, Any]]] = {}
        for entry in datasets:
            scene_id = int(entry.get("scene_ID", entry.get("scene_id", -1)))
            if scene_id not in self.DB_job_record.scene_ids:
                raise JobError(f"job {self.job_ID}: scene {scene_id} of the dataset list is not part of the job")
            by_scene.setdefault(scene_id, []).append(dict(entry))
        out: list[dict[str, Any]] = []
        for scene_id, entries in by_scene.items():
            recorded = self._last_completed(scene_id)
            levels = [min(rank(recorded), rank(e.get("proc_level", recorded))) for e in entries]
            lowest = min(levels)
            if len(set(levels)) > 1 or lowest < rank(recorded):
                self.catalog.reset_scene_levels(self.job_ID, scene_id, names[lowest + 1:])
                self._logger.info("scene %s: subsystems disagree or are behind the catalogue; reset after %s",
                                  scene_id, names[lowest] if lowest >= 0 else "nothing")
            out += [entry | {"proc_level": names[lowest] if lowest >= 0 else None} for entry in entries]
        return out

    def get_DB_objects(self, procLvl: str, prevLvl_objects: list[xr.DataTree] | None = None,  # noqa: N802,N803
                       parallLev: str | None = None, blocksize: tuple[int, int] | None = None) -> list[Any]:
        """The job's scenes that ``procLvl`` has to process, as lazy DataTrees at the level before it.

        ``prevLvl_objects`` (scenes produced by the previous level in this process) are used as they are for
        their scenes. With ``parallLev="tiles"`` each scene is cut into blocks of ``blocksize`` (x, y) pixels of
        its finest group and ``(scene_id, (row_slice, col_slice), block_tree)`` tuples are returned.
        """
        level = self.registry[procLvl]
        names = list(self.registry.names)
        previous = names[names.index(level.name) - 1] if names.index(level.name) else None
        given = {str(tree.attrs.get("product_id")): tree for tree in prevLvl_objects or []}
        trees: list[tuple[int, xr.DataTree]] = []
        with self._chain_for_building() as chain:
            for scene_id in self.DB_job_record.scene_ids:
                record = self.catalog.scene(scene_id)
                statuses = self.catalog.level_status(self.job_ID, scene_id)
                if statuses.get(level.name) in COMPLETED:
                    continue
                if previous is not None and statuses.get(previous) not in COMPLETED \
                        and record.product_id not in given:
                    continue
                tree = given.get(record.product_id) or chain.build(record, previous)
                trees.append((scene_id, tree))
        if parallLev != "tiles":
            return [tree for _, tree in trees]
        block_x, block_y = blocksize or self.config.tiling_block_size_XY
        return [block for scene_id, tree in trees for block in _blocks(scene_id, tree, block_y, block_x)]

    # --- internals ----------------------------------------------------------------------------------------
    def _last_completed(self, scene_id: int) -> str | None:
        statuses = self.catalog.level_status(self.job_ID, scene_id)
        last = None
        for name in self.registry.names:
            if statuses.get(name) not in COMPLETED:
                break
            last = name
        return last

    def _make_logger(self) -> logging.Logger:
        logger = logging.getLogger(f"gmsdask.job.{self.job_ID}")
        logger.setLevel(self.config.log_level)
        logger.propagate = True
        if not any(isinstance(h, logging.FileHandler) for h in logger.handlers):
            log_dir = Path(self.config.path_job_logs)
            log_dir.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(log_dir / f"job_{self.job_ID}.log")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logger.addHandler(handler)
        return logger

    def _absolute_paths(self) -> JobConfig:
        """Output locations as absolute paths (or URLs) when the job starts, so workers elsewhere agree."""
        changes = {name: Path(getattr(self.config, name)).expanduser().resolve()
                   for name in ("path_archive", "path_procdata_scenes", "path_job_logs", "path_cache")}
        mgrs = str(self.config.path_procdata_MGRS)
        if "://" not in mgrs:
            changes["path_procdata_MGRS"] = str(Path(mgrs).expanduser().resolve())
        return self.config.replace(**changes)

    @contextlib.contextmanager
    def _chain_for_building(self):
        """A scene chain for building lazy scenes on the client (nothing recorded, nothing computed)."""
        yield SceneChain(self.job_ID, self.config, self.registry, self.catalog, client=None, logger=self._logger,
                         cancel=threading.Event(), references={})

    def _run(self, target: str, scene_ids: list[int] | None = None) -> list[SceneResult]:
        job = self.DB_job_record
        ids = list(scene_ids) if scene_ids is not None else job.scene_ids
        unknown = sorted(set(ids) - set(job.scene_ids))
        if unknown:
            raise JobError(f"job {self.job_ID}: scene ids {unknown} are not part of the job")
        if self.config.reset_status:
            self.catalog.reset_job(self.job_ID)
            self.config = self.config.replace(reset_status=False)  # reset once, not at every level run
        self.config = self._absolute_paths()
        if self.config.delete_old_output:
            shutil.rmtree(Path(self.config.path_procdata_scenes) / f"job_{self.job_ID}", ignore_errors=True)
        self._cancel.clear()
        quiet_handled_icechunk_warnings()  # this process commits the cubes of large scenes
        before = self.catalog.claim_job(self.job_ID)  # JobError if another live process runs it
        if before.interrupted:
            self._logger.warning("job %s: resuming; its previous run was interrupted (%s)", self.job_ID,
                                 before.reason)
        scenes = [self.catalog.scene(i) for i in ids]
        references = plan_references(self.registry, target, scenes, self.catalog, self.config)
        self._logger.info("job %s: %d scenes up to %s on %s", self.job_ID, len(ids), target,
                          self.config.scheduler_address or "a local cluster")
        restore = self._install_signal_handlers()
        try:
            # dask.config is process-global: set the scheduler once here, not in the scene threads, whose
            # interleaved exits would restore each other's settings and leave this client as the default
            with self.catalog.keep_alive(self.job_ID) as taken_away, job_client(self.config, self._logger) as client, \
                    dask.config.set(scheduler=StoppableClient(client, self._cancel, self.job_ID,
                                                              self.config.retries)), self._profile():
                results = self._run_scenes(start_order(scenes, references), target, client, references, taken_away)
        finally:
            restore()
            self._chain = None
        self.catalog.update_statistics(self.job_ID)
        if self._cancel.is_set():
            self.catalog.set_job_status(self.job_ID, "canceled")
        elif target == self.registry.names[-1]:
            status = self.catalog.finish_job(self.job_ID)
            self._logger.info("job %s: %s", self.job_ID, status)
        else:
            self.catalog.set_job_status(self.job_ID, "pending")
        return results

    def _profile(self) -> contextlib.AbstractContextManager:
        """A Dask performance report of the run when ``profiling`` is on."""
        if not self.config.profiling:
            return contextlib.nullcontext()
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        report = Path(self.config.path_job_logs) / f"job_{self.job_ID}_{stamp}_dask_report.html"
        self._logger.info("job %s: Dask performance report: %s", self.job_ID, report)
        return performance_report(filename=str(report))

    def _install_signal_handlers(self):
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        return lambda: [signal.signal(sig, handler) for sig, handler in previous.items()]

    def _scene_task_limits(self, client: Any, n_scenes: int, n_workers: int) -> tuple[float, float]:
        """``(scene_task_max_mb, whole_scene_task_max_mb)`` for this job: the second 0 in a job of fewer scenes
        than workers (a scene's chunks are then spread over every worker), both 0 where scene tasks cannot run:
        workers in this process share its Dask scheduler setting (see :mod:`.scene_task`)."""
        small, whole = self.config.scene_task_max_mb, self.config.whole_scene_task_max_mb
        if n_scenes < n_workers:
            whole = 0.0
        if (small > 0 or whole > 0) and not workers_outside(client):
            self._logger.info("job %s: the Dask workers run in this process; every scene's graph is built here "
                              "(scene tasks need worker processes)", self.job_ID)
            return 0.0, 0.0
        return small, whole

    def _run_scenes(self, scenes: list[SceneRecord], target: str, client: Any,
                    references: dict[int, tuple], taken_away: threading.Event) -> list[SceneResult]:
        # Enough scenes in flight to keep every worker busy while others are opened or written.
        n_workers = len(client.scheduler_info().get("workers", {}))
        in_flight = max(1, min(len(scenes), 2 * n_workers or 2))
        n_levels = len(self.registry.upto(target))
        with JobProgress(self.job_ID, target, len(scenes), n_levels) as progress, \
                ThreadPoolExecutor(in_flight) as pool:
            def on_level(record: SceneRecord, level: str, status: str, seconds: float = 0.0) -> None:
                progress.level_finished(record.id, level, status)
                if status != "running":
                    self._timings.append({"scene_id": record.id, "product_id": record.product_id, "level": level,
                                          "status": status, "seconds": seconds})

            job_scene_ids = {scene.id for scene in scenes}
            small, whole = self._scene_task_limits(client, len(scenes), n_workers)
            self._chain = SceneChain(self.job_ID, self.config, self.registry, self.catalog, client, self._logger,
                                     self._cancel, references, on_level, small, stop_event_name(self.job_ID),
                                     whole_scene_task_max_mb=whole,
                                     shared_levels=(SharedLevels(f"gmsdask-job-{self.job_ID}-{uuid.uuid4().hex}")
                                                    if whole > 0 else None))
            futures = {pool.submit(self._chain.run, scene, target, job_scene_ids): scene for scene in scenes}
            results: list[SceneResult] = []
            pending = set(futures)
            while pending:
                if taken_away.is_set() and not self._cancel.is_set():
                    self._logger.error("job %s was canceled or taken over elsewhere; stopping", self.job_ID)
                    self.stop()
                done, pending = wait_futures(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                for future in done:
                    results.append(future.result())
                    progress.scene_finished(futures[future].id)
        return sorted(results, key=lambda r: r.scene_id)


def _blocks(scene_id: int, tree: xr.DataTree, block_y: int, block_x: int):
    """``(scene_id, (rows, cols), block)`` for every block of the scene's finest resolution group."""
    from ..geometry import resolution_groups

    finest_name, finest = next(iter(resolution_groups(tree, "get_DB_objects").items()))
    ny, nx = finest.sizes["y"], finest.sizes["x"]
    for row in range(0, ny, block_y):
        for col in range(0, nx, block_x):
            rows, cols = slice(row, min(row + block_y, ny)), slice(col, min(col + block_x, nx))
            block = xr.DataTree(xr.Dataset(attrs=dict(tree.attrs)),
                                children={finest_name: xr.DataTree(finest.isel(y=rows, x=cols))})
            yield scene_id, (rows, cols), block
