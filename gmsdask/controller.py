"""``ProcessController``: runs a catalogued job's scenes through L1A ... L2C on a Dask cluster.

Each scene's chain is built lazily on the client (opening a product reads only metadata) and its pixel work is
submitted to the cluster as that scene's own graphs, from one client-side thread per scene in flight. A scene's
failure is caught in its thread, recorded in the catalogue with its level, exception and traceback, and the other
scenes go on. Only the client writes the catalogue. A rerun resumes each scene after its last completed level:
completed levels are not run or written again (lazy levels are rebuilt as graphs, which reads no pixels), and
an L2C that completed is not written again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dask
import pandas as pd
import xarray as xr
from distributed import performance_report
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .catalog import Catalog, SceneRecord
from .cluster import job_client
from .config import LEVELS, JobConfig, load_config_file, set_config
from .errors import JobError
from .io.scene_store import write_scene
from .levels import LevelOutcome, l1a, l1b, l1c, l2a, l2b, l2c

__all__ = ["ProcessController", "SceneResult"]


@dataclass(frozen=True)
class SceneResult:
    """How far one scene got in one run."""

    scene_id: int
    product_id: str
    platform: str
    level_reached: str | None
    failed_level: str | None = None
    exception_type: str = ""
    message: str = ""


#: The lazy levels; each module's ``run(scene_or_product, cfg) -> LevelOutcome`` is looked up at call time.
LAZY_LEVELS = {"L1A": l1a, "L1B": l1b, "L1C": l1c, "L2A": l2a, "L2B": l2b}


class ProcessController:
    """The GeoMultiSens process controller for one job of the catalogue.

    Parameters
    ----------
    job_ID
        Id of a job in the catalogue (``Catalog.create_job`` or ``gmsdask job create``).
    **config_kwargs
        Options for :func:`gmsdask.set_config` (``json_config`` included); they override the configuration
        stored with the job. ``db_url`` says which catalogue holds the job.
    """

    def __init__(self, job_ID: int, **config_kwargs: Any) -> None:
        json_config = config_kwargs.pop("json_config", "")
        reset_status = bool(config_kwargs.pop("reset_status", False))
        file_options = load_config_file(json_config) if str(json_config).strip() else {}
        locate = set_config(job_ID, **(file_options | config_kwargs))
        self.catalog = Catalog(locate.db_url)
        stored = {k: v for k, v in self.catalog.job(job_ID).config.items() if k not in ("job_ID", "reset_status")}
        self.config: JobConfig = set_config(job_ID, json.dumps(stored | file_options, default=str), reset_status,
                                            **config_kwargs)
        self.job_ID = job_ID
        self._cancel = threading.Event()
        self._logger = self._make_logger()

    # --- GeoMultiSens API ------------------------------------------------------------------------------
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
                "level_reached": self.catalog.last_completed_level(self.job_ID, scene_id) or "-",
                "failed_level": failure.level if failure else "",
                "exception_type": failure.error_type if failure else "",
                "message": failure.error_message if failure else "",
            })
        return pd.DataFrame(rows)

    def run_all_processors(self, custom_data_list: list[int] | None = None) -> list[SceneResult]:
        """Run L1A ... L2C for every scene of the job (or the scene ids in ``custom_data_list``)."""
        return self._run("L2C", custom_data_list)

    def run_L1A_processing(self) -> list[SceneResult]:  # noqa: N802
        """Data import and metadata homogenization."""
        return self._run("L1A")

    def run_L1B_processing(self) -> list[SceneResult]:  # noqa: N802
        """Calculation of geometric shifts (not available yet: recorded as skipped)."""
        return self._run("L1B")

    def run_L1C_processing(self) -> list[SceneResult]:  # noqa: N802
        """Atmospheric correction (not available yet: recorded as skipped)."""
        return self._run("L1C")

    def run_L2A_processing(self) -> list[SceneResult]:  # noqa: N802
        """Geometric homogenization."""
        return self._run("L2A")

    def run_L2B_processing(self) -> list[SceneResult]:  # noqa: N802
        """Spectral homogenization (not available yet: recorded as skipped)."""
        return self._run("L2B")

    def run_L2C_processing(self) -> list[SceneResult]:  # noqa: N802
        """Accuracy layers and MGRS tiling into the datacubes."""
        return self._run("L2C")

    def stop(self, signum: int | None = None, frame: Any = None) -> None:
        """Cancel the running job gracefully: scenes in flight finish their level, no new level starts."""
        self._logger.warning("job %s: stop requested (signal %s); cancelling", self.job_ID, signum)
        self._cancel.set()

    def shutdown(self) -> None:
        """Close the job's log handlers and the catalogue's connections."""
        for handler in list(self._logger.handlers):
            handler.close()
            self._logger.removeHandler(handler)
        self.catalog.close()

    # --- internals ----------------------------------------------------------------------------------------
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

    def _scene_output_dir(self, scene: SceneRecord) -> Path:
        return Path(self.config.path_procdata_scenes) / f"job_{self.job_ID}" / scene.product_id

    def _run(self, target: str, scene_ids: list[int] | None = None) -> list[SceneResult]:
        job = self.DB_job_record
        ids = list(scene_ids) if scene_ids is not None else job.scene_ids
        unknown = sorted(set(ids) - set(job.scene_ids))
        if unknown:
            raise JobError(f"job {self.job_ID}: scene ids {unknown} are not part of the job")
        if self.config.reset_status:
            self.catalog.reset_job(self.job_ID)
            self.config = self.config.replace(reset_status=False)  # reset once, not at every level run
        if self.config.delete_old_output:
            shutil.rmtree(Path(self.config.path_procdata_scenes) / f"job_{self.job_ID}", ignore_errors=True)
        self._cancel.clear()
        self.catalog.set_job_status(self.job_ID, "running")
        self._logger.info("job %s: %d scenes up to %s", self.job_ID, len(ids), target)
        restore = self._install_signal_handlers()
        try:
            # dask.config is process-global: set the scheduler once here, not in the scene threads, whose
            # interleaved exits would restore each other's settings and leave this client as the default
            with job_client(self.config, self._logger) as client, dask.config.set(scheduler=client), \
                    self._profile():
                results = self._run_scenes([self.catalog.scene(i) for i in ids], target, client)
        finally:
            restore()
        self.catalog.update_statistics(self.job_ID)
        if self._cancel.is_set():
            self.catalog.set_job_status(self.job_ID, "canceled")
        elif target == LEVELS[-1]:
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

    def _run_scenes(self, scenes: list[SceneRecord], target: str, client: Any) -> list[SceneResult]:
        # Enough scenes in flight to keep every worker busy while others are opened or written.
        in_flight = max(1, min(len(scenes), 2 * len(client.scheduler_info().get("workers", {})) or 2))
        results: list[SceneResult] = []
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[state]}"), TimeElapsedColumn())
        with Progress(*columns, transient=False) as progress, ThreadPoolExecutor(in_flight) as pool:
            task = progress.add_task(f"job {self.job_ID} -> {target}", total=len(scenes), state="")
            futures = [pool.submit(self._process_scene, scene, target) for scene in scenes]
            for future in as_completed(futures):
                results.append(future.result())
                failed = sum(1 for r in results if r.failed_level)
                progress.update(task, advance=1, state=f"done {len(results) - failed}, failed {failed}")
        return sorted(results, key=lambda r: r.scene_id)

    def _process_scene(self, scene: SceneRecord, target: str) -> SceneResult:
        """One scene's chain up to ``target``; never raises (a failure is recorded and returned)."""
        statuses = self.catalog.level_status(self.job_ID, scene.id)
        state: Any = scene.product_path
        reached: str | None = None
        for level in LEVELS[: LEVELS.index(target) + 1]:
            if self._cancel.is_set():
                break
            completed = statuses.get(level) in ("done", "skipped")
            if level == "L2C" and completed:
                reached = level
                continue
            try:
                outcome = self._run_level(level, state, scene, record=not completed)
            except Exception as error:  # noqa: BLE001 - every failure of one scene is recorded, others go on
                if self.config.disable_exception_handler:
                    raise
                self.catalog.record_level(self.job_ID, scene.id, level, "failed", error=error)
                self._logger.error("%s: %s failed: %s: %s", scene.product_id, level, type(error).__name__, error)
                return SceneResult(scene.id, scene.product_id, scene.platform, reached, level,
                                   type(error).__name__, str(error))
            state, reached = outcome.scene, level
        if reached == LEVELS[-1]:
            self._delete_unneeded_outputs(scene)
        return SceneResult(scene.id, scene.product_id, scene.platform, reached)

    def _delete_unneeded_outputs(self, scene: SceneRecord) -> None:
        """Level products written with ``exec_LxxP = [run, write, delete=True]`` once the chain is through."""
        for level in LEVELS[:-1]:
            _run, write, delete = self.config.exec_flags(level)
            product = self._scene_output_dir(scene) / f"{level}.zarr"
            if write and delete and product.exists():
                shutil.rmtree(product)
                self._logger.info("%s: deleted %s (exec_%sP delete flag)", scene.product_id, product, level)

    def _run_level(self, level: str, state: Any, scene: SceneRecord, *, record: bool) -> LevelOutcome:
        run, write, _delete = self.config.exec_flags(level)
        started = time.perf_counter()
        if record:
            self.catalog.record_level(self.job_ID, scene.id, level, "running")
        if not run:
            outcome = LevelOutcome(state if isinstance(state, xr.DataTree) else l1a.run(state, self.config).scene,
                                   "skipped", f"{level}: disabled by exec_{level}P")
        elif level == "L2C":
            tiles = [t for t in scene.mgrs_tiles if not self.config.target_mgrs_tiles
                     or t in self.config.target_mgrs_tiles]
            writes = l2c.write_scene_to_tiles(state, self.config, scene_id=scene.product_id, tiles=tiles)
            for tile_write in writes:
                self.catalog.record_tile(self.job_ID, tile_write.tile, self.config.virtual_sensor_name,
                                         tile_write.path, scene.id)
            outcome = LevelOutcome(state, "done", outputs=[str(w.path) for w in writes])
        else:
            outcome = LAZY_LEVELS[level].run(state, self.config)
            if write and record and outcome.status == "done":
                target = self._scene_output_dir(scene) / f"{level}.zarr"
                write_scene(outcome.scene, target)
                outcome = LevelOutcome(outcome.scene, outcome.status, outcome.note, [str(target)])
        if record:
            self.catalog.record_level(self.job_ID, scene.id, level, outcome.status,
                                      output=";".join(outcome.outputs) or outcome.note)
        if self.config.benchmark_global:
            self._logger.info("benchmark: %s %s %s %.3f s", scene.product_id, level, outcome.status,
                              time.perf_counter() - started)
        return outcome
