"""Bring a catalogue database to the current schema: create it, or upgrade it with the Alembic migrations.

Three cases, decided inside one locked transaction so that two processes opening a new or old catalogue at
the same time do not race (PostgreSQL: a transaction-level advisory lock; SQLite: ``BEGIN IMMEDIATE``, the
database's write lock; both databases have transactional DDL, so a failed upgrade leaves the old schema):

- an empty database gets the tables of :mod:`gmsdask.catalog.schema` and is stamped with the newest revision;
- a catalogue of gmsdask 0.1.0 (tables, no ``alembic_version``) is stamped with the baseline and upgraded;
- a catalogue with an older revision is upgraded; one at the newest revision is left alone (one query).

Alembic runs programmatically on that connection; the migrations ship in ``gmsdask/catalog/migrations``.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Column, Connection, Engine, MetaData, PrimaryKeyConstraint, String, Table, inspect, text
from sqlalchemy.exc import DBAPIError

from ..errors import CatalogError
from .schema import Base

__all__ = ["BASELINE_REVISION", "SCHEMA_REVISION", "schema_revision", "upgrade"]

#: The newest migration; catalogues at it need no upgrade.
SCHEMA_REVISION = "0002"
#: Every revision in ``migrations/versions``, oldest first.
KNOWN_REVISIONS: tuple[str, ...] = ("0001", "0002")
#: The revision whose tables are those of gmsdask 0.1.0, written before migrations existed.
BASELINE_REVISION = "0001"

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: Key of the PostgreSQL advisory lock serializing schema changes (any constant unique to gmsdask).
_PG_LOCK_KEY = 0x676D7364          # "gmsd"
_VERSION_TABLE = "alembic_version"


def _alembic_config(connection: Connection):  # -> alembic.config.Config
    from alembic.config import Config  # imported here: only needed when the schema changes

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def schema_revision(connection: Connection, name: str = "the database") -> str | None:
    """The stored revision, ``BASELINE_REVISION`` for an unversioned 0.1.0 catalogue, None for an empty
    database; :class:`CatalogError` for a database holding other tables."""
    tables = set(inspect(connection).get_table_names())
    if _VERSION_TABLE in tables:
        return connection.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalar_one_or_none()
    if "scenes" in tables and "jobs" in tables:
        return BASELINE_REVISION
    if tables:
        raise CatalogError(f"{name} is a database but not a gmsdask catalogue (it holds the tables "
                           f"{', '.join(sorted(tables)[:6])}); choose another db_url")
    return None


def _is_current(engine: Engine) -> bool:
    """Whether the database is at ``SCHEMA_REVISION`` (a cheap check without any lock)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(_VERSION_TABLE):
            return False
        stored = connection.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalar_one_or_none()
        return stored == SCHEMA_REVISION


def has_catalogue(engine: Engine) -> bool:
    """Whether the database holds catalogue tables (of any revision)."""
    with engine.connect() as connection:
        return bool({"scenes", _VERSION_TABLE} & set(inspect(connection).get_table_names()))


def upgrade(engine: Engine, name: str = "the catalogue") -> str | None:
    """Create or upgrade the catalogue schema of ``engine``'s database; return the revision found before
    (None for an empty database), or ``SCHEMA_REVISION`` if nothing was to do.

    Raises :class:`CatalogError` naming ``name`` for a database that is not a catalogue, a catalogue of a
    newer gmsdask, or a failed upgrade (which leaves the database as it was).
    """
    if _is_current(engine):
        return SCHEMA_REVISION
    sqlite = engine.dialect.name == "sqlite"
    options = {"sqlite_begin": "IMMEDIATE"} if sqlite else {}
    with engine.connect().execution_options(**options) as connection:
        if sqlite:
            # a table rebuild (batch migration) must not trip foreign keys; the pragma is a no-op inside a
            # transaction, so it goes to the driver connection (autocommit) before SQLAlchemy begins one
            _sqlite_pragma(connection, "foreign_keys = OFF")
        try:
            with connection.begin():
                if engine.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
                found = schema_revision(connection, name)  # again, under the lock: another process may have won
                if found == SCHEMA_REVISION:
                    return found
                if found is not None and found not in KNOWN_REVISIONS:
                    raise CatalogError(f"{name} has schema revision {found!r}, which this gmsdask does not know "
                                       f"(it knows {', '.join(KNOWN_REVISIONS)}): it was written by a newer "
                                       "gmsdask; upgrade gmsdask")
                try:
                    _migrate(connection, found)
                except DBAPIError:
                    raise
                except Exception as err:
                    raise CatalogError(f"cannot upgrade {name} from schema revision {found}: "
                                       f"{type(err).__name__}: {err}") from err
                return found
        finally:
            if sqlite:
                _sqlite_pragma(connection, "foreign_keys = ON")


def _sqlite_pragma(connection: Connection, pragma: str) -> None:
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


def _version_table() -> Table:
    """Alembic's version table, as ``alembic stamp`` creates it."""
    return Table(_VERSION_TABLE, MetaData(), Column("version_num", String(32), nullable=False),
                 PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))


def _migrate(connection: Connection, found: str | None) -> None:
    if found is None:
        # a new catalogue: the models' tables, stamped as Alembic would stamp them (without loading the scripts)
        Base.metadata.create_all(connection)
        _version_table().create(connection)
        connection.execute(_version_table().insert().values(version_num=SCHEMA_REVISION))
        return
    from alembic import command

    config = _alembic_config(connection)
    if not inspect(connection).has_table(_VERSION_TABLE):
        command.stamp(config, found)
    command.upgrade(config, SCHEMA_REVISION)
