"""Alembic migrations of the catalogue schema, run by :func:`gmsdask.catalog.migrate.upgrade` (no alembic.ini).

To write a new revision after changing ``gmsdask/catalog/schema.py``: copy the newest file in ``versions/``,
give it the next number as ``revision`` and the previous one as ``down_revision``, write its ``upgrade()``
with ``op.batch_alter_table`` (SQLite rebuilds tables for most changes), move ``SCHEMA_REVISION`` in
``gmsdask/catalog/migrate.py`` to it, and let ``tests/test_catalog_migrations.py`` compare the result with
the models.
"""
