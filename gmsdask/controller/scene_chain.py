"""One scene through the levels of a job, on the client: build each level's lazy graph, compute its work on the
cluster (cancellable, with retries), record the outcome. Never raises for a scene's failure: it is recorded and
returned, and the other scenes go on. A small product's chain runs as one task on a worker instead
(:mod:`.scene_task`); the same class runs it there, with Dask's synchronous scheduler and no client."""

from __future__ import annotations

import errno
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import dask
import xarray as xr
from distributed import Client, Event

from ..catalog import Catalog, LevelRecord, SceneRecord
from ..config import JobConfig
from ..errors import DiskFullError
from ..io.scene_store import read_scene, write_scene
from ..levels import Level, LevelCanceled, LevelContext, LevelOutcome, LevelRegistry, product_stub
from .level_events import SharedLevels
from .scene_task import SceneTask, SceneTaskReport, product_megabytes, replay, run_scene_task
from .stoppable import Cancelled, gather_or_cancel

__all__ = ["SceneResult", "SceneChain", "Cancelled", "COMPLETED"]

#: Level states a rerun does not repeat.
COMPLETED = frozenset({"done", "skipped"})
#: Pseudo-level of the events that say a scene's task was submitted (or that it never will be)
_SUBMITTED = "(submitted)"


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
    #: CPU seconds the client spent on the scene: opening products, building and submitting graphs, catalogue
    #: writes (the pixel work runs on the workers; waiting for it costs no CPU)
    client_cpu_s: float = 0.0


@dataclass
class SceneChain:
    """Runs scenes of one job through the levels; shared by the controller's scene threads (stateless per scene
    but for the events that order scenes behind their references)."""

    job_id: int
    config: JobConfig
    registry: LevelRegistry
    catalog: Catalog
    #: None on a worker (a scene task): the work is computed here, with the current (synchronous) scheduler
    client: Client | None
    logger: logging.Logger
    cancel: threading.Event
    references: dict[int, tuple[tuple[str, SceneRecord], ...]]
    #: ``(record, level, status, seconds)`` after every level state change (progress, timings)
    on_level: Callable[..., None] = lambda record, level, status, seconds=0.0: None
    #: products up to this size (MB on disk) run as one scene task on a worker; 0: never
    scene_task_max_mb: float = 0.0
    #: name of the ``distributed.Event`` that tells running scene tasks the job was stopped
    stop_event: str = ""
    #: in a job of at least as many scenes as workers, products up to this size (MB) run as one task each too
    #: (with ``shared_levels``); 0: never
    whole_scene_task_max_mb: float = 0.0
    #: announcements of reached levels shared with the job's scene tasks (scenes of the job wait for each other
    #: inside their tasks); None: in this process only, a scene task waits for its references before it starts
    shared_levels: SharedLevels | None = None

    def __post_init__(self) -> None:
        self._reached: dict[tuple[int, str], threading.Event] = {}
        self._lock = threading.Lock()

    # --- ordering behind references ----------------------------------------------------------------------
    def _event(self, scene_id: int, level: str) -> threading.Event:
        with self._lock:
            return self._reached.setdefault((scene_id, level), threading.Event())

    def _wait_for_references(self, level: Level, ctx: LevelContext, job_scene_ids: set[int]) -> None:
        if level.reference_level is None:
            return
        for _role, reference in ctx.references:
            if reference.id in job_scene_ids and reference.id != ctx.record.id:
                if self.shared_levels is not None:
                    if not self.shared_levels.wait(reference.id, level.reference_level, self.client, self.cancel):
                        raise Cancelled(f"job {self.job_id} was stopped")
                    continue
                event = self._event(reference.id, level.reference_level)
                while not event.wait(0.2):
                    if self.cancel.is_set():
                        raise Cancelled(f"job {self.job_id} was stopped")

    def _announce(self, scene_id: int, level_names: list[str]) -> None:
        for name in level_names:
            self._event(scene_id, name).set()
        if self.shared_levels is not None:
            self.shared_levels.announce(scene_id, level_names, self.client)

    def release_all(self, scene_id: int) -> None:
        """Wake scenes waiting for ``scene_id`` (it failed or finished early: they go on without waiting)."""
        self._announce(scene_id, list(self.registry.names))

    # --- cluster work -------------------------------------------------------------------------------------
    def compute(self, work: tuple[Any, ...]) -> list[Any]:
        """Compute Dask collections on the cluster with the job's retries; cancel them when the job stops.

        Waiting looks only at the futures' own state: ``distributed.wait`` would need the job's client to be the
        process's default client, which a client connected through ``scheduler_address`` is not.
        """
        if not work:
            return []
        if self.client is None:
            return self._compute_here(work)
        return self._wait(self.client.compute(list(work), retries=self.config.retries))

    def _compute_here(self, work: tuple[Any, ...]) -> list[Any]:
        """``work`` computed in this process (a scene task), tried ``retries`` more times when it raises, as
        the cluster retries a task."""
        for attempt in range(self.config.retries + 1):
            try:
                return list(dask.compute(*work))
            except Exception as error:
                if attempt == self.config.retries or self.cancel.is_set():
                    raise
                self.logger.warning("computation failed (%s: %s); retry %d of %d", type(error).__name__, error,
                                    attempt + 1, self.config.retries)
        raise AssertionError("unreachable")

    def _wait(self, futures: list[Any]) -> list[Any]:
        """The results of ``futures``; cancels them when the job stops (the wait wakes at once)."""
        return gather_or_cancel(self.client, futures, self.cancel, self.job_id)

    def stop_scene_tasks(self) -> None:
        """Tell running scene tasks that the job is stopping. (Every wait for futures, here and in the levels'
        eager steps, sees the job's stop flag at once and cancels its own futures.)"""
        if self.stop_event and self.client is not None:
            # a cancelled future does not stop a task already running: its chain watches this event
            try:
                Event(self.stop_event, client=self.client).set()
            except Exception as error:  # noqa: BLE001 - stop() must not fail (it runs in a signal handler)
                self.logger.warning("could not tell running scene tasks to stop (%s: %s); they finish their "
                                    "chains, and a rerun rewrites what they wrote", type(error).__name__, error)

    # --- one scene ----------------------------------------------------------------------------------------
    def context(self, record: SceneRecord) -> LevelContext:
        return LevelContext(record=record, config=self.config, job_id=self.job_id,
                            references=self.references.get(record.id, ()),
                            output_dir=self.output_dir(record), cancel_requested=self.cancel.is_set)

    def output_dir(self, record: SceneRecord) -> Path:
        return Path(self.config.path_procdata_scenes) / f"job_{self.job_id}" / record.product_id

    def run(self, record: SceneRecord, target: str, job_scene_ids: set[int]) -> SceneResult:
        """The scene's chain up to ``target``; a failure is recorded and returned, never raised."""
        started = time.thread_time()  # this thread's CPU time: the client's own share of the scene
        try:
            if self._runs_as_task(record):
                result = self._run_as_task(record, target, job_scene_ids)
            else:
                self._event(record.id, _SUBMITTED).set()  # its levels are announced here, as they complete
                result = self._run_chain(record, target, job_scene_ids)
        finally:
            self._event(record.id, _SUBMITTED).set()  # also when it failed before its task was submitted
            ctx = self.context(record)
            for level in self.registry.levels:
                if level.end_of_chain is not None:
                    level.end_of_chain(ctx)
        return replace(result, client_cpu_s=time.thread_time() - started)

    def _runs_as_task(self, record: SceneRecord) -> bool:
        """Whether the scene's chain runs as one task on a worker: a small product (``scene_task_max_mb``), or in a
        job of at least as many scenes as workers a product up to ``whole_scene_task_max_mb``. Whole scenes side
        by side need no client-built graphs, scheduler round trips or transfers between workers."""
        if self.scene_task_max_mb <= 0 and self.whole_scene_task_max_mb <= 0:
            return False
        megabytes = product_megabytes(record.product_path)
        return megabytes <= max(self.scene_task_max_mb, self.whole_scene_task_max_mb)

    def _run_as_task(self, record: SceneRecord, target: str, job_scene_ids: set[int]) -> SceneResult:
        """The scene's chain as one task on a worker (:mod:`.scene_task`); its records replayed here."""
        assert self.client is not None
        ctx = self.context(record)
        levels = self.registry.upto(target)
        records = tuple(self.catalog.level_records(self.job_id, record.id))
        try:
            if self.shared_levels is None:  # the task runs every level: each level's references first
                for level in levels:
                    self._wait_for_references(level, ctx, job_scene_ids)
            else:  # it waits for them inside: submitted after them (and behind them in the queue: priority)
                for _role, reference in ctx.references:
                    if reference.id in job_scene_ids and reference.id != record.id:
                        while not self._event(reference.id, _SUBMITTED).wait(0.2):
                            if self.cancel.is_set():
                                raise Cancelled(f"job {self.job_id} was stopped")
            if self.cancel.is_set():
                raise Cancelled(f"job {self.job_id} was stopped")
            task = SceneTask(self.job_id, self.config, self.registry, record, target, ctx.references, records,
                             self.stop_event, self.shared_levels, frozenset(job_scene_ids))
            # a task raises only with disable_exception_handler (the chain records every other failure): once
            retries = 0 if self.config.disable_exception_handler else self.config.retries
            is_reference = any(ref.id == record.id for pairs in self.references.values() for _role, ref in pairs)
            future = self.client.submit(run_scene_task, task, retries=retries, pure=False, priority=int(is_reference),
                                        key=f"scene-task-{record.product_id}-{uuid.uuid4().hex[:8]}")
            self._event(record.id, _SUBMITTED).set()
            (report,) = self._wait([future])
        except Cancelled as stop:
            self.release_all(record.id)
            open_level = _first_open_level(levels, records)
            if open_level is not None:
                self.catalog.record_level(self.job_id, record.id, open_level, "canceled", note=str(stop))
            names = [level.name for level in levels]
            reached = names[-1] if open_level is None else (names[names.index(open_level) - 1]
                                                            if names.index(open_level) else None)
            return SceneResult(record.id, record.product_id, record.platform, reached, None, "Cancelled", str(stop))
        except Exception as error:  # noqa: BLE001 - the task itself failed (e.g. its worker was lost too often)
            self.release_all(record.id)
            if self.config.disable_exception_handler:
                raise
            return self._failed(record, _first_open_level(levels, records) or target, error, None)
        assert isinstance(report, SceneTaskReport)
        replay(report, self.catalog, self.logger, self.on_level)
        result: SceneResult = report.result
        if result.exception_type:
            self.release_all(record.id)
        elif result.level_reached is not None:
            names = self.registry.names
            self._announce(record.id, list(names[: names.index(result.level_reached) + 1]))
        return result

    def _run_chain(self, record: SceneRecord, target: str, job_scene_ids: set[int]) -> SceneResult:
        entered: dict[str, xr.DataTree] = {}  # the scene as it entered each level of this run
        levels = self.registry.upto(target)
        ctx = replace(self.context(record), run_levels=tuple(level.name for level in levels),
                      scene_before=lambda name: (entered[name] if name in entered
                                                 else self.build(record, self._previous_level(name))))
        records = self.catalog.level_records(self.job_id, record.id)  # one catalogue call for both
        statuses = {r.level: r.status for r in records}
        versions = {r.level: r.version for r in records}
        scene: xr.DataTree = product_stub(record)
        reached: str | None = None
        try:
            resume_at, stored_scene = self._resume_point(levels, statuses, versions, record)
            if stored_scene is not None:
                # a rerun starts from the last completed level's written product: the levels before it are
                # neither rebuilt nor is their work (tie points, lookup tables) computed again
                scene, reached = stored_scene, levels[resume_at].name
                self._announce(record.id, [level.name for level in levels[: resume_at + 1]])
            for level in levels[resume_at + 1:]:
                if self.cancel.is_set():
                    raise Cancelled(f"job {self.job_id} was stopped")
                # a level recorded by an older implementation runs again (e.g. L1B once it exists)
                completed = statuses.get(level.name) in COMPLETED and versions.get(level.name) == level.version
                self._wait_for_references(level, ctx, job_scene_ids)
                entered[level.name] = scene
                if completed and not level.rebuild_when_done:
                    reached = level.name
                elif completed and (stored := self._stored_product(level, record)) is not None:
                    scene, reached = stored, level.name  # a rerun starts from the level's written product
                else:
                    scene = self._run_level(level, scene, ctx, record=not completed).scene
                    reached = level.name
                self._announce(record.id, [level.name])
        except (Cancelled, LevelCanceled) as stop:
            self.release_all(record.id)
            if reached != target:
                level_name = self._next_level(reached, target)
                self.catalog.record_level(self.job_id, record.id, level_name, "canceled", note=str(stop))
            return SceneResult(record.id, record.product_id, record.platform, reached, None, "Cancelled", str(stop))
        except Exception as error:  # noqa: BLE001 - every failure of one scene is recorded, others go on
            self.release_all(record.id)
            if self.config.disable_exception_handler:
                raise
            return self._failed(record, self._next_level(reached, target), error, reached)
        if reached == self.registry.names[-1]:
            self._delete_unneeded_products(record)
        return SceneResult(record.id, record.product_id, record.platform, reached)

    def _failed(self, record: SceneRecord, failed: str, error: Exception, reached: str | None) -> SceneResult:
        """Record ``failed`` as the scene's failed level with ``error``; the scene's result."""
        error = self._named(error, record, failed)
        self.catalog.record_level(self.job_id, record.id, failed, "failed", error=error,
                                  version=self.registry[failed].version)
        self.on_level(record, failed, "failed")
        self.logger.error("%s: %s failed: %s: %s", record.product_id, failed, type(error).__name__, error)
        return SceneResult(record.id, record.product_id, record.platform, reached, failed, type(error).__name__,
                           str(error))

    def _named(self, error: Exception, record: SceneRecord, level_name: str) -> Exception:
        """``error``, or a :class:`DiskFullError` naming the output location when a write ran out of space
        (the ``OSError`` raised by a store on a worker says neither which scene nor where)."""
        cause: BaseException | None = error
        while cause is not None and not (isinstance(cause, OSError) and cause.errno == errno.ENOSPC):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            return error
        where = (self.output_dir(record) if self.registry[level_name].writes_scene
                 else Path(self.config.path_procdata_MGRS))
        named = DiskFullError(record.product_id, level_name, f"no space left on the device writing to {where} "
                                                             f"({cause}); free space there and rerun the job")
        named.__cause__ = error
        return named

    def _delete_unneeded_products(self, record: SceneRecord) -> None:
        """Level products written with ``exec_<level>P = [run, write, delete=True]``, once the chain is through."""
        for level in self.registry.levels[:-1]:
            _run, write, delete = self.config.exec_flags(level.name)
            product = self.output_dir(record) / f"{level.name}.zarr"
            if write and delete and product.exists():
                shutil.rmtree(product)
                self.logger.info("%s: deleted %s (exec_%sP delete flag)", record.product_id, product, level.name)

    def build(self, record: SceneRecord, upto: str | None) -> xr.DataTree:
        """The scene's lazy tree after level ``upto`` (None: the product stub), built on the client without
        recording or computing anything (a written level product is read instead where there is one)."""
        ctx = self.context(record)
        scene: xr.DataTree = product_stub(record)
        if upto is None:
            return scene
        levels = self.registry.upto(upto)
        stored = [index for index, level in enumerate(levels) if self._stored_path(level, record) is not None]
        start = stored[-1] if stored else -1  # the levels before the last written product need not be rebuilt
        if start >= 0:
            scene = self._stored_product(levels[start], record)  # type: ignore[assignment]
        for level in levels[start + 1:]:
            scene = level.run(scene, ctx).scene
        return scene

    def _previous_level(self, name: str) -> str | None:
        names = self.registry.names
        index = names.index(self.registry[name].name)
        return names[index - 1] if index else None

    def _next_level(self, reached: str | None, target: str) -> str:
        names = [level.name for level in self.registry.upto(target)]
        return names[0] if reached is None else names[min(names.index(reached) + 1, len(names) - 1)]

    def _resume_point(self, levels: tuple[Level, ...], statuses: dict[str, str], versions: dict[str, str],
                      record: SceneRecord) -> tuple[int, xr.DataTree | None]:
        """Index of the last level a rerun can start from, and its product (``-1, None``: start from the product
        archive): the level wrote its product, and it and every level before it completed with today's version."""
        start, path = -1, None
        for index, level in enumerate(levels):
            if not (statuses.get(level.name) in COMPLETED and versions.get(level.name) == level.version):
                break
            if (stored := self._stored_path(level, record)) is not None:
                start, path = index, stored
        return start, (None if path is None else read_scene(path, self.config.chunks))

    def _stored_path(self, level: Level, record: SceneRecord) -> Path | None:
        _run, write, _delete = self.config.exec_flags(level.name)
        path = self.output_dir(record) / f"{level.name}.zarr"
        return path if write and level.writes_scene and path.exists() else None

    def _stored_product(self, level: Level, record: SceneRecord) -> xr.DataTree | None:
        path = self._stored_path(level, record)
        return None if path is None else read_scene(path, self.config.chunks)

    def _run_level(self, level: Level, scene: xr.DataTree, ctx: LevelContext, *, record: bool) -> LevelOutcome:
        run, write, _delete = self.config.exec_flags(level.name)
        started = time.perf_counter()
        if record:
            self.on_level(ctx.record, level.name, "running")
        if run:
            outcome = level.run(scene, ctx)
        elif scene.children or level.order > self.registry.levels[0].order:
            outcome = LevelOutcome(scene, "skipped", f"{level.name}: disabled by the configuration")
        else:  # the first level turned off still has to import the product for the levels after it
            outcome = replace(level.run(scene, ctx), status="skipped",
                              note=f"{level.name}: disabled by the configuration")
        work = list(outcome.work)
        product: Path | None = None
        if record and run and write and level.writes_scene and outcome.status == "done":
            product = self.output_dir(ctx.record) / f"{level.name}.zarr"
            staging = product.with_name(f".{product.name}.{uuid.uuid4().hex[:8]}.tmp")
            work.append(write_scene(outcome.scene, staging, compute=False))
        if record and work:
            # the catalogue marks a level running only when it has work to compute (a level that only builds
            # its lazy graph goes straight to its end state: one catalogue write per level instead of two)
            self.catalog.record_level(self.job_id, ctx.record.id, level.name, "running")
        results = self.compute(tuple(work))
        if outcome.finish is not None:
            outcome = outcome.finish(results[: len(outcome.work)])
        if product is not None:
            _swap_into_place(staging, product)
            # the levels after this one read the written product: continuing with the lazy tree would compute
            # every level up to here a second time (the write above already paid for them once)
            outcome = replace(outcome, scene=read_scene(product, self.config.chunks),
                              outputs=(*outcome.outputs, str(product)))
        seconds = time.perf_counter() - started
        if record:
            for tile in outcome.tiles:
                self.catalog.record_tile(self.job_id, tile.tile, self.config.virtual_sensor_name, tile.path,
                                         ctx.record.id)
            self.catalog.record_level(self.job_id, ctx.record.id, level.name, outcome.status,
                                      output=";".join(outcome.outputs), note=outcome.note, version=level.version,
                                      facts=dict(outcome.facts))
            self.on_level(ctx.record, level.name, outcome.status, seconds)
            self.logger.info("%s %s %s in %.2f s%s", ctx.record.product_id, level.name, outcome.status, seconds,
                             f" ({outcome.note})" if outcome.note else "")
            if self.config.benchmark_global:
                self.logger.info("benchmark: %s %s %s %.3f s", ctx.record.product_id, level.name, outcome.status,
                                 seconds)
        return outcome


def _first_open_level(levels: tuple[Level, ...], records: tuple[LevelRecord, ...]) -> str | None:
    """The first of ``levels`` not completed by its current version in ``records`` (None: all are)."""
    done = {r.level for r in records if r.status in COMPLETED}
    versions = {r.level: r.version for r in records}
    return next((level.name for level in levels
                 if level.name not in done or versions.get(level.name) != level.version), None)


def _swap_into_place(staging: Path, product: Path) -> None:
    """Replace ``product`` by ``staging``: the old product stays until the new one is complete."""
    if product.exists():
        retired = product.with_name(f".{product.name}.{uuid.uuid4().hex[:8]}.old")
        product.rename(retired)
        staging.rename(product)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(product)
