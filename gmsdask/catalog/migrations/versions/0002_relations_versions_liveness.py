"""Relations as tables, level versions and notes, job owners and heartbeats.

- ``scenes.mgrs_tiles`` (JSON list) becomes table ``scene_tiles(scene_id, tile)``; ``jobs.scene_ids`` becomes
  ``job_scenes(job_id, scene_id, position)``. ``jobs.statistics`` and ``jobs.failed_scene_ids`` go: they are
  counted from ``scene_levels`` when a job is read.
- ``scene_levels`` gains ``version`` (of the level's implementation; ``""`` for states recorded before),
  ``note`` and ``facts``; its status may also be ``pending`` and ``canceled``; the CHECK on level names goes
  (levels come from the registry) and names may be 32 characters long.
- Levels recorded as ``skipped`` because they were "not available yet" are reset to ``pending`` so that
  the next run of their job runs them (their old output text is kept in ``note``).
- ``jobs`` gains ``owner_host``, ``owner_pid`` and ``heartbeat_at``, to tell a running job from one whose
  controller died.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gmsdask.catalog.migrations.baseline_schema import baseline_tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LEVEL_STATUSES = ("pending", "running", "done", "skipped", "failed", "canceled")
NOT_AVAILABLE_YET = "%not available yet"


def _baseline(name: str) -> sa.Table:
    return baseline_tables(sa.MetaData())[name]


def _copy_relations() -> None:
    """JSON lists -> rows of ``scene_tiles`` and ``job_scenes`` (ids of scenes that no longer exist dropped)."""
    bind = op.get_bind()
    scenes, jobs = _baseline("scenes"), _baseline("jobs")
    scene_tiles = sa.table("scene_tiles", sa.column("scene_id", sa.Integer), sa.column("tile", sa.String))
    job_scenes = sa.table("job_scenes", sa.column("job_id", sa.Integer), sa.column("scene_id", sa.Integer),
                          sa.column("position", sa.Integer))
    existing: set[int] = set()
    tile_rows = []
    for scene_id, tiles in bind.execute(sa.select(scenes.c.id, scenes.c.mgrs_tiles)):
        existing.add(scene_id)
        tile_rows.extend({"scene_id": scene_id, "tile": tile} for tile in sorted(set(tiles or [])))
    if tile_rows:
        bind.execute(scene_tiles.insert(), tile_rows)
    job_rows = []
    for job_id, scene_ids in bind.execute(sa.select(jobs.c.id, jobs.c.scene_ids)):
        kept = [scene_id for scene_id in dict.fromkeys(scene_ids or []) if scene_id in existing]
        job_rows.extend({"job_id": job_id, "scene_id": scene_id, "position": position}
                        for position, scene_id in enumerate(kept))
    if job_rows:
        bind.execute(job_scenes.insert(), job_rows)


def upgrade() -> None:
    op.create_table(
        "scene_tiles",
        sa.Column("scene_id", sa.Integer, sa.ForeignKey("scenes.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tile", sa.String(8), primary_key=True),
    )
    op.create_index("ix_scene_tiles_tile", "scene_tiles", ["tile"])
    op.create_table(
        "job_scenes",
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("scene_id", sa.Integer, sa.ForeignKey("scenes.id"), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.create_index("ix_job_scenes_scene_id", "job_scenes", ["scene_id"])
    _copy_relations()

    with op.batch_alter_table("scenes", copy_from=_baseline("scenes")) as batch:
        batch.drop_column("mgrs_tiles")
    with op.batch_alter_table("jobs", copy_from=_baseline("jobs")) as batch:
        batch.drop_column("scene_ids")
        batch.drop_column("failed_scene_ids")
        batch.drop_column("statistics")
        batch.add_column(sa.Column("owner_host", sa.String(255), nullable=True))
        batch.add_column(sa.Column("owner_pid", sa.Integer, nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime, nullable=True))
    with op.batch_alter_table("scene_levels", copy_from=_baseline("scene_levels")) as batch:
        batch.drop_constraint("level_valid", type_="check")
        batch.drop_constraint("level_status_valid", type_="check")
        batch.alter_column("level", type_=sa.String(32), existing_type=sa.String(8), existing_nullable=False)
        batch.add_column(sa.Column("note", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("version", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("facts", sa.JSON, nullable=True))
        batch.create_check_constraint(
            "level_status_valid", f"status IN ({', '.join(repr(s) for s in LEVEL_STATUSES)})")

    levels = sa.table("scene_levels", sa.column("status", sa.String), sa.column("output", sa.Text),
                      sa.column("note", sa.Text), sa.column("started_at", sa.DateTime),
                      sa.column("finished_at", sa.DateTime))
    op.get_bind().execute(
        levels.update()
        .where(levels.c.status == "skipped", levels.c.output.like(NOT_AVAILABLE_YET))
        .values(status="pending", output="", started_at=None, finished_at=None,
                note=sa.literal("reset to pending by the catalogue upgrade; was skipped: ").concat(levels.c.output))
    )


def downgrade() -> None:
    raise NotImplementedError("the catalogue schema is not downgraded; restore a backup of the file instead")
