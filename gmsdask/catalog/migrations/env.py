"""Alembic environment: runs on the connection handed over by gmsdask.catalog.migrate (already in a locked
transaction), never from a URL in an ini file."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("gmsdask catalogue migrations run through gmsdask.catalog.migrate.upgrade(), "
                       "which passes the connection; there is no alembic.ini")

context.configure(connection=connection, target_metadata=None, render_as_batch=True,
                  transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
