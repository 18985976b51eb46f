"""Alembic revisions of the catalogue schema, oldest first (0001 = gmsdask 0.1.0)."""
