"""Catalogue operations on the state of each level of each scene in a job, its failures and written tiles.

Each level state records the version of the level's implementation that produced it. When a level's
implementation changes, the controller passes the current versions (``{level: version}``) to
:meth:`LevelOperations.last_completed_level` (a state made by another version does not count as completed,
so the scene resumes there) or lists them with :meth:`LevelOperations.outdated_levels`.
"""

from __future__ import annotations

import re

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from ..config import LEVELS
from ..errors import CatalogError
from .database import CatalogDatabase
from .engine import upsert
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
from .values import catalog_tile, check_choice, format_traceback, now

__all__ = ["LevelOperations"]

_LEVELS_TABLE = SceneLevelRow.__table__


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
        error: BaseException | None = None,
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
        values = {
            "job_id": job_id, "scene_id": scene_id, "level": level, "status": status, "output": str(output),
            "started_at": stamp, "finished_at": None if status == "running" else stamp,
            "error_type": type(error).__name__ if error is not None else "",
            "error_message": str(error) if error is not None else "",
            "error_traceback": format_traceback(error) if error is not None else "",
            "note": note, "version": str(version), "facts": facts,
        }
        keys = ("job_id", "scene_id", "level")
        changes: dict[str, Any] = {name: value for name, value in values.items() if name not in keys}
        if status != "running":   # a level that ends keeps the start time of its run
            changes["started_at"] = lambda proposed: func.coalesce(_LEVELS_TABLE.c.started_at, proposed["started_at"])

        def record(session: Session) -> None:
            self._job_row(session, job_id)
            self._scene_row(session, scene_id)
            # the job row first, as finish_job locks it: every writer takes the locks in one order
            session.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == "running")
                            .values(heartbeat_at=stamp))
            member = session.get(JobSceneRow, (job_id, scene_id))
            if member is None:
                raise CatalogError(f"scene {scene_id} is not part of job {job_id}")
            upsert(session, _LEVELS_TABLE, values, keys, changes)

        self._write(record, retry_on_conflict=True)

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

        def find(session: Session) -> list[LevelRecord]:
            self._job_row(session, job_id)
            query = select(SceneLevelRow).where(SceneLevelRow.job_id == job_id)
            if scene_id is not None:
                self._scene_row(session, scene_id)
                query = query.where(SceneLevelRow.scene_id == scene_id)
            return _level_records(session, query)

        return self._read(find)

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
                return _level_records(session, query.where(SceneLevelRow.job_id == job_id))
            return _level_records(session, query)

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

        def record(session: Session) -> None:
            self._job_row(session, job_id)
            self._scene_row(session, scene_id)
            upsert(session, TileWrittenRow.__table__, values, ("job_id", "tile", "virtual_sensor", "scene_id"))

        self._write(record, retry_on_conflict=True)

    def tiles_written(self, job_id: int) -> list[TileRecord]:
        """The tile cubes a job wrote, by tile, virtual sensor and scene."""

        def find(session: Session) -> list[TileRecord]:
            self._job_row(session, job_id)
            query = (select(TileWrittenRow).where(TileWrittenRow.job_id == job_id)
                     .order_by(TileWrittenRow.tile, TileWrittenRow.virtual_sensor, TileWrittenRow.scene_id))
            return [TileRecord(row.job_id, row.tile, row.virtual_sensor, row.path, row.scene_id, row.written_at)
                    for row in session.scalars(query)]

        return self._read(find)


def _level_records(session: Session, query: Any) -> list[LevelRecord]:
    rows = sorted(session.scalars(query), key=lambda row: (row.job_id, row.scene_id, _chain_position(row.level)))
    return [LevelRecord(row.job_id, row.scene_id, row.level, row.status, row.output, row.started_at,
                        row.finished_at, row.error_type, row.error_message, row.error_traceback, row.note,
                        row.version, dict(row.facts) if row.facts is not None else None)
            for row in rows]
