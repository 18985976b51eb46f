"""Catalogue operations on jobs: creation, status, live statistics, and telling running jobs from dead ones.

A job set to ``running`` records its owner (host name and process id) and a heartbeat time; the process
running it calls :meth:`JobOperations.heartbeat` every ``HEARTBEAT_INTERVAL_S`` or so (or runs inside
:meth:`JobOperations.keep_alive`; recording a level counts as a heartbeat too). A job stored as
``running`` is *interrupted* when its owner process is gone (checked on the owner's host only) or its
heartbeat is older than ``HEARTBEAT_STALE_AFTER_S`` (any host; clocks of the machines are assumed to agree
within a minute). Process ids are reused by the system: a reused pid only delays the verdict until the
heartbeat is stale.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from ..config import LEVELS, JobConfig
from ..errors import CatalogError, JobError
from .database import CatalogDatabase
from .records import JobLiveness, JobOwner, JobRecord
from .schema import (
    JOB_STATUSES,
    STATISTICS_KEYS,
    TERMINAL_JOB_STATUSES,
    JobRow,
    JobSceneRow,
    SceneLevelRow,
)
from .values import check_choice, now

__all__ = ["HEARTBEAT_INTERVAL_S", "HEARTBEAT_STALE_AFTER_S", "JobOperations"]

#: How often a running controller should call ``heartbeat`` (seconds).
HEARTBEAT_INTERVAL_S = 30.0
#: A running job whose last heartbeat is older than this (seconds) counts as interrupted.
HEARTBEAT_STALE_AFTER_S = 300.0


class JobOperations(CatalogDatabase):
    """Job methods of :class:`gmsdask.catalog.Catalog` (one part of it)."""

    def create_job(self, scene_ids: Iterable[int], cfg: JobConfig, comment: str = "") -> int:
        """Create a ``pending`` job over ``scene_ids`` (duplicates dropped, order kept) run with ``cfg``."""
        ids = list(dict.fromkeys(int(scene_id) for scene_id in scene_ids))
        if not ids:
            raise CatalogError("a job needs at least one scene")
        config = cfg.model_dump(mode="json")

        def create(session: Session) -> int:
            missing = self._missing_scene_ids(session, ids)
            if missing:
                raise CatalogError(f"no scene with id {', '.join(map(str, missing))} in the catalogue")
            row = JobRow(creation_time=now(), finish_time=None, virtual_sensor=cfg.virtual_sensor_name,
                         status="pending", comment=comment, config=config)
            session.add(row)
            session.flush()
            row.config = {**config, "job_ID": row.id}
            session.execute(insert(JobSceneRow), [{"job_id": row.id, "scene_id": scene_id, "position": position}
                                                  for position, scene_id in enumerate(ids)])
            return row.id

        return self._write(create)

    def job(self, job_id: int) -> JobRecord:
        """The job with id ``job_id``, with statistics counted now."""
        return self._read(lambda session: _job_records(session, [self._job_row(session, job_id)])[0])

    def jobs(self, status: str | None = None, *, scene_id: int | None = None) -> list[JobRecord]:
        """All jobs, oldest first, or those with ``status`` (``"interrupted"``: running jobs nobody runs)
        and/or those over scene ``scene_id``."""
        if status == "interrupted":
            return [job for job in self.jobs("running", scene_id=scene_id) if self.job_liveness(job.id).interrupted]
        query = select(JobRow).order_by(JobRow.id)
        if scene_id is not None:
            query = query.where(JobRow.id.in_(select(JobSceneRow.job_id).where(JobSceneRow.scene_id == scene_id)))
        if status is not None:
            query = query.where(JobRow.status == check_choice(status, JOB_STATUSES, "job status"))
        return self._read(lambda session: _job_records(session, list(session.scalars(query))))

    def set_job_status(self, job_id: int, status: str, *, owner: JobOwner | None = None) -> None:
        """Set a job's status.

        ``running`` records ``owner`` (default: this process) and a first heartbeat and clears
        ``finish_time``; a final status sets ``finish_time``; leaving ``running`` forgets the owner.
        """
        check_choice(status, JOB_STATUSES, "job status")
        runner = (owner or JobOwner.this_process()) if status == "running" else None

        def change(session: Session) -> None:
            row = self._job_row(session, job_id, for_update=True)
            row.status = status
            row.owner_host = runner.host if runner else None
            row.owner_pid = runner.pid if runner else None
            if status == "running":
                row.finish_time, row.heartbeat_at = None, now()
            elif status in TERMINAL_JOB_STATUSES:
                row.finish_time = row.finish_time or now()

        self._write(change)

    def claim_job(self, job_id: int, *, owner: JobOwner | None = None,
                  stale_after_s: float = HEARTBEAT_STALE_AFTER_S) -> JobLiveness:
        """Set a job ``running`` for ``owner`` (default: this process) unless another live process runs it.

        Returns the job's liveness before the claim (``interrupted`` tells the caller it resumes a job whose
        controller died). Raises :class:`JobError` if the job is running under another owner that is alive.
        """
        runner = owner or JobOwner.this_process()

        def claim(session: Session) -> JobLiveness:
            row = self._job_row(session, job_id, for_update=True)
            before = _liveness(row, stale_after_s)
            if before.status == "running" and before.owner != runner:
                raise JobError(f"job {job_id} is running in process {before.owner} "
                               f"(last heartbeat {before.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC)")
            row.status, row.finish_time = "running", None
            row.owner_host, row.owner_pid, row.heartbeat_at = runner.host, runner.pid, now()
            return before

        return self._write(claim)

    def heartbeat(self, job_id: int, *, owner: JobOwner | None = None) -> bool:
        """Record that the job's controller is alive; False if the job is no longer ``running`` (for
        ``owner``, default any owner): it was canceled, finished or claimed by another process."""

        def beat(session: Session) -> bool:
            self._job_row(session, job_id)
            query = update(JobRow).where(JobRow.id == job_id, JobRow.status == "running")
            if owner is not None:
                query = query.where(JobRow.owner_host == owner.host, JobRow.owner_pid == owner.pid)
            return session.execute(query.values(heartbeat_at=now())).rowcount == 1

        return self._write(beat)

    @contextmanager
    def keep_alive(self, job_id: int, *, owner: JobOwner | None = None,
                   interval_s: float = HEARTBEAT_INTERVAL_S) -> Iterator[threading.Event]:
        """Send the job's heartbeat every ``interval_s`` seconds from a background thread while the block
        runs. Yields an event that is set once a heartbeat finds the job no longer running for ``owner``
        (canceled, finished or claimed elsewhere): the caller may stop then. A heartbeat that fails (the
        database is unreachable for a while) is tried again at the next interval."""
        runner = owner or JobOwner.this_process()
        done, lost = threading.Event(), threading.Event()

        def beat() -> None:
            while not done.wait(interval_s):
                try:
                    if not self.heartbeat(job_id, owner=runner):
                        lost.set()
                except CatalogError:
                    continue

        thread = threading.Thread(target=beat, name=f"gmsdask-heartbeat-job-{job_id}", daemon=True)
        thread.start()
        try:
            yield lost
        finally:
            done.set()
            thread.join()

    def job_liveness(self, job_id: int, *, stale_after_s: float = HEARTBEAT_STALE_AFTER_S) -> JobLiveness:
        """The job's status as it really is: ``interrupted`` instead of a stored ``running`` when its owner
        process is gone (same host) or its last heartbeat is older than ``stale_after_s`` seconds."""
        return self._read(lambda session: _liveness(self._job_row(session, job_id), stale_after_s))

    def reset_job(self, job_id: int) -> None:
        """Forget every level state of a job (``reset_status=True``): it becomes ``pending`` again.

        Records of written tiles are kept; rewriting a tile updates its record.
        """

        def reset(session: Session) -> None:
            row = self._job_row(session, job_id, for_update=True)
            session.execute(delete(SceneLevelRow).where(SceneLevelRow.job_id == job_id))
            row.status, row.finish_time, row.owner_host, row.owner_pid = "pending", None, None, None

        self._write(reset)

    def update_statistics(self, job_id: int) -> dict[str, dict[str, int]]:
        """The per-level done/failed/skipped counts of a job (counted from its level states)."""
        return self.job(job_id).statistics

    def finish_job(self, job_id: int) -> str:
        """End a job: set ``finish_time`` and the status from its scenes; return the status.

        ``finished`` if no scene failed, ``failed`` if every scene failed, else ``finished_with_errors``;
        a ``canceled`` job stays canceled. A level still ``running`` never ended (its worker was lost): it is
        recorded as failed with error type ``Interrupted``.
        """

        def finish(session: Session) -> str:
            job = self._job_row(session, job_id, for_update=True)
            stamp = now()
            session.execute(
                update(SceneLevelRow)
                .where(SceneLevelRow.job_id == job_id, SceneLevelRow.status == "running")
                .values(status="failed", finished_at=stamp, error_type="Interrupted",
                        error_message=f"the level was still running when job {job_id} finished", error_traceback=""))
            record = _job_records(session, [job])[0]
            if job.status != "canceled":
                if not record.failed_scene_ids:
                    job.status = "finished"
                elif len(record.failed_scene_ids) == len(record.scene_ids):
                    job.status = "failed"
                else:
                    job.status = "finished_with_errors"
            job.finish_time, job.owner_host, job.owner_pid = stamp, None, None
            return job.status

        return self._write(finish)


def _job_records(session: Session, rows: list[JobRow]) -> list[JobRecord]:
    """Records of ``rows`` with their scenes and statistics (three grouped queries for all of them)."""
    ids = [row.id for row in rows]
    if not ids:
        return []
    scenes: dict[int, list[int]] = {job_id: [] for job_id in ids}
    for job_id, scene_id in session.execute(
            select(JobSceneRow.job_id, JobSceneRow.scene_id).where(JobSceneRow.job_id.in_(ids))
            .order_by(JobSceneRow.job_id, JobSceneRow.position)):
        scenes[job_id].append(scene_id)
    statistics = {job_id: {level: dict.fromkeys(STATISTICS_KEYS, 0) for level in LEVELS} for job_id in ids}
    for job_id, level, status, count in session.execute(
            select(SceneLevelRow.job_id, SceneLevelRow.level, SceneLevelRow.status, func.count())
            .where(SceneLevelRow.job_id.in_(ids), SceneLevelRow.status.in_(STATISTICS_KEYS))
            .group_by(SceneLevelRow.job_id, SceneLevelRow.level, SceneLevelRow.status)):
        statistics[job_id].setdefault(level, dict.fromkeys(STATISTICS_KEYS, 0))[status] = count
    failed: dict[int, set[int]] = {job_id: set() for job_id in ids}
    for job_id, scene_id in session.execute(
            select(SceneLevelRow.job_id, SceneLevelRow.scene_id).distinct()
            .where(SceneLevelRow.job_id.in_(ids), SceneLevelRow.status == "failed")):
        failed[job_id].add(scene_id)
    return [JobRecord(row.id, row.creation_time, row.finish_time, scenes[row.id],
                      [scene_id for scene_id in scenes[row.id] if scene_id in failed[row.id]],
                      row.virtual_sensor, row.status, statistics[row.id], row.comment, dict(row.config),
                      _owner(row), row.heartbeat_at)
            for row in rows]


def _owner(row: JobRow) -> JobOwner | None:
    return JobOwner(row.owner_host, row.owner_pid) if row.owner_host and row.owner_pid is not None else None


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:        # it exists, owned by another user
        return True
    return True


def _liveness(row: JobRow, stale_after_s: float) -> JobLiveness:
    owner, heartbeat = _owner(row), row.heartbeat_at
    reason = ""
    if row.status == "running":
        if owner is None:
            reason = "no owner process is recorded"
        elif owner.host == socket.gethostname() and not _process_exists(owner.pid):
            reason = f"its owner process {owner} is gone"
        elif heartbeat is None or now() - heartbeat > timedelta(seconds=stale_after_s):
            seen = "never" if heartbeat is None else f"{_age(heartbeat)} ago"
            reason = f"its last heartbeat was {seen} (owner {owner})"
    status = "interrupted" if reason else row.status
    return JobLiveness(row.id, status, row.status, owner, heartbeat, reason)


def _age(moment: datetime) -> str:
    seconds = int((now() - moment).total_seconds())
    return f"{seconds // 3600} h {seconds % 3600 // 60} min" if seconds >= 3600 else f"{seconds} s"
