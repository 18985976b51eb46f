"""The catalogue's tables (SQLAlchemy 2.0 declarative models) and the values their status columns may take.

This is the schema at the newest migration (``migrations/versions``). A change here needs a new Alembic
revision; ``tests/test_catalog_migrations.py`` checks that the migrations and these models agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "COMPLETED_LEVEL_STATUSES",
    "JOB_STATUSES",
    "LEVEL_STATUSES",
    "STATISTICS_KEYS",
    "TERMINAL_JOB_STATUSES",
    "Base",
    "JobRow",
    "JobSceneRow",
    "SceneLevelRow",
    "SceneRow",
    "SceneTileRow",
    "TileWrittenRow",
    "UTCDateTime",
]

#: Status values of a job (as in GeoMultiSens). ``interrupted`` is not stored: see ``Catalog.job_liveness``.
JOB_STATUSES: tuple[str, ...] = ("pending", "running", "canceled", "failed", "finished_with_errors", "finished")

#: Status values of one processing level of one scene in one job. ``pending``: to be (re)run.
LEVEL_STATUSES: tuple[str, ...] = ("pending", "running", "done", "skipped", "failed", "canceled")

#: Level states from which a rerun can go on with the next level.
COMPLETED_LEVEL_STATUSES: frozenset[str] = frozenset({"done", "skipped"})

#: Job states in which the job is over (``finish_time`` is set when one is entered).
TERMINAL_JOB_STATUSES: frozenset[str] = frozenset({"canceled", "failed", "finished_with_errors", "finished"})

#: The counts kept per level in a job's statistics.
STATISTICS_KEYS: tuple[str, ...] = ("done", "failed", "skipped")


def _in_clause(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime stored as naive UTC and returned as aware UTC, on every database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base of the catalogue tables."""


class SceneRow(Base):
    """One product (deduplicated on ``product_id``) with the metadata needed to select scenes for a job."""

    __tablename__ = "scenes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    product_id: Mapped[str] = mapped_column(String(255), unique=True)
    product_path: Mapped[str] = mapped_column(Text)
    platform: Mapped[str] = mapped_column(String(32), index=True)
    sensor: Mapped[str] = mapped_column(String(32))
    processing_level: Mapped[str] = mapped_column(String(16))
    acquisition_time: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    cloud_cover_pct: Mapped[float | None] = mapped_column(Float)
    footprint: Mapped[str] = mapped_column(Text)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SceneTileRow(Base):
    """One Sentinel-2 MGRS tile a scene touches (``29UNU`` spelling)."""

    __tablename__ = "scene_tiles"

    scene_id: Mapped[int] = mapped_column(ForeignKey("scenes.id", ondelete="CASCADE"), primary_key=True)
    tile: Mapped[str] = mapped_column(String(8), primary_key=True, index=True)


class JobRow(Base):
    """One job: status, configuration and, while running, the process that runs it and its last heartbeat."""

    __tablename__ = "jobs"
    __table_args__ = (CheckConstraint(_in_clause("status", JOB_STATUSES), name="job_status_valid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    creation_time: Mapped[datetime] = mapped_column(UTCDateTime)
    finish_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    virtual_sensor: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), index=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    owner_host: Mapped[str | None] = mapped_column(String(255))
    owner_pid: Mapped[int | None] = mapped_column(Integer)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JobSceneRow(Base):
    """One scene of a job; ``position`` keeps the order the job was created with."""

    __tablename__ = "job_scenes"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    scene_id: Mapped[int] = mapped_column(ForeignKey("scenes.id"), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer)


class SceneLevelRow(Base):
    """The state of one level of one scene in one job, with its output, note, facts and implementation version."""

    __tablename__ = "scene_levels"
    __table_args__ = (
        UniqueConstraint("job_id", "scene_id", "level", name="one_state_per_job_scene_level"),
        CheckConstraint(_in_clause("status", LEVEL_STATUSES), name="level_status_valid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    scene_id: Mapped[int] = mapped_column(ForeignKey("scenes.id"), index=True)
    # no CHECK on the level name: levels come from the level registry, which may grow without a migration
    level: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    output: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error_type: Mapped[str] = mapped_column(String(255), default="")
    error_message: Mapped[str] = mapped_column(Text, default="")
    error_traceback: Mapped[str] = mapped_column(Text, default="")
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    version: Mapped[str] = mapped_column(String(64), default="", server_default="")
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class TileWrittenRow(Base):
    """One MGRS tile cube a job wrote one scene into."""

    __tablename__ = "mgrs_tiles_written"
    __table_args__ = (
        UniqueConstraint("job_id", "tile", "virtual_sensor", "scene_id", name="one_record_per_tile_scene"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    tile: Mapped[str] = mapped_column(String(8), index=True)
    virtual_sensor: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    scene_id: Mapped[int] = mapped_column(ForeignKey("scenes.id"))
    written_at: Mapped[datetime] = mapped_column(UTCDateTime)
