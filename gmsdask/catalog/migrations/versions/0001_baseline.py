"""Baseline: the catalogue schema of gmsdask 0.1.0 (scenes, jobs, scene_levels, mgrs_tiles_written).

Catalogues written before migrations existed have exactly these tables and no ``alembic_version``; they are
stamped with this revision when opened, then upgraded.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import MetaData

from gmsdask.catalog.migrations.baseline_schema import baseline_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    metadata = MetaData()
    baseline_tables(metadata)
    metadata.create_all(op.get_bind())


def downgrade() -> None:
    metadata = MetaData()
    baseline_tables(metadata)
    metadata.drop_all(op.get_bind())
