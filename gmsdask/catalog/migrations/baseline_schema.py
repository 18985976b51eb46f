"""The catalogue schema of gmsdask 0.1.0 (before Alembic), frozen: the tables of the baseline revision.

A copy on purpose: the models in ``gmsdask/catalog/schema.py`` change with every revision, this must not.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = ["BASELINE_JOB_STATUSES", "BASELINE_LEVELS", "BASELINE_LEVEL_STATUSES", "baseline_tables"]

BASELINE_JOB_STATUSES = ("pending", "running", "canceled", "failed", "finished_with_errors", "finished")
BASELINE_LEVEL_STATUSES = ("running", "done", "skipped", "failed")
BASELINE_LEVELS = ("L1A", "L1B", "L1C", "L2A", "L2B", "L2C")


def _in_clause(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def baseline_tables(metadata: MetaData) -> dict[str, Table]:
    """The four tables of the 0.1.0 catalogue, defined on ``metadata`` (naive-UTC ``DateTime`` columns).

    Indexes are explicit ``Index`` objects, not ``Column(index=True)``: Alembic's batch mode does not carry
    column-flag indexes over when it rebuilds a SQLite table from this definition.
    """
    scenes = Table(
        "scenes", metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("product_id", String(255), nullable=False, unique=True),
        Column("product_path", Text, nullable=False),
        Column("platform", String(32), nullable=False),
        Column("sensor", String(32), nullable=False),
        Column("processing_level", String(16), nullable=False),
        Column("acquisition_time", DateTime, nullable=False),
        Column("cloud_cover_pct", Float),
        Column("footprint", Text, nullable=False),
        Column("mgrs_tiles", JSON, nullable=False),
        Column("added_at", DateTime, nullable=False),
        Index("ix_scenes_platform", "platform"),
        Index("ix_scenes_acquisition_time", "acquisition_time"),
    )
    jobs = Table(
        "jobs", metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("creation_time", DateTime, nullable=False),
        Column("finish_time", DateTime),
        Column("scene_ids", JSON, nullable=False),
        Column("failed_scene_ids", JSON, nullable=False),
        Column("virtual_sensor", String(64), nullable=False),
        Column("status", String(32), nullable=False),
        Column("statistics", JSON, nullable=False),
        Column("comment", Text, nullable=False),
        Column("config", JSON, nullable=False),
        CheckConstraint(_in_clause("status", BASELINE_JOB_STATUSES), name="job_status_valid"),
        Index("ix_jobs_status", "status"),
    )
    scene_levels = Table(
        "scene_levels", metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        Column("scene_id", Integer, ForeignKey("scenes.id"), nullable=False),
        Column("level", String(8), nullable=False),
        Column("status", String(16), nullable=False),
        Column("output", Text, nullable=False),
        Column("started_at", DateTime),
        Column("finished_at", DateTime),
        Column("error_type", String(255), nullable=False),
        Column("error_message", Text, nullable=False),
        Column("error_traceback", Text, nullable=False),
        UniqueConstraint("job_id", "scene_id", "level", name="one_state_per_job_scene_level"),
        CheckConstraint(_in_clause("status", BASELINE_LEVEL_STATUSES), name="level_status_valid"),
        CheckConstraint(_in_clause("level", BASELINE_LEVELS), name="level_valid"),
        Index("ix_scene_levels_job_id", "job_id"),
        Index("ix_scene_levels_scene_id", "scene_id"),
    )
    tiles_written = Table(
        "mgrs_tiles_written", metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        Column("tile", String(8), nullable=False),
        Column("virtual_sensor", String(64), nullable=False),
        Column("path", Text, nullable=False),
        Column("scene_id", Integer, ForeignKey("scenes.id"), nullable=False),
        Column("written_at", DateTime, nullable=False),
        UniqueConstraint("job_id", "tile", "virtual_sensor", "scene_id", name="one_record_per_tile_scene"),
        Index("ix_mgrs_tiles_written_job_id", "job_id"),
        Index("ix_mgrs_tiles_written_tile", "tile"),
    )
    return {table.name: table for table in (scenes, jobs, scene_levels, tiles_written)}
