"""Catalogue operations on the state of each level of each scene in a job, its failures and written tiles.

Each level state records the version of the level's implementation that produced it. When a level's
implementation changes, the controller passes the current versions (``{level: version}``) to
:meth:`LevelOperations.last_completed_level` (a state made by another version does not count as completed,
so the scene resumes there) or lists them with :meth:`LevelOperations.outdated_levels`.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Executable,
    and_,
    bindparam,
    delete,
    exists,
    func,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from ..config import LEVELS
from ..errors import CatalogError
from .database import CatalogDatabase
from .engine import dialect_name, upsert, upsert_statement
from .records import FailureRecord, LevelRecord, TileRecord
from .schema import (
    COMPLETED_LEVEL_STATUSES,
    LEVEL_STATUSES,
    JobRow,
    JobSceneRow,
    SceneLevelRow,
    SceneRow,
    TileWrittenRow,
)
from .values import ErrorReport, catalog_tile, check_choice, now

__all__ = ["LevelOperations"]

_LEVELS_TABLE = SceneLevelRow.__table__
_TILES_TABLE = TileWrittenRow.__table__
_LEVEL_KEYS = ("job_id", "scene_id", "level")
_TILE_KEYS = ("job_id", "tile", "virtual_sensor", "scene_id")
#: Recording a level writes the job's heartbeat at most this often (seconds) per catalogue object.
RECORD_HEARTBEAT_EVERY_S = 5.0


#: Level names: the registry (gmsdask.levels) decides which exist; the catalogue only checks their form.
_LEVEL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")


def _chain_position(level: str) -> tuple[int, str]:
    """Sort key in chain order: the built-in levels by position, others (plugins) by name among them
    (``L1D`` after ``L1C``), as level names sort in chain order."""
    return (LEVELS.index(level), level) if level in LEVELS else (sorted([*LEVELS, level]).index(level), level)


class LevelOperations(CatalogDatabase):
    """Level-state methods of :class:`gmsdask.catalog.Catalog` (one part of it)."""

    def record_level(
        self,
        job_id: int,
        scene_id: int,
        level: str,
        status: str,
        *,
        output: str | Path = "",
        error: BaseException | ErrorReport | None = None,
        note: str = "",
        version: str = "",
        facts: Mapping[str, Any] | None = None,
    ) -> None:
        """Record the state of ``level`` of a scene in a job (replacing an earlier state of it).

        ``running`` stamps the start time, the other states the finish time. ``error`` (for ``failed``)
        is stored as exception type, message and formatted traceback; a state without error clears them.
        ``note`` says why (e.g. why a level was skipped), ``version`` is the version of the level's
        implementation, ``facts`` small JSON-able results of the level (``{"shift_x_m": 3.2}``).
        Recording a level of a ``running`` job also counts as its heartbeat.
        """
        if not _LEVEL_NAME.match(level):
            raise CatalogError(f"invalid processing level {level!r}: a name such as 'L2A' is expected")
        check_choice(status, LEVEL_STATUSES, "level status")
        if facts is not None:
            try:
                facts = json.loads(json.dumps(dict(facts)))
            except (TypeError, ValueError) as err:
                raise CatalogError(f"{level} facts of scene {scene_id} in job {job_id} are not JSON: {err}") from None
        stamp = now()
        report = None if error is None else ErrorReport.of(error)
        values = {
            "job_id": job_id, "scene_id": scene_id, "level": level, "status": status, "output": str(output),
            "started_at": stamp, "finished_at": None if status == "running" else stamp,
            "error_type": report.type_name if report is not None else "",
            "error_message": report.message if report is not None else "",
            "error_traceback": report.traceback if report is not None else "",
            "note": note, "version": str(version),
            "facts": null() if facts is None else facts,   # no facts: SQL NULL, not JSON 'null'
        }
        beat = self._heartbeat_due(job_id)

        def record(connection: Connection) -> bool:
            # the job row first, as finish_job locks it: every writer takes the locks in one order; on SQLite the
            # two statements commit apart: a heartbeat needs no level state, nor the state a heartbeat
            if beat:
                connection.execute(_HEARTBEAT, {"job_id": job_id, "stamp": stamp})
            # one statement on SQLite and PostgreSQL: the state is written only for a scene of the job
            statement = _level_upsert(dialect_name(connection), status != "running")
            if statement is not None:
                return connection.execute(statement, values).rowcount > 0
            member = exists().where(JobSceneRow.job_id == job_id, JobSceneRow.scene_id == scene_id)
            changes = {name: value for name, value in values.items() if name not in _LEVEL_KEYS}
            if status != "running":
                changes["started_at"] = lambda proposed: func.coalesce(_LEVELS_TABLE.c.started_at,
                                                                       proposed["started_at"])
            return upsert(connection, _LEVELS_TABLE, values, _LEVEL_KEYS, changes, only_if=member) is not None

        if not self._statements(record, write=True, retry_on_conflict=True):
            self._read(lambda session: (self._job_row(session, job_id), self._scene_row(session, scene_id)))
            raise CatalogError(f"scene {scene_id} is not part of job {job_id}")

    def _heartbeat_due(self, job_id: int) -> bool:
        """Whether recording a level of ``job_id`` should also write its heartbeat: at most once per
        ``RECORD_HEARTBEAT_EVERY_S`` per catalogue object (a job goes stale after minutes; one more UPDATE in
        every level's two records cost a statement inside the write lock each)."""
        moment = time.monotonic()
        last = self._level_heartbeats.get(job_id)
        if last is not None and moment - last < RECORD_HEARTBEAT_EVERY_S:
            return False
        self._level_heartbeats[job_id] = moment
        return True

    def reset_scene_levels(self, job_id: int, scene_id: int, levels: Sequence[str]) -> None:
        """Forget the states of ``levels`` of one scene in a job: a rerun processes them again."""

        def reset(session: Session) -> None:
            self._job_row(session, job_id)
            self._scene_row(session, scene_id)
            if levels:
                session.execute(delete(SceneLevelRow).where(SceneLevelRow.job_id == job_id,
                                                            SceneLevelRow.scene_id == scene_id,
                                                            SceneLevelRow.level.in_(list(levels))))

        self._write(reset, retry_on_conflict=True)

    def level_status(self, job_id: int, scene_id: int) -> dict[str, str]:
        """``{level: status}`` of the levels recorded for a scene in a job, in chain order."""
        return {record.level: record.status for record in self.level_records(job_id, scene_id)}

    def level_records(self, job_id: int, scene_id: int | None = None) -> list[LevelRecord]:
        """The level states of a job (of one scene if given), by scene and chain order, with outputs."""

        # one prepared statement, no transaction around it: the states joined to the job's scene (or to the job),
        # so that a known job or scene without states still gives a row (of NULL states)
        if scene_id is not None:
            rows = self._statements(lambda connection: list(connection.execute(
                _SCENE_STATES, {"job_id": job_id, "scene_id": scene_id})), write=False)
        else:
            rows = self._statements(lambda connection: list(connection.execute(
                _JOB_STATES, {"job_id": job_id})), write=False)
        if not rows:   # not a scene of the job: the ids are checked (a scene of another job has no states here)
            self._read(lambda session: (self._job_row(session, job_id),
                                        scene_id is not None and self._scene_row(session, scene_id)))
        return _level_records(row for row in rows if row.level is not None)

    def last_completed_level(self, job_id: int, scene_id: int,
                             versions: Mapping[str, str] | None = None) -> str | None:
        """The last level of the chain that is done or skipped with all levels before it: a rerun resumes
        after it. None if L1A is not completed.

        With ``versions`` (``{level: current implementation version}``) a state recorded by another
        version of its level does not count as completed.
        """
        records = {record.level: record for record in self.level_records(job_id, scene_id)}
        last: str | None = None
        for level in LEVELS:
            record = records.get(level)
            if record is None or record.status not in COMPLETED_LEVEL_STATUSES:
                break
            if versions is not None and level in versions and record.version != str(versions[level]):
                break
            last = level
        return last

    def outdated_levels(self, versions: Mapping[str, str], *, job_id: int | None = None) -> list[LevelRecord]:
        """Completed (done or skipped) level states recorded by another version of their level than
        ``versions[level]`` (states without a recorded version included), of one job or all jobs; by job,
        scene and chain order. Levels missing from ``versions`` are not looked at."""
        if not versions:
            return []
        outdated = or_(*(and_(SceneLevelRow.level == level, SceneLevelRow.version != str(version))
                         for level, version in versions.items()))
        query = select(SceneLevelRow).where(SceneLevelRow.status.in_(COMPLETED_LEVEL_STATUSES), outdated)

        def find(session: Session) -> list[LevelRecord]:
            if job_id is not None:
                self._job_row(session, job_id)
                return _level_records(session.scalars(query.where(SceneLevelRow.job_id == job_id)))
            return _level_records(session.scalars(query))

        return self._read(find)

    def failures(self, job_id: int) -> list[FailureRecord]:
        """The failed levels of a job's scenes, with exception type, message and traceback."""

        def find(session: Session) -> list[FailureRecord]:
            self._job_row(session, job_id)
            query = (select(SceneLevelRow, SceneRow)
                     .join(SceneRow, SceneRow.id == SceneLevelRow.scene_id)
                     .where(SceneLevelRow.job_id == job_id, SceneLevelRow.status == "failed"))
            records = [FailureRecord(scene.id, scene.product_id, scene.platform, level.level, level.error_type,
                                     level.error_message, level.error_traceback)
                       for level, scene in session.execute(query)]
            return sorted(records, key=lambda record: (record.scene_id, _chain_position(record.level)))

        return self._read(find)

    # --- MGRS tiles ----------------------------------------------------------------------------------

    def record_tile(self, job_id: int, tile: str, virtual_sensor: str, path: str | Path, scene_id: int) -> None:
        """Record that a job wrote ``scene_id`` into the cube of MGRS ``tile`` at ``path`` (again: updated)."""
        values = {"job_id": job_id, "tile": catalog_tile(tile), "virtual_sensor": virtual_sensor,
                  "scene_id": scene_id, "path": str(path), "written_at": now()}


        def record(connection: Connection) -> bool:
            statement = _tile_upsert(dialect_name(connection))
            if statement is not None:
                return connection.execute(statement, values).rowcount > 0
            both_exist = and_(exists().where(JobRow.id == job_id), exists().where(SceneRow.id == scene_id))
            return upsert(connection, _TILES_TABLE, values, _TILE_KEYS, only_if=both_exist) is not None

        if not self._statements(record, write=True, retry_on_conflict=True):
            self._read(lambda session: (self._job_row(session, job_id), self._scene_row(session, scene_id)))
            raise CatalogError(f"job {job_id} or scene {scene_id} vanished while recording tile {tile}")

    def tiles_written(self, job_id: int) -> list[TileRecord]:
        """The tile cubes a job wrote, by tile, virtual sensor and scene."""

        def find(session: Session) -> list[TileRecord]:
            self._job_row(session, job_id)
            query = (select(TileWrittenRow).where(TileWrittenRow.job_id == job_id)
                     .order_by(TileWrittenRow.tile, TileWrittenRow.virtual_sensor, TileWrittenRow.scene_id))
            return [TileRecord(row.job_id, row.tile, row.virtual_sensor, row.path, row.scene_id, row.written_at)
                    for row in session.scalars(query)]

        return self._read(find)


def _level_records(rows: Iterable[Any]) -> list[LevelRecord]:
    """Records of ``scene_levels`` rows (ORM objects or Core rows), by job, scene and chain order."""
    ordered = sorted(rows, key=lambda row: (row.job_id, row.scene_id, _chain_position(row.level)))
    return [LevelRecord(row.job_id, row.scene_id, row.level, row.status, row.output, row.started_at,
                        row.finished_at, row.error_type, row.error_message, row.error_traceback, row.note,
                        row.version, dict(row.facts) if row.facts is not None else None)
            for row in ordered]


# --- prepared statements of the calls made for every scene and level ----------------------------------------
# Built once (per dialect): building a statement costs more Python than running it (see database.py).

#: a job's heartbeat, written with a level state
_HEARTBEAT = (update(JobRow.__table__)
              .where(JobRow.__table__.c.id == bindparam("job_id"), JobRow.__table__.c.status == "running")
              .values(heartbeat_at=bindparam("stamp", type_=JobRow.__table__.c.heartbeat_at.type)))
#: the states of one scene of a job, or one row of NULLs for a scene of the job without states
_SCENE_STATES = (select(_LEVELS_TABLE).select_from(JobSceneRow.__table__)
                 .outerjoin(_LEVELS_TABLE, and_(_LEVELS_TABLE.c.job_id == JobSceneRow.job_id,
                                                _LEVELS_TABLE.c.scene_id == JobSceneRow.scene_id))
                 .where(JobSceneRow.job_id == bindparam("job_id"), JobSceneRow.scene_id == bindparam("scene_id")))
#: the states of a job, or one row of NULLs for a job without states
_JOB_STATES = (select(_LEVELS_TABLE).select_from(JobRow.__table__)
               .outerjoin(_LEVELS_TABLE, _LEVELS_TABLE.c.job_id == JobRow.id)
               .where(JobRow.id == bindparam("job_id")))


@functools.cache
def _level_upsert(dialect: str, ending: bool) -> Executable | None:
    """The upsert of one level state, written only for a scene of the job; a level that ends keeps the start
    time of its run (``ending``)."""

    def member(params: Mapping[str, Any]) -> Any:
        return exists().where(JobSceneRow.job_id == params["job_id"], JobSceneRow.scene_id == params["scene_id"])

    def changes(excluded: Any) -> dict[str, Any]:
        values = {column.name: excluded[column.name] for column in _LEVELS_TABLE.columns
                  if column.name not in (*_LEVEL_KEYS, "id")}
        if ending:
            values["started_at"] = func.coalesce(_LEVELS_TABLE.c.started_at, excluded.started_at)
        return values

    return upsert_statement(dialect, _LEVELS_TABLE, _LEVEL_KEYS, only_if=member, update_values=changes)


@functools.cache
def _tile_upsert(dialect: str) -> Executable | None:
    """The upsert of one written tile, written only where its job and scene exist."""

    def both_exist(params: Mapping[str, Any]) -> Any:
        return and_(exists().where(JobRow.id == params["job_id"]), exists().where(SceneRow.id == params["scene_id"]))

    return upsert_statement(dialect, _TILES_TABLE, _TILE_KEYS, only_if=both_exist)
