"""Opening a catalogue database and running short read and write transactions on it (with retries).

Every catalogue method opens one short-lived session. Several threads and processes (Dask workers,
controllers) may write at once: SQLite connections use WAL mode and a busy timeout and start write
transactions with ``BEGIN IMMEDIATE``; on PostgreSQL, writes are single-statement upserts or lock the job
row they change first (``SELECT ... FOR NO KEY UPDATE``). A transaction that meets a SQLite lock, a PostgreSQL deadlock
(40P01) or serialization failure (40001) is run again with a growing, jittered delay.

The threads of one process (a controller's scene threads and its heartbeat) take turns at SQLite's write
lock through a lock of the catalogue object: SQLite's busy handler polls the file lock with sleeps of 1, 2,
5, 10, 15, 20 ... ms, so four scene threads queueing there waited tens of milliseconds for a lock held for
one; a thread waiting on a Python lock wakes as soon as it is released. Other processes still meet the busy
timeout.

The calls a controller makes for every scene and level (recording a level state or a tile, reading a
scene's states) run one prepared Core statement each (``_statements``), without ``BEGIN`` and ``COMMIT``
around it (a single statement is a transaction of its own; on SQLite it takes the write lock at its start as
``BEGIN IMMEDIATE`` would; on PostgreSQL the driver's autocommit saves two round trips). Every call into
``sqlite3`` (or a round trip to the server) gives up the GIL, and a client busy building Dask graphs takes it
back for up to its 5 ms switch interval each time: under load such a call costs what its statements count,
far more than their SQL.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Self, TypeVar

from sqlalchemy import Connection, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ..config import JobConfig
from ..errors import CatalogError
from . import engine as _engine
from .migrate import has_catalogue, upgrade
from .schema import JobRow, JobSceneRow, SceneRow
from .values import chunks

__all__ = ["CatalogDatabase"]

WRITE_ATTEMPTS = 12
#: Retries of a locked write stop after this long (each attempt itself waits up to the busy timeout).
WRITE_RETRY_DEADLINE_S = 120.0
FIRST_RETRY_DELAY_S = 0.05
MAX_RETRY_DELAY_S = 2.0

T = TypeVar("T")


class CatalogDatabase:
    """The connection side of :class:`gmsdask.catalog.Catalog` (see there for the parameters)."""

    def __init__(self, url: str | None = None, *, create: bool = True) -> None:
        self._url = _engine.parse_url(JobConfig().db_url if url is None else url)
        path = _engine.sqlite_path(self._url)
        #: The URL the catalogue was opened with, without password; a relative SQLite path made absolute.
        self.url: str = _engine.url_without_password(self._url)
        self._name = str(path) if path is not None else _engine.safe_url(self._url)
        if path is not None and not create and not path.is_file():
            raise CatalogError(f"catalogue {path} does not exist (create it with `gmsdask archive add` "
                               "or check db_url / GMSDASK_HOME)")
        self._engine = _engine.create_catalog_engine(self._url)
        self._read_sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self._engine.execution_options(sqlite_begin="IMMEDIATE"),
                                            expire_on_commit=False)
        #: every statement a transaction of its own (see above): on SQLite no BEGIN; elsewhere the driver's
        #: autocommit, which also saves a BEGIN and a COMMIT round trip to the server
        self._autocommit = (self._engine.execution_options(sqlite_begin="") if _engine.is_sqlite(self._url)
                            else self._engine.execution_options(isolation_level="AUTOCOMMIT"))
        #: SQLite: this process's writers queue here before they write (see the module doc); PostgreSQL locks
        #: rows, and its writers wait on the server without polling
        self._write_turn: threading.Lock | None = threading.Lock() if _engine.is_sqlite(self._url) else None
        #: job id -> monotonic time of the last heartbeat written with a level state (LevelOperations)
        self._level_heartbeats: dict[int, float] = {}
        try:
            if not create and not _engine.is_sqlite_memory(self._url) and not has_catalogue(self._engine):
                raise CatalogError(f"catalogue {self._name} holds no catalogue tables")
            #: The schema revision found when opening (None: a new catalogue); see gmsdask.catalog.migrate.
            self.opened_revision: str | None = self._upgrade_waiting_for_others()
        except DBAPIError as err:
            self._engine.dispose()
            raise CatalogError(f"cannot open catalogue {self._name}: {err.orig}") from None
        except CatalogError:
            self._engine.dispose()
            raise

    def _upgrade_waiting_for_others(self, attempts: int = 20) -> str | None:
        """Create or upgrade the schema; while another process holds the SQLite file's lock (it may be upgrading
        the same catalogue; SQLite answers some of those conflicts at once instead of after its busy timeout),
        wait and try again."""
        for attempt in range(1, attempts + 1):
            try:
                return upgrade(self._engine, f"catalogue {self._name}")
            except DBAPIError as err:
                if attempt == attempts or "locked" not in str(err.orig).lower():
                    raise
                time.sleep(0.05 * attempt)
        return None

    @classmethod
    def from_config(cls, cfg: JobConfig, *, create: bool = True) -> Self:
        """The catalogue of ``cfg.db_url`` (a SQLite file's folder is created if missing and ``create``)."""
        return cls(cfg.db_url, create=create)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({_engine.safe_url(self._url)!r})"

    def __reduce__(self) -> tuple[Callable[[type, str], Any], tuple[type, str]]:
        # the URL without its password: a process that unpickles it authenticates the way libpq does
        # (PGPASSWORD, ~/.pgpass); it never creates a new catalogue (unless in memory)
        return (_reopen, (type(self), self.url))

    def close(self) -> None:
        """Close the pooled connections (the catalogue reconnects when used again)."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- transactions ------------------------------------------------------------------------------

    def _read(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in a short read transaction."""
        return self._run(self._read_sessions.begin, work, "read", retry_on_conflict=False)

    def _write(self, work: Callable[[Session], T], *, retry_on_conflict: bool = False) -> T:
        """Run ``work`` in its own write transaction, run again while the database is locked or reports a
        deadlock or serialization failure; other database errors raise :class:`CatalogError`.

        ``retry_on_conflict`` also retries a unique-constraint conflict (an insert that looked first).
        """
        return self._run(self._write_sessions.begin, work, "write", retry_on_conflict=retry_on_conflict,
                         turn=self._write_turn)

    def _statements(self, work: Callable[[Connection], T], *, write: bool, retry_on_conflict: bool = False) -> T:
        """Run ``work``, whose statements need no common transaction (one statement, or writes that stand
        alone), on a pooled connection where every statement commits by itself. Retried as :meth:`_write`."""
        turn = self._write_turn if write else None
        if turn is not None:   # the turn covers the statements only, not the pool's check-out and return

            def work_in_turn(connection: Connection) -> T:
                with turn:
                    return work(connection)

            return self._run(self._autocommit.begin, work_in_turn, "write", retry_on_conflict=retry_on_conflict)
        return self._run(self._autocommit.begin, work, "write" if write else "read",
                         retry_on_conflict=retry_on_conflict)

    def _run(self, begin: Callable[[], AbstractContextManager[Any]], work: Callable[[Any], T], what: str, *,
             retry_on_conflict: bool, turn: threading.Lock | None = None) -> T:
        delay = FIRST_RETRY_DELAY_S
        deadline = time.monotonic() + WRITE_RETRY_DEADLINE_S
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            last_attempt = attempt == WRITE_ATTEMPTS or time.monotonic() > deadline
            try:
                with turn or contextlib.nullcontext(), begin() as session_or_connection:
                    return work(session_or_connection)
            except IntegrityError as err:
                if not retry_on_conflict or last_attempt:
                    raise CatalogError(f"catalogue {self._name}: {what} failed: {err.orig}") from err
            except DBAPIError as err:
                if not _engine.is_retryable(err) or last_attempt:
                    raise CatalogError(f"catalogue {self._name}: {what} failed: {err.orig}") from err
            time.sleep(delay * (0.5 + random.random()))
            delay = min(2 * delay, MAX_RETRY_DELAY_S)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- row look-ups ------------------------------------------------------------------------------

    @staticmethod
    def _job_row(session: Session, job_id: int, *, for_update: bool = False) -> JobRow:
        # FOR NO KEY UPDATE: level rows inserted meanwhile (their foreign key takes KEY SHARE) need not wait
        row = session.get(JobRow, job_id, with_for_update={"key_share": True} if for_update else None)
        if row is None:
            raise CatalogError(f"no job with id {job_id} in the catalogue")
        return row

    @staticmethod
    def _scene_row(session: Session, scene_id: int) -> SceneRow:
        row = session.get(SceneRow, scene_id)
        if row is None:
            raise CatalogError(f"no scene with id {scene_id} in the catalogue")
        return row

    @staticmethod
    def _missing_scene_ids(session: Session, scene_ids: Sequence[int]) -> list[int]:
        existing: set[int] = set()
        for chunk in chunks(sorted(set(scene_ids))):
            existing.update(session.scalars(select(SceneRow.id).where(SceneRow.id.in_(chunk))))
        return [scene_id for scene_id in scene_ids if scene_id not in existing]

    @staticmethod
    def _job_scene_ids(session: Session, job_id: int) -> list[int]:
        query = select(JobSceneRow.scene_id).where(JobSceneRow.job_id == job_id).order_by(JobSceneRow.position)
        return list(session.scalars(query))


def _reopen(cls: type, url: str) -> Any:
    """Unpickle a catalogue: open ``url`` again, never creating a missing file (in-memory ones excepted)."""
    return cls(url, create=False)
