"""Running a routine: each active task becomes a catalogue query and a catalogue job run on the Dask cluster.

Per chunk of ``process_by_line`` table lines (all lines at once by default) the phases run as barriers across
the chunk's tasks, as in Sen2Chain: clean before -> provider search and fetch (``download``), catalogued ->
select (tile, dates, max clouds, level, processing baseline) minus the scenes already in the tile's cube ->
one catalogue job per task run by :class:`~gmsdask.controller.ProcessController` -> cloud masks and indices
into the cube (:data:`ProductsHook`) -> ``remove`` items -> clean after. A failure is recorded in the task's
outcome (and the run log) and every other task goes on. ``compute_l2a`` admits Level-1 inputs, which gmsdask's
own chain takes to surface reflectance, instead of calling Sen2Cor.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ..catalog import Catalog, SceneRecord
from ..cluster import job_client
from ..config import JobConfig
from ..errors import CatalogError, GmsdaskError
from . import removal
from .cfg_format import read_routine
from .home import (
    RoutineOptions,
    gmsdask_home,
    jobs_folder,
    load_options,
    routine_log_folder,
)
from .model import RoutineFile, Task
from .product_names import baseline_filter, level_group, parse_product_name
from .products_hook import ProductsHook, failures_of, indices_hook
from .providers import ProductQuery, fetch_with_retries, make_provider
from .validation import INDEX_NAMES, RoutineConfigError

__all__ = ["ProductsHook", "RunReport", "TaskOutcome", "run_routine"]



@dataclass
class TaskOutcome:
    """What one task did in one run."""

    task_id: int
    tile: str
    status: str = "done"  # done | empty (nothing found nor selected) | failed | inactive
    found: list[str] = field(default_factory=list)
    selected: list[str] = field(default_factory=list)
    already_processed: list[str] = field(default_factory=list)
    catalog_job_id: int | None = None
    catalog_job_status: str = ""
    processed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    products: Any = None  # the products hook's result
    removed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    new_scene_ids: set[int] = field(default_factory=set)


@dataclass
class RunReport:
    """One run of a routine: its tasks' outcomes, the catalogue jobs it created and its log file."""

    jid: str
    started: datetime
    tasks: list[TaskOutcome] = field(default_factory=list)
    finished: datetime | None = None
    log_file: Path | None = None

    @property
    def catalog_job_ids(self) -> list[int]:
        return [t.catalog_job_id for t in self.tasks if t.catalog_job_id is not None]

    @property
    def ok(self) -> bool:
        return all(t.status != "failed" for t in self.tasks)


class _Cluster:
    """The run's Dask client, started on first use only (a run with nothing to process starts none)."""

    def __init__(self, cfg: JobConfig, client: Any, logger: logging.Logger) -> None:
        self._cfg, self._client, self._logger = cfg, client, logger
        self._stack = contextlib.ExitStack()

    def current(self) -> contextlib.AbstractContextManager:
        if self._client is None:
            self._client = self._stack.enter_context(job_client(self._cfg, self._logger))
        return self._client.as_current()

    def close(self) -> None:
        self._stack.close()


@dataclass
class _Run:
    jid: str
    routine: RoutineFile
    options: RoutineOptions
    catalog: Catalog
    logger: logging.Logger
    today: date
    cluster: _Cluster
    hook: ProductsHook | None
    sleep: Callable[[float], None]
    clean_before: bool
    clean_after: bool
    report: RunReport

    @property
    def cfg(self) -> JobConfig:
        return self.options.config

    @property
    def managed(self) -> list[Path]:
        folders = [Path(self.cfg.path_archive)]
        folders += [Path(p["download_folder"]) for p in self.options.providers.values() if "download_folder" in p]
        return folders


def _guard(ctx: _Run, outcome: TaskOutcome, phase: str, work: Callable[[], None]) -> None:
    """Run one phase of one task; a failure is recorded in the outcome and the run goes on."""
    try:
        work()
    except Exception as error:  # noqa: BLE001 - recorded in the task's outcome and log; the other tasks go on
        outcome.errors.append(f"{phase}: {type(error).__name__}: {error}")
        ctx.logger.error("task %d (%s): %s failed: %s: %s", outcome.task_id, outcome.tile, phase,
                         type(error).__name__, error)


def _catalogue(ctx: _Run, outcome: TaskOutcome, paths: Sequence[Path]) -> None:
    for path in paths:
        info = parse_product_name(path.name)
        try:
            ctx.catalog.scene_id(info.stem if info else path.name)
            continue
        except CatalogError:
            pass
        try:
            ids = ctx.catalog.add_products([path])
        except GmsdaskError as error:
            outcome.errors.append(f"catalogue: {path.name}: {error}")
            ctx.logger.error("task %d: cannot catalogue %s: %s", outcome.task_id, path, error)
            continue
        outcome.new_scene_ids.update(ids)
        ctx.logger.info("task %d: catalogued %s (scene %s)", outcome.task_id, path.name, ids)


def _discover(ctx: _Run, outcome: TaskOutcome, task: Task) -> None:
    if task.download is None:
        ctx.logger.info("task %d (%s): download False: catalogued products only", outcome.task_id, task.tile)
        return
    name = task.provider or ctx.routine.settings.provider or "local"
    provider = make_provider(name, ctx.options.providers, Path(ctx.cfg.path_archive))
    start, end = task.dates(ctx.today)
    refs = provider.search(ProductQuery(task.tile, start, end, task.download, task.max_clouds))
    refs = baseline_filter(refs, [r.product_id for r in refs], pb_min=task.pb_min, pb_max=task.pb_max,
                           only_max=task.filter_max_pb)
    outcome.found = [ref.product_id for ref in refs]
    ctx.logger.info("task %d (%s): %s found %d %s product(s): %s", outcome.task_id, task.tile, name, len(refs),
                    task.download, ", ".join(outcome.found) or "-")
    settings = ctx.routine.settings
    paths, errors = fetch_with_retries(provider, refs, tries=settings.tries, sleep_minutes=settings.sleep,
                                       logger=ctx.logger, sleep=ctx.sleep)
    for product_id, message in errors.items():
        outcome.errors.append(f"fetch: {product_id}: {message}")
    _catalogue(ctx, outcome, paths)


def _written_pairs(catalog: Catalog, virtual_sensor: str) -> set[tuple[str, int]]:
    """(tile, scene id) of every scene already in a tile cube of ``virtual_sensor`` (any catalogue job)."""
    return {(record.tile, record.scene_id) for job in catalog.jobs() for record in catalog.tiles_written(job.id)
            if record.virtual_sensor == virtual_sensor}


def _select(ctx: _Run, task: Task) -> list[SceneRecord]:
    start, end = task.dates(ctx.today)
    scenes = ctx.catalog.scenes(tile=task.tile, start=start, end=end,
                                max_cloud=None if task.max_clouds >= 100 else task.max_clouds)
    scenes = [s for s in scenes if level_group(s.processing_level) == "l2a" or task.compute_l2a]
    return baseline_filter(scenes, [s.product_id for s in scenes], pb_min=task.pb_min, pb_max=task.pb_max,
                           only_max=task.filter_max_pb)


def _process(ctx: _Run, outcome: TaskOutcome, task: Task) -> None:
    from ..controller import ProcessController

    scenes = _select(ctx, task)
    outcome.selected = [s.product_id for s in scenes]
    if not scenes:
        ctx.logger.warning("task %d (%s): no product matches (dates %s .. %s, max clouds %g)", outcome.task_id,
                           task.tile, *task.dates(ctx.today), task.max_clouds)
        return
    written = _written_pairs(ctx.catalog, ctx.cfg.virtual_sensor_name)
    todo = [s for s in scenes if (task.tile, s.id) not in written]
    outcome.already_processed = [s.product_id for s in scenes if (task.tile, s.id) in written]
    if outcome.already_processed:
        ctx.logger.info("task %d (%s): already in the cube, not redone: %s", outcome.task_id, task.tile,
                        ", ".join(outcome.already_processed))
    if not todo:
        return
    job_cfg = ctx.cfg.replace(target_mgrs_tiles=(task.tile,))
    job_id = ctx.catalog.create_job([s.id for s in todo], job_cfg,
                                    comment=f"routine {ctx.jid} task {outcome.task_id} tile {task.tile}")
    outcome.catalog_job_id = job_id
    ctx.logger.info("task %d (%s): catalogue job %d with %d scene(s)", outcome.task_id, task.tile, job_id, len(todo))
    with ctx.cluster.current():
        controller = ProcessController(job_id, db_url=ctx.cfg.db_url)
        try:
            controller.run_all_processors()
        finally:
            controller.shutdown()
    outcome.catalog_job_status = ctx.catalog.job(job_id).status
    for failure in ctx.catalog.failures(job_id):
        outcome.failed[failure.product_id] = f"{failure.level}: {failure.error_type}: {failure.error_message}"
    outcome.processed = [s.product_id for s in todo if s.product_id not in outcome.failed]
    ctx.logger.info("task %d (%s): catalogue job %d %s; processed %s; failed %s", outcome.task_id, task.tile,
                    job_id, outcome.catalog_job_status, ", ".join(outcome.processed) or "-",
                    "; ".join(f"{k}: {v}" for k, v in outcome.failed.items()) or "-")
    if outcome.failed:
        outcome.errors.append(f"chain: {len(outcome.failed)} scene(s) failed in catalogue job {job_id}")


def _cube_path(ctx: _Run, tile: str) -> Path | str | None:
    """The tile's cube the chain writes L2A scenes into (surface reflectance of ``virtual_sensor_name``, as
    L2C's :func:`~gmsdask.levels.l2c.cube_path`), or None when it does not exist (yet)."""
    from ..io.cube_storage import repository_exists
    from ..levels.l2c import cube_path

    location = cube_path(ctx.cfg, tile, "surface_reflectance")
    return location if repository_exists(location) else None


def _products(ctx: _Run, outcome: TaskOutcome, task: Task) -> None:
    if not task.cloudmasks and not task.indices:
        return
    cube = _cube_path(ctx, task.tile)
    if cube is None:
        if outcome.selected:
            raise GmsdaskError(f"no cube of tile {task.tile} to write cloud masks and indices into")
        return
    written = _written_pairs(ctx.catalog, ctx.cfg.virtual_sensor_name)
    scenes = {s.product_id: s.product_path if Path(s.product_path).exists() else None
              for s in _select(ctx, task) if (task.tile, s.id) in written}
    hook = ctx.hook or indices_hook()
    result = hook(task.tile, cube, task.cloudmasks, task.index_names(INDEX_NAMES), scenes=scenes, config=ctx.cfg)
    outcome.products = result
    for name, reason in failures_of(result).items():
        outcome.errors.append(f"products: {name}: {reason}")
    ctx.logger.info("task %d (%s): cloud masks %s, indices %s into %s: %s", outcome.task_id, task.tile,
                    "/".join(task.cloudmasks) or "-", "/".join(task.indices) or "-", cube, result)


def _needed_by(ctx: _Run) -> removal.NeededBy:
    tasks: list[tuple[str, Task]] = [(f"routine {ctx.jid}", t) for t in ctx.routine.tasks]
    folder = jobs_folder(ctx.options.home)
    for path in sorted(folder.glob("job_*.cfg")) if folder.is_dir() else []:
        other = path.stem.removeprefix("job_")
        if other == ctx.jid:
            continue
        try:
            tasks += [(f"routine {other}", t) for t in read_routine(path.read_text(), str(path)).tasks]
        except RoutineConfigError as error:
            ctx.logger.warning("remove: %s is not readable, its needs are unknown: %s", path, error)
    busy = frozenset(i for status in ("pending", "running") for job in ctx.catalog.jobs(status) for i in job.scene_ids)
    written = frozenset(_written_pairs(ctx.catalog, ctx.cfg.virtual_sensor_name))
    return removal.NeededBy(tasks, ctx.today, busy, written)


def _remove(ctx: _Run, outcome: TaskOutcome, task: Task) -> None:
    if not task.remove:
        return
    needed = _needed_by(ctx)
    scenes = ctx.catalog.scenes(tile=task.tile)
    for item in task.remove:
        for scene in removal.select_for_removal(item, task.tile, scenes, outcome.new_scene_ids):
            reason = needed.reason(scene)
            if reason is not None:
                ctx.logger.info("remove %s: %s kept: %s", item, scene.product_id, reason)
                continue
            path = Path(scene.product_path)
            if (ctx.routine.settings.copy_l2a_sideproducts and level_group(scene.processing_level) == "l2a"
                    and scene.platform.upper().startswith("SENTINEL")):
                removal.copy_sideproducts(path, ctx.options.home / "sideproducts" / task.tile / scene.product_id,
                                          ctx.logger)
            if removal.delete_product(path, ctx.managed, ctx.logger, f"remove {item}, task {outcome.task_id}"):
                outcome.removed.append(scene.product_id)


def _clean(ctx: _Run, chunk: Sequence[tuple[TaskOutcome, Task]], when: str) -> None:
    for tile in dict.fromkeys(task.tile for _outcome, task in chunk):
        removed = removal.clean_folders(tile, ctx.managed, ctx.logger)
        for outcome, task in chunk:
            if task.tile == tile:
                outcome.removed += [f"{p.name} ({when})" for p in removed]


def _finish(ctx: _Run, outcome: TaskOutcome) -> None:
    if outcome.errors:
        outcome.status = "failed"
    elif not outcome.found and not outcome.selected:
        outcome.status = "empty"
    ctx.logger.info("task %d (%s): %s; found %d, selected %d, already processed %d, processed %d, removed %d%s",
                    outcome.task_id, outcome.tile, outcome.status, len(outcome.found), len(outcome.selected),
                    len(outcome.already_processed), len(outcome.processed), len(outcome.removed),
                    "".join(f"\n  {e}" for e in outcome.errors))


def _run_chunk(ctx: _Run, lines: Sequence[tuple[int, Task]]) -> None:
    chunk: list[tuple[TaskOutcome, Task]] = []
    for task_id, task in lines:
        outcome = TaskOutcome(task_id, task.tile)
        ctx.report.tasks.append(outcome)
        if task.active:
            chunk.append((outcome, task))
        else:
            outcome.status = "inactive"
    if ctx.clean_before and chunk:
        _guard(ctx, chunk[0][0], "clean before", lambda: _clean(ctx, chunk, "clean before"))
    for phase, work in (("download", _discover), ("process", _process), ("products", _products),
                        ("remove", _remove)):
        for outcome, task in chunk:
            _guard(ctx, outcome, phase, lambda o=outcome, t=task, w=work: w(ctx, o, t))
    if ctx.clean_after and chunk:
        _guard(ctx, chunk[0][0], "clean after", lambda: _clean(ctx, chunk, "clean after"))
    for outcome, _task in chunk:
        _finish(ctx, outcome)


def _run_logger(jid: str, home: Path, logs: bool, report: RunReport) -> tuple[logging.Logger, logging.Handler | None]:
    logger = logging.getLogger(f"gmsdask.routine.{jid}")
    logger.setLevel(logging.INFO)
    if not logs:
        return logger, None
    folder = routine_log_folder(jid, home)
    folder.mkdir(parents=True, exist_ok=True)
    report.log_file = folder / f"{jid}_{report.started.strftime('%Y%m%dT%H%M%S_%f')}.log"
    handler = logging.FileHandler(report.log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger, handler


def run_routine(jid: str, routine: RoutineFile, *, home: Path | None = None, clean_before: bool = False,
                clean_after: bool = False, client: Any = None, compute_products: ProductsHook | None = None,
                today: date | None = None, sleep: Callable[[float], None] = time.sleep) -> RunReport:
    """Run every active task of ``routine`` (see the module docstring for the phases).

    Parameters
    ----------
    jid
        The routine's id (names its log folder and the catalogue jobs' comments).
    routine
        The parsed ``job_<jid>.cfg``.
    home
        The gmsdask home (options, catalogue and outputs as :func:`~gmsdask.jobs.home.load_options` says).
    clean_before, clean_after
        Clean the tasks' tiles before/after the run, in addition to the routine's own settings.
    client
        A ``distributed.Client`` to run on; default: the current client, ``scheduler_address``, or a
        ``LocalCluster`` of ``nb_proc`` workers started when the first catalogue job runs.
    compute_products
        The cloud-mask and index hook (:mod:`gmsdask.jobs.products_hook`); default: ``gmsdask.indices``'
        ``write_indices_to_cube`` through :func:`~gmsdask.jobs.products_hook.indices_hook`.
    today
        The day of the run for ``today``/``today-xx`` (default: today in UTC).
    sleep
        Waits between fetch attempts (seconds); tests pass a no-op.
    """
    home = home or gmsdask_home()
    settings = routine.settings
    options = load_options(jid, settings.nb_proc, home)
    report = RunReport(jid, datetime.now(UTC))
    logger, handler = _run_logger(jid, home, settings.logs, report)
    catalog = Catalog(options.config.db_url)
    cluster = _Cluster(options.config, client, logger)
    ctx = _Run(jid, routine, options, catalog, logger, today or datetime.now(UTC).date(), cluster, compute_products,
               sleep, clean_before or settings.clean_before, clean_after or settings.clean_after, report)
    logger.info("routine %s: run of %d task(s), catalogue %s", jid, len(routine.tasks), catalog.url)
    try:
        lines = list(enumerate(routine.tasks))
        size = settings.process_by_line or max(1, len(lines))
        for first in range(0, len(lines), size):
            _run_chunk(ctx, lines[first:first + size])
    finally:
        cluster.close()
        catalog.close()
        report.finished = datetime.now(UTC)
        logger.info("routine %s: finished; catalogue jobs created: %s", jid,
                    ", ".join(map(str, report.catalog_job_ids)) or "none")
        if handler is not None:
            logger.removeHandler(handler)
            handler.close()
    return report
