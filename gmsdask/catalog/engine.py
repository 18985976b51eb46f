"""Database engines for the catalogue: URLs, SQLite set-up, retryable errors and dialect upserts.

SQLite (default) and PostgreSQL are supported and tested; any other SQLAlchemy dialect works without
upserts' single-statement atomicity (a select-then-write inside the transaction, retried on a conflict).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Engine,
    Executable,
    Table,
    bindparam,
    create_engine,
    event,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import ClauseElement

from ..errors import CatalogError

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "create_catalog_engine",
    "dialect_name",
    "is_retryable",
    "is_sqlite",
    "is_sqlite_memory",
    "parse_url",
    "safe_url",
    "sqlite_path",
    "upsert",
    "upsert_statement",
    "url_without_password",
]

SQLITE_BUSY_TIMEOUT_MS = 30_000

#: PostgreSQL SQLSTATEs after which the whole transaction may simply be run again.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})   # deadlock detected, serialization failure
_SQLITE_LOCK_MESSAGES = ("database is locked", "database is busy", "database table is locked")
#: Dialects with ``INSERT ... ON CONFLICT DO UPDATE``; others get a select-then-write upsert.
_UPSERT_DIALECTS = {"sqlite": sqlite, "postgresql": postgresql}


def parse_url(url: str | URL) -> URL:
    """``url`` as a SQLAlchemy URL; a relative SQLite file path is made absolute (the same file in every process)."""
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise CatalogError(f"invalid catalogue URL {url!r}: {err}") from None
    if not is_sqlite(parsed) or is_sqlite_memory(parsed) or str(parsed.database).startswith("file:"):
        return parsed
    return parsed.set(database=str(Path(str(parsed.database)).expanduser().resolve()))


def safe_url(url: URL) -> str:
    """``url`` as text with its password masked (``***``): for messages, reprs and pickles."""
    return url.render_as_string(hide_password=True)


def url_without_password(url: URL) -> str:
    """``url`` as text without its password (not masked: the text still connects where libpq finds the
    password itself, in ``PGPASSWORD`` or ``~/.pgpass``)."""
    return url._replace(password=None).render_as_string(hide_password=False)


def is_sqlite(url: URL) -> bool:
    """Whether ``url`` is a SQLite database."""
    return url.get_backend_name() == "sqlite"


def is_sqlite_memory(url: URL) -> bool:
    """Whether ``url`` is an in-memory SQLite database."""
    return is_sqlite(url) and url.database in (None, "", ":memory:")


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL, None for in-memory and ``file:`` URIs and for other databases."""
    if not is_sqlite(url) or is_sqlite_memory(url) or str(url.database).startswith("file:"):
        return None
    return Path(str(url.database))


def _configure_sqlite(engine: Engine) -> None:
    """WAL, busy timeout and foreign keys on every connection; ``BEGIN IMMEDIATE`` for write sessions,
    none for connections with the execution option ``sqlite_begin=""``.

    WAL with ``synchronous = NORMAL``: a commit appends to the write-ahead log without waiting for the disk,
    which is synced at checkpoints. Readers never block the writer nor it them. A crash of the process
    loses nothing; a power loss may lose the last transactions but never corrupts the file (SQLite's
    documentation, "WAL mode"), and a rerun repeats a level whose state was lost.

    pysqlite's own transaction handling is switched off so that SQLAlchemy emits ``BEGIN`` itself: a write
    transaction must take the write lock at its start, because in WAL mode a reader that later wants to
    write fails at once with ``database is locked`` instead of waiting for the busy timeout.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode:   # "": no transaction, every statement commits by itself
            connection.exec_driver_sql(f"BEGIN {mode}")


def create_catalog_engine(url: URL) -> Engine:
    """An engine for ``url``; a SQLite file gets its parent folder created."""
    try:
        if not is_sqlite(url):
            return create_engine(url, pool_pre_ping=True)
        if is_sqlite_memory(url):
            engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            path = sqlite_path(url)
            if path is not None:
                path.expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"check_same_thread": False,
                                                      "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    except (ImportError, ArgumentError) as err:   # NoSuchModuleError is an ArgumentError
        raise CatalogError(f"cannot open catalogue {safe_url(url)}: no database driver ({err})") from None
    _configure_sqlite(engine)
    return engine


def is_retryable(error: DBAPIError) -> bool:
    """Whether running the failed transaction again may succeed: a SQLite lock, a PostgreSQL deadlock or
    serialization failure."""
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return True
    message = str(orig).lower()
    return any(text in message for text in _SQLITE_LOCK_MESSAGES)


def upsert_statement(
    dialect_name: str,
    table: Table,
    keys: Sequence[str],
    *,
    only_if: Callable[[Mapping[str, BindParameter[Any]]], ColumnElement[bool]] | None = None,
    update_values: Callable[[Any], Mapping[str, Any]] | None = None,
) -> Executable | None:
    """A reusable one-statement upsert of one row of ``table`` whose bound parameters are named after its
    columns (all but the primary key); None for a dialect without upserts (use :func:`upsert` there).

    ``INSERT INTO table SELECT :columns WHERE only_if(params) ON CONFLICT (keys) DO UPDATE SET
    update_values(excluded)``: its result's ``rowcount`` is 1, or 0 when ``only_if`` is false (no
    ``RETURNING``: fetching its row would be one more call into the driver). ``update_values`` gets the
    proposed row (``excluded``) and defaults to its columns other than ``keys``. Building the statement
    costs far more Python than running it: build it once per dialect, then execute it with
    ``{column: value}`` (SQL NULL in a JSON column: ``sqlalchemy.null()``).
    """
    module = _UPSERT_DIALECTS.get(dialect_name)
    if module is None:
        return None
    primary = next(iter(table.primary_key.columns))
    params = {column.name: bindparam(column.name, type_=column.type) for column in table.columns
              if column is not primary}
    proposed = select(*params.values())
    # SQLite needs a WHERE to tell the upsert's ON CONFLICT from a join's ON: the guard, or a true one
    proposed = proposed.where(only_if(params) if only_if is not None else literal(True))
    statement = module.insert(table).from_select(list(params), proposed)
    changes = (update_values(statement.excluded) if update_values is not None
               else {name: statement.excluded[name] for name in params if name not in keys})
    # SQLAlchemy keeps an INSERT's rowcount only when asked (a closed psycopg cursor says -1)
    return (statement.on_conflict_do_update(index_elements=list(keys), set_=dict(changes))
            .execution_options(preserve_rowcount=True))


def dialect_name(executor: Session | Connection) -> str:
    """The dialect (``sqlite``, ``postgresql``, ...) a session or connection talks to."""
    bind = executor.get_bind() if isinstance(executor, Session) else executor
    return bind.dialect.name


def upsert(
    session: Session | Connection,
    table: Table,
    values: Mapping[str, Any],
    keys: Sequence[str],
    update_values: Mapping[str, Any] | None = None,
    *,
    only_if: ColumnElement[bool] | None = None,
) -> Any:
    """Insert ``values`` into ``table`` or, where a row with the same ``keys`` exists, update it; return the
    row's first primary-key value, or None if ``only_if`` is given and false (nothing written then).

    ``update_values`` (default: ``values`` without ``keys``) may hold SQL expressions, in which a column of
    ``table`` means the existing row, or callables ``f(proposed) -> expression`` where ``proposed[name]``
    is the value proposed for column ``name`` (e.g. ``lambda p: func.coalesce(table.c.started_at,
    p["started_at"])``). One statement (``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``) on SQLite and
    PostgreSQL. ``only_if`` (a condition on other tables, ``exists(...)``) is looked up first; on SQLite and
    PostgreSQL, :func:`upsert_statement` checks it within the upsert.
    """
    changes = dict(update_values) if update_values is not None else {
        name: value for name, value in values.items() if name not in keys}
    primary = next(iter(table.primary_key.columns))
    module = _UPSERT_DIALECTS.get(dialect_name(session))
    if only_if is not None and not session.execute(select(only_if)).scalar():
        return None
    if module is not None:
        statement = module.insert(table).values(**values)
        changes = {name: _bind_excluded(value, statement.excluded) for name, value in changes.items()}
        if changes:
            statement = statement.on_conflict_do_update(index_elements=list(keys), set_=changes)
        else:
            statement = statement.on_conflict_do_nothing(index_elements=list(keys))
        found = session.execute(statement.returning(primary)).scalar_one_or_none()
        if found is not None:
            return found
        # DO NOTHING returns no row for an existing key
    match = [table.c[key] == values[key] for key in keys]
    existing = session.execute(select(primary).where(*match)).scalar_one_or_none()
    if existing is None:
        return session.execute(insert(table).values(**values)).inserted_primary_key[0]
    if changes:
        session.execute(update(table).where(*match).values(
            **{name: _bind_excluded(value, _Proposed(values)) for name, value in changes.items()}))
    return existing


class _Proposed:
    """The proposed values of an upsert, addressed like a dialect's ``excluded`` namespace."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values

    def __getitem__(self, column: str) -> Any:
        return self._values[column]


def _bind_excluded(value: Any, namespace: Any) -> Any:
    """``value``, or what a callable ``value`` makes of the proposed values."""
    if callable(value) and not isinstance(value, ClauseElement):
        return value(namespace)
    return value
