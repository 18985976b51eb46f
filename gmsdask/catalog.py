"""The catalogue of scenes, jobs and processing states (SQLAlchemy 2.0 ORM).

GeoMultiSens kept its scene and job tables in PostgreSQL/PostGIS; gmsdask keeps the same information in any
SQLAlchemy database, SQLite by default (``JobConfig.db_url``). Four tables:

``scenes``
    One row per product (deduplicated on ``product_id``), with the homogenized metadata needed to select
    scenes for a job and the Sentinel-2 MGRS tiles the scene touches.
``jobs``
    One row per job: its scenes, status (``pending|running|canceled|failed|finished_with_errors|finished``),
    per-level statistics, the failed scenes and the ``JobConfig`` it runs with.
``scene_levels``
    Per job, scene and level the processing state (``running|done|skipped|failed``), the output location
    and, for failures, the exception type, message and traceback. A rerun resumes each scene after its last
    completed level (:meth:`Catalog.last_completed_level`).
``mgrs_tiles_written``
    The MGRS tile cubes a job wrote, per scene.

Every method opens one short-lived session. Several threads and processes (Dask workers) may write into one
SQLite file at once: connections use WAL mode and a busy timeout, write transactions start with
``BEGIN IMMEDIATE`` and a write that still meets ``database is locked`` is retried.
A :class:`Catalog` pickles as its URL, so it can be handed to Dask tasks.
"""

from __future__ import annotations

import math
import random
import re
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import shapely
from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    select,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool

from .config import LEVELS, JobConfig
from .errors import CatalogError

__all__ = [
    "Catalog",
    "SceneRecord",
    "JobRecord",
    "LevelRecord",
    "FailureRecord",
    "TileRecord",
    "JOB_STATUSES",
    "LEVEL_STATUSES",
    "find_products",
    "is_product_name",
    "normalize_tile",
]

#: Status values of a job (as in GeoMultiSens).
JOB_STATUSES: tuple[str, ...] = ("pending", "running", "canceled", "failed", "finished_with_errors", "finished")

#: Status values of one processing level of one scene in one job.
LEVEL_STATUSES: tuple[str, ...] = ("running", "done", "skipped", "failed")

#: Level states from which a rerun can go on with the next level.
COMPLETED_LEVEL_STATUSES: frozenset[str] = frozenset({"done", "skipped"})

#: Job states in which the job is over (``finish_time`` is set when one is entered).
TERMINAL_JOB_STATUSES: frozenset[str] = frozenset({"canceled", "failed", "finished_with_errors", "finished"})

#: The counts kept per level in ``jobs.statistics``.
STATISTICS_KEYS: tuple[str, ...] = ("done", "failed", "skipped")

SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITE_ATTEMPTS = 12
#: Retries of a locked write stop after this long (each attempt itself waits up to the busy timeout).
WRITE_RETRY_DEADLINE_S = 120.0
FIRST_RETRY_DELAY_S = 0.05
MAX_RETRY_DELAY_S = 2.0
ID_CHUNK_SIZE = 500

#: Scene attrs (docs/scene-model.md) the catalogue needs.
REQUIRED_SCENE_ATTRS: tuple[str, ...] = (
    "product_id", "product_path", "platform", "sensor", "processing_level", "acquisition_time", "footprint",
)

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------------
# Product names
# ---------------------------------------------------------------------------------------------------

#: Landsat Collection 1/2 product identifiers (``LC08_L1TP_016037_20170813_20170814_01_RT``).
LANDSAT_PRODUCT_NAME = re.compile(r"L[CTEO]0[4-9]_[A-Z0-9]{4}_\d{6}_\d{8}_\d{8}_\d{2}_[A-Z0-9]{2}")
#: Sentinel-2 product names (compact SAFE names, and the older ``OPER`` product/tile names).
SENTINEL2_PRODUCT_NAME = re.compile(r"S2[ABC]_(?:MSIL1C|MSIL2A)_\d{8}T\d{6}_\w+|S2[ABC]_OPER_[\w.\-]+")
#: Archive suffixes a product may be delivered in, longest first.
ARCHIVE_SUFFIXES: tuple[str, ...] = (".tar.gz", ".tgz", ".tar", ".zip")


def _product_stem(name: str) -> str:
    """``name`` without an archive suffix and without ``.SAFE``."""
    lowered = name.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lowered.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name[: -len(".SAFE")] if name.upper().endswith(".SAFE") else name


def is_product_name(path: str | Path, *, is_dir: bool | None = None) -> bool:
    """Whether ``path`` is named like a Landsat or Sentinel-2 product (directory, ``.SAFE`` or archive).

    Files must be archives (``.tar``, ``.tar.gz``, ``.tgz``, ``.zip``); directories must not carry another
    suffix than ``.SAFE``. ``is_dir`` defaults to what the file system says.
    """
    path = Path(path)
    name = path.name
    directory = path.is_dir() if is_dir is None else is_dir
    if not directory and not name.lower().endswith(ARCHIVE_SUFFIXES):
        return False
    stem = _product_stem(name)
    if directory and stem != name and not name.upper().endswith(".SAFE"):
        return False
    return bool(LANDSAT_PRODUCT_NAME.fullmatch(stem) or SENTINEL2_PRODUCT_NAME.fullmatch(stem))


def find_products(folder: str | Path) -> list[Path]:
    """The products below ``folder``, sorted; product directories are not searched further."""
    found: list[Path] = []
    pending = [Path(folder)]
    while pending:
        current = pending.pop()
        for entry in sorted(current.iterdir()):
            if entry.name.startswith("."):
                continue
            if is_product_name(entry):
                found.append(entry)
            elif entry.is_dir():
                pending.append(entry)
    return sorted(found)


def _product_paths(paths: Iterable[str | Path] | str | Path) -> list[Path]:
    """The products named by ``paths``: products as given, other folders scanned with :func:`find_products`."""
    given = [paths] if isinstance(paths, (str, Path)) else list(paths)
    products: list[Path] = []
    for raw in given:
        path = Path(raw)
        if not path.exists():
            raise CatalogError(f"{path}: no such product or folder")
        if path.is_dir() and not is_product_name(path):
            products.extend(find_products(path))
        else:
            products.append(path)
    return products


# ---------------------------------------------------------------------------------------------------
# Value conversion
# ---------------------------------------------------------------------------------------------------

def normalize_tile(tile: str) -> str:
    """An MGRS tile id in the Sentinel-2 spelling: ``"T29UNU"``, ``"29unu"`` -> ``"29UNU"``, ``"4QFJ"`` -> ``"04QFJ"``."""
    text = str(tile).strip().upper()
    if len(text) == 6 and text.startswith("T"):
        text = text[1:]
    if re.fullmatch(r"\d[C-X][A-Z]{2}", text):
        text = "0" + text
    if not re.fullmatch(r"\d{2}[C-X][A-Z]{2}", text):
        raise CatalogError(f"{tile!r} is not an MGRS tile id such as '29UNU'")
    return text


def _utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (naive values are taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_time(value: Any, what: str) -> datetime:
    """A UTC datetime from a datetime or an ISO 8601 string (``...Z``)."""
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            return _utc(datetime.fromisoformat(value.strip()))
        except ValueError:
            pass
    raise CatalogError(f"{what}: {value!r} is not an ISO 8601 time")


def _time_bound(value: date | datetime | str, *, upper: bool) -> tuple[datetime, bool]:
    """A filter bound and whether it is inclusive; a bare date as upper bound includes its whole day."""
    is_bare_date = (isinstance(value, date) and not isinstance(value, datetime)) or (
        isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()) is not None
    )
    bound = _parse_time(value, "end" if upper else "start")
    if upper and is_bare_date:
        return bound + timedelta(days=1), False
    return bound, True


def _cloud_cover(value: Any) -> float | None:
    """Cloud cover in percent, or None where unknown (missing, NaN or negative as in Landsat's ``-1``)."""
    if value is None or value == "":
        return None
    cover = float(value)
    return None if math.isnan(cover) or cover < 0 else cover


def _check_choice(value: str, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise CatalogError(f"invalid {what} {value!r}; allowed: {', '.join(allowed)}")
    return value


def _format_traceback(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def _empty_statistics() -> dict[str, dict[str, int]]:
    return {level: dict.fromkeys(STATISTICS_KEYS, 0) for level in LEVELS}


def _chunks(values: Sequence[T], size: int = ID_CHUNK_SIZE) -> Iterable[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


# ---------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------

class UTCDateTime(TypeDecorator[datetime]):
    """A datetime stored as naive UTC and returned as aware UTC, on every database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else _utc(value).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base of the catalogue tables."""


def _in_clause(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class SceneRow(Base):
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
    mgrs_tiles: Mapped[list[str]] = mapped_column(JSON)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (CheckConstraint(_in_clause("status", JOB_STATUSES), name="job_status_valid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    creation_time: Mapped[datetime] = mapped_column(UTCDateTime)
    finish_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scene_ids: Mapped[list[int]] = mapped_column(JSON)
    failed_scene_ids: Mapped[list[int]] = mapped_column(JSON)
    virtual_sensor: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), index=True)
    statistics: Mapped[dict[str, dict[str, int]]] = mapped_column(JSON)
    comment: Mapped[str] = mapped_column(Text, default="")
    config: Mapped[dict[str, Any]] = mapped_column(JSON)


class SceneLevelRow(Base):
    __tablename__ = "scene_levels"
    __table_args__ = (
        UniqueConstraint("job_id", "scene_id", "level", name="one_state_per_job_scene_level"),
        CheckConstraint(_in_clause("status", LEVEL_STATUSES), name="level_status_valid"),
        CheckConstraint(_in_clause("level", LEVELS), name="level_valid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    scene_id: Mapped[int] = mapped_column(ForeignKey("scenes.id"), index=True)
    level: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    output: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error_type: Mapped[str] = mapped_column(String(255), default="")
    error_message: Mapped[str] = mapped_column(Text, default="")
    error_traceback: Mapped[str] = mapped_column(Text, default="")


class TileWrittenRow(Base):
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


# ---------------------------------------------------------------------------------------------------
# Records handed out (plain data, no session attached)
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SceneRecord:
    """One catalogued scene."""

    id: int
    product_id: str
    product_path: str
    platform: str
    sensor: str
    processing_level: str
    acquisition_time: datetime
    cloud_cover_pct: float | None
    footprint: str
    mgrs_tiles: list[str]
    added_at: datetime

    @classmethod
    def from_row(cls, row: SceneRow) -> "SceneRecord":
        return cls(row.id, row.product_id, row.product_path, row.platform, row.sensor, row.processing_level,
                   row.acquisition_time, row.cloud_cover_pct, row.footprint, list(row.mgrs_tiles), row.added_at)


@dataclass(frozen=True)
class JobRecord:
    """One job: its scenes, status, statistics per level and the configuration it runs with."""

    id: int
    creation_time: datetime
    finish_time: datetime | None
    scene_ids: list[int]
    failed_scene_ids: list[int]
    virtual_sensor: str
    status: str
    statistics: dict[str, dict[str, int]]
    comment: str
    config: dict[str, Any] = field(repr=False)

    @classmethod
    def from_row(cls, row: JobRow) -> "JobRecord":
        return cls(row.id, row.creation_time, row.finish_time, list(row.scene_ids), list(row.failed_scene_ids),
                   row.virtual_sensor, row.status, {k: dict(v) for k, v in row.statistics.items()},
                   row.comment, dict(row.config))

    def job_config(self) -> JobConfig:
        """The stored configuration as a validated :class:`JobConfig`."""
        return JobConfig.model_validate(self.config)


@dataclass(frozen=True)
class LevelRecord:
    """The state of one processing level of one scene in one job."""

    job_id: int
    scene_id: int
    level: str
    status: str
    output: str
    started_at: datetime | None
    finished_at: datetime | None
    error_type: str
    error_message: str
    error_traceback: str

    @classmethod
    def from_row(cls, row: SceneLevelRow) -> "LevelRecord":
        return cls(row.job_id, row.scene_id, row.level, row.status, row.output, row.started_at, row.finished_at,
                   row.error_type, row.error_message, row.error_traceback)


@dataclass(frozen=True)
class FailureRecord:
    """One failed level of one scene, for the job summary."""

    scene_id: int
    product_id: str
    platform: str
    level: str
    error_type: str
    error_message: str
    error_traceback: str


@dataclass(frozen=True)
class TileRecord:
    """One MGRS tile cube written by a job for one scene."""

    job_id: int
    tile: str
    virtual_sensor: str
    path: str
    scene_id: int
    written_at: datetime


# ---------------------------------------------------------------------------------------------------
# Engine set-up
# ---------------------------------------------------------------------------------------------------

def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _is_sqlite_memory(url: URL) -> bool:
    return _is_sqlite(url) and url.database in (None, "", ":memory:")


def _configure_sqlite(engine: Engine) -> None:
    """WAL, busy timeout and foreign keys on every connection; ``BEGIN IMMEDIATE`` for write sessions.

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
        connection.exec_driver_sql(f"BEGIN {mode}")


def _is_lock_error(error: OperationalError) -> bool:
    message = str(error.orig).lower()
    return "database is locked" in message or "database is busy" in message or "database table is locked" in message


def _absolute_sqlite_url(url: URL) -> URL:
    """``url`` with a relative SQLite file path made absolute (so that it means the same file in every process)."""
    if not _is_sqlite(url) or _is_sqlite_memory(url) or str(url.database).startswith("file:"):
        return url
    return url.set(database=str(Path(str(url.database)).expanduser().resolve()))


def _create_engine(url: URL) -> Engine:
    """An engine for ``url``; SQLite files get their parent folder created."""
    if not _is_sqlite(url):
        return create_engine(url, pool_pre_ping=True)
    if _is_sqlite_memory(url):
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        Path(str(url.database)).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False,
                                                  "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    _configure_sqlite(engine)
    return engine


# ---------------------------------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------------------------------

class Catalog:
    """The scene/job catalogue in one database.

    Parameters
    ----------
    url
        Any SQLAlchemy URL; ``sqlite:///relative/path.sqlite`` (relative to the working directory),
        ``sqlite:////absolute/path.sqlite``, ``sqlite://`` (in memory), ``postgresql+psycopg://...``.
        Missing tables are created.

    Raises
    ------
    CatalogError
        If the URL is invalid or the database cannot be opened.
    """

    def __init__(self, url: str) -> None:
        try:
            self._url = _absolute_sqlite_url(make_url(url))
        except ArgumentError as err:
            raise CatalogError(f"invalid catalogue URL {url!r}: {err}") from None
        #: The URL the catalogue was opened with; a relative SQLite path is made absolute.
        self.url: str = self._url.render_as_string(hide_password=False) if _is_sqlite(self._url) else url
        try:
            self._engine = _create_engine(self._url)
        except (NoSuchModuleError, ImportError) as err:
            raise CatalogError(f"cannot open catalogue {self._safe_url}: no database driver ({err})") from None
        write_engine = self._engine.execution_options(sqlite_begin="IMMEDIATE")
        self._read_sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(write_engine, expire_on_commit=False)
        try:
            self._write(lambda session: Base.metadata.create_all(session.connection()))
        except CatalogError as err:
            self._engine.dispose()
            raise CatalogError(f"cannot open catalogue {self._safe_url}: {err.__cause__ or err}") from None

    @classmethod
    def from_config(cls, cfg: JobConfig) -> "Catalog":
        """The catalogue of ``cfg.db_url`` (a SQLite file's folder is created if missing)."""
        return cls(cfg.db_url)

    @property
    def _safe_url(self) -> str:
        return self._url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"Catalog({self._safe_url!r})"

    def __reduce__(self) -> tuple[type["Catalog"], tuple[str]]:
        return (Catalog, (self.url,))

    def close(self) -> None:
        """Close the pooled connections (the catalogue reconnects when used again)."""
        self._engine.dispose()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- sessions ----------------------------------------------------------------------------------

    def _read(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in a short read session."""
        try:
            with self._read_sessions() as session, session.begin():
                return work(session)
        except OperationalError as err:
            raise CatalogError(f"catalogue {self._safe_url}: read failed: {err.orig}") from err

    def _write(self, work: Callable[[Session], T], *, retry_on_conflict: bool = False) -> T:
        """Run ``work`` in its own write transaction, retried while the database is locked.

        Database errors (a lock that outlasts the retries included) are raised as :class:`CatalogError`.

        ``retry_on_conflict`` also retries a unique-constraint conflict, for inserts that look up the row
        first (another writer may have inserted it in between on databases without ``BEGIN IMMEDIATE``).
        """
        delay = FIRST_RETRY_DELAY_S
        deadline = time.monotonic() + WRITE_RETRY_DEADLINE_S
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            last_attempt = attempt == WRITE_ATTEMPTS or time.monotonic() > deadline
            try:
                with self._write_sessions() as session, session.begin():
                    return work(session)
            except OperationalError as err:
                if not _is_lock_error(err) or last_attempt:
                    raise CatalogError(f"catalogue {self._safe_url}: write failed: {err.orig}") from err
            except IntegrityError:
                if not retry_on_conflict or last_attempt:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(2 * delay, MAX_RETRY_DELAY_S)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- row look-ups --------------------------------------------------------------------------------

    @staticmethod
    def _job_row(session: Session, job_id: int) -> JobRow:
        row = session.get(JobRow, job_id)
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
        for chunk in _chunks(sorted(set(scene_ids))):
            existing.update(session.scalars(select(SceneRow.id).where(SceneRow.id.in_(chunk))))
        return [scene_id for scene_id in scene_ids if scene_id not in existing]

    @staticmethod
    def _level_rows(session: Session, job_id: int, scene_id: int | None = None) -> list[SceneLevelRow]:
        query = select(SceneLevelRow).where(SceneLevelRow.job_id == job_id)
        if scene_id is not None:
            query = query.where(SceneLevelRow.scene_id == scene_id)
        rows = list(session.scalars(query))
        rows.sort(key=lambda row: (row.scene_id, LEVELS.index(row.level)))
        return rows

    # --- scenes --------------------------------------------------------------------------------------

    def add_scene(self, attrs: Mapping[str, Any], mgrs_tiles: Sequence[str]) -> int:
        """Add a scene from its root attrs (docs/scene-model.md) and return its id.

        A product already catalogued (same ``product_id``) keeps its id; its path and metadata are updated.
        A Sentinel-2 scene's own ``mgrs_tile`` is always among its tiles.
        """
        values = self._scene_values(attrs, mgrs_tiles)

        def upsert(session: Session) -> int:
            row = session.scalars(select(SceneRow).where(SceneRow.product_id == values["product_id"])).one_or_none()
            if row is None:
                row = SceneRow(added_at=_now(), **values)
                session.add(row)
            else:
                for name, value in values.items():
                    setattr(row, name, value)
            session.flush()
            return row.id

        return self._write(upsert, retry_on_conflict=True)

    @staticmethod
    def _scene_values(attrs: Mapping[str, Any], mgrs_tiles: Sequence[str]) -> dict[str, Any]:
        """The ``scenes`` columns from a scene's root attrs, validated."""
        product = str(attrs.get("product_id") or attrs.get("product_path") or "<unnamed scene>")
        missing = [key for key in REQUIRED_SCENE_ATTRS if attrs.get(key) in (None, "")]
        if missing:
            raise CatalogError(f"scene {product}: attrs lack {', '.join(missing)}")
        footprint = str(attrs["footprint"])
        try:
            shapely.from_wkt(footprint)
        except shapely.errors.ShapelyError as err:
            raise CatalogError(f"scene {product}: footprint is not valid WKT ({err})") from None
        try:
            cloud_cover = _cloud_cover(attrs.get("cloud_cover_pct"))
        except (TypeError, ValueError):
            raise CatalogError(f"scene {product}: cloud_cover_pct {attrs.get('cloud_cover_pct')!r} "
                               "is not a number") from None
        tiles = [normalize_tile(tile) for tile in mgrs_tiles]
        if attrs.get("mgrs_tile"):
            tiles.append(normalize_tile(str(attrs["mgrs_tile"])))
        return {
            "product_id": product,
            "product_path": str(attrs["product_path"]),
            "platform": str(attrs["platform"]),
            "sensor": str(attrs["sensor"]),
            "processing_level": str(attrs["processing_level"]),
            "acquisition_time": _parse_time(attrs["acquisition_time"], f"scene {product}: acquisition_time"),
            "cloud_cover_pct": cloud_cover,
            "footprint": footprint,
            "mgrs_tiles": sorted(set(tiles)),
        }

    def add_products(
        self,
        paths: Iterable[str | Path] | str | Path,
        *,
        open_scene: Callable[[Path], Any] | None = None,
        tiles_for_footprint: Callable[[str], Iterable[str]] | None = None,
    ) -> list[int]:
        """Catalogue products and return their scene ids (each once, in the order found).

        ``paths`` are products (directories, ``.SAFE`` folders, ``.tar``/``.tar.gz``/``.zip`` archives) or
        folders that are searched for files and folders named like Landsat or Sentinel-2 products; other
        files are ignored. Each product is opened with ``open_scene(path)`` (default
        :func:`gmsdask.io.open_scene`) for its root attrs, and its MGRS tiles are
        ``tiles_for_footprint(footprint_wkt)`` (default :func:`gmsdask.mgrs_grid.tiles_intersecting`).
        A product that cannot be opened raises (naming it); the products added before it stay catalogued.
        """
        if open_scene is None:
            from .io import open_scene as default_open_scene  # lazy: io imports the heavy raster stack
            open_scene = default_open_scene
        if tiles_for_footprint is None:
            from .mgrs_grid import tiles_intersecting
            tiles_for_footprint = tiles_intersecting
        scene_ids: list[int] = []
        for product in _product_paths(paths):
            attrs = dict(open_scene(product).attrs)
            attrs.setdefault("product_path", str(product))
            if not attrs.get("footprint"):
                raise CatalogError(f"scene {product}: attrs lack footprint")
            scene_id = self.add_scene(attrs, list(tiles_for_footprint(str(attrs["footprint"]))))
            if scene_id not in scene_ids:
                scene_ids.append(scene_id)
        return scene_ids

    def scene(self, scene_id: int) -> SceneRecord:
        """The scene with id ``scene_id``."""
        return self._read(lambda session: SceneRecord.from_row(self._scene_row(session, scene_id)))

    def scene_id(self, product_id: str) -> int:
        """The id of the scene of product ``product_id``."""

        def find(session: Session) -> int:
            found = session.scalars(select(SceneRow.id).where(SceneRow.product_id == product_id)).one_or_none()
            if found is None:
                raise CatalogError(f"no scene of product {product_id!r} in the catalogue")
            return found

        return self._read(find)

    def scenes(
        self,
        ids: Iterable[int] | None = None,
        *,
        tile: str | None = None,
        start: date | datetime | str | None = None,
        end: date | datetime | str | None = None,
        max_cloud: float | None = None,
        platform: str | Iterable[str] | None = None,
    ) -> list[SceneRecord]:
        """Scenes matching every given filter, by acquisition time.

        ``start``/``end`` are inclusive (a bare date as ``end`` includes that whole day; naive times are UTC),
        ``max_cloud`` keeps scenes with a known cloud cover <= it, ``tile`` those touching that MGRS tile,
        ``platform`` one platform or several (``"LANDSAT_8"``). Unknown ``ids`` raise :class:`CatalogError`.
        """
        wanted_ids = None if ids is None else list(dict.fromkeys(ids))
        wanted_tile = None if tile is None else normalize_tile(tile)
        query = select(SceneRow).order_by(SceneRow.acquisition_time, SceneRow.id)
        if start is not None:
            query = query.where(SceneRow.acquisition_time >= _time_bound(start, upper=False)[0])
        if end is not None:
            bound, inclusive = _time_bound(end, upper=True)
            query = query.where(SceneRow.acquisition_time <= bound if inclusive else SceneRow.acquisition_time < bound)
        if max_cloud is not None:
            query = query.where(SceneRow.cloud_cover_pct <= float(max_cloud))
        if platform is not None:
            platforms = [platform] if isinstance(platform, str) else list(platform)
            query = query.where(SceneRow.platform.in_(platforms))

        def find(session: Session) -> list[SceneRecord]:
            if wanted_ids is None:
                rows = list(session.scalars(query))
            else:
                missing = self._missing_scene_ids(session, wanted_ids)
                if missing:
                    raise CatalogError(f"no scene with id {', '.join(map(str, missing))} in the catalogue")
                rows = [row for chunk in _chunks(wanted_ids)
                        for row in session.scalars(query.where(SceneRow.id.in_(chunk)))]
                rows.sort(key=lambda row: (row.acquisition_time, row.id))
            return [SceneRecord.from_row(row) for row in rows
                    if wanted_tile is None or wanted_tile in row.mgrs_tiles]

        return self._read(find)

    # --- jobs ----------------------------------------------------------------------------------------

    def create_job(self, scene_ids: Iterable[int], cfg: JobConfig, comment: str = "") -> int:
        """Create a ``pending`` job over ``scene_ids`` run with ``cfg`` and return its id."""
        ids = list(dict.fromkeys(int(scene_id) for scene_id in scene_ids))
        if not ids:
            raise CatalogError("a job needs at least one scene")
        config = cfg.model_dump(mode="json")

        def insert(session: Session) -> int:
            missing = self._missing_scene_ids(session, ids)
            if missing:
                raise CatalogError(f"no scene with id {', '.join(map(str, missing))} in the catalogue")
            row = JobRow(creation_time=_now(), finish_time=None, scene_ids=ids, failed_scene_ids=[],
                         virtual_sensor=cfg.virtual_sensor_name, status="pending",
                         statistics=_empty_statistics(), comment=comment, config=config)
            session.add(row)
            session.flush()
            row.config = {**config, "job_ID": row.id}
            return row.id

        return self._write(insert)

    def job(self, job_id: int) -> JobRecord:
        """The job with id ``job_id``."""
        return self._read(lambda session: JobRecord.from_row(self._job_row(session, job_id)))

    def jobs(self, status: str | None = None) -> list[JobRecord]:
        """All jobs, oldest first, or those with ``status``."""
        query = select(JobRow).order_by(JobRow.id)
        if status is not None:
            query = query.where(JobRow.status == _check_choice(status, JOB_STATUSES, "job status"))
        return self._read(lambda session: [JobRecord.from_row(row) for row in session.scalars(query)])

    def set_job_status(self, job_id: int, status: str) -> None:
        """Set a job's status; entering a final status sets ``finish_time``, ``running`` clears it."""
        _check_choice(status, JOB_STATUSES, "job status")

        def update(session: Session) -> None:
            row = self._job_row(session, job_id)
            row.status = status
            if status in TERMINAL_JOB_STATUSES:
                row.finish_time = row.finish_time or _now()
            elif status == "running":
                row.finish_time = None

        self._write(update)

    def reset_job(self, job_id: int) -> None:
        """Forget every level state of a job (``reset_status=True``): it becomes ``pending`` again.

        Records of written tiles are kept; rewriting a tile updates its record.
        """

        def reset(session: Session) -> None:
            row = self._job_row(session, job_id)
            session.execute(delete(SceneLevelRow).where(SceneLevelRow.job_id == job_id))
            row.status = "pending"
            row.finish_time = None
            row.failed_scene_ids = []
            row.statistics = _empty_statistics()

        self._write(reset)

    # --- level states --------------------------------------------------------------------------------

    def record_level(
        self,
        job_id: int,
        scene_id: int,
        level: str,
        status: str,
        *,
        output: str | Path = "",
        error: BaseException | None = None,
    ) -> None:
        """Record the state of ``level`` of a scene in a job (replacing an earlier state of it).

        ``running`` stamps the start time, the other states the finish time. ``error`` (for ``failed``)
        is stored as exception type, message and formatted traceback; a state without error clears them.
        """
        _check_choice(level, LEVELS, "processing level")
        _check_choice(status, LEVEL_STATUSES, "level status")
        error_fields = {
            "error_type": type(error).__name__ if error is not None else "",
            "error_message": str(error) if error is not None else "",
            "error_traceback": _format_traceback(error) if error is not None else "",
        }

        def upsert(session: Session) -> None:
            job = self._job_row(session, job_id)
            self._scene_row(session, scene_id)
            if scene_id not in job.scene_ids:
                raise CatalogError(f"scene {scene_id} is not part of job {job_id}")
            row = session.scalars(select(SceneLevelRow).where(
                SceneLevelRow.job_id == job_id, SceneLevelRow.scene_id == scene_id, SceneLevelRow.level == level,
            )).one_or_none()
            if row is None:
                row = SceneLevelRow(job_id=job_id, scene_id=scene_id, level=level)
                session.add(row)
            now = _now()
            row.status = status
            row.output = str(output)
            if status == "running":
                row.started_at, row.finished_at = now, None
            else:
                row.started_at = row.started_at or now
                row.finished_at = now
            for name, value in error_fields.items():
                setattr(row, name, value)

        self._write(upsert, retry_on_conflict=True)

    def level_status(self, job_id: int, scene_id: int) -> dict[str, str]:
        """``{level: status}`` of the levels recorded for a scene in a job, in chain order."""
        return {record.level: record.status for record in self.level_records(job_id, scene_id)}

    def level_records(self, job_id: int, scene_id: int | None = None) -> list[LevelRecord]:
        """The level states of a job (of one scene if given), by scene and chain order, with outputs."""

        def find(session: Session) -> list[LevelRecord]:
            self._job_row(session, job_id)
            if scene_id is not None:
                self._scene_row(session, scene_id)
            return [LevelRecord.from_row(row) for row in self._level_rows(session, job_id, scene_id)]

        return self._read(find)

    def last_completed_level(self, job_id: int, scene_id: int) -> str | None:
        """The last level of L1A..L2C that is done or skipped with all levels before it: a rerun resumes after it.

        None if L1A is not completed.
        """
        statuses = self.level_status(job_id, scene_id)
        last: str | None = None
        for level in LEVELS:
            if statuses.get(level) not in COMPLETED_LEVEL_STATUSES:
                break
            last = level
        return last

    def failures(self, job_id: int) -> list[FailureRecord]:
        """The failed levels of a job's scenes, with exception type, message and traceback."""

        def find(session: Session) -> list[FailureRecord]:
            self._job_row(session, job_id)
            query = (select(SceneLevelRow, SceneRow)
                     .join(SceneRow, SceneRow.id == SceneLevelRow.scene_id)
                     .where(SceneLevelRow.job_id == job_id, SceneLevelRow.status == "failed"))
            records = [FailureRecord(scene.id, scene.product_id, scene.platform, level.level, level.error_type,
                                     level.error_message, level.error_traceback)
                       for level, scene in session.execute(query)]
            return sorted(records, key=lambda record: (record.scene_id, LEVELS.index(record.level)))

        return self._read(find)

    # --- job summary ---------------------------------------------------------------------------------

    @classmethod
    def _recount(cls, session: Session, job: JobRow) -> None:
        """Recount ``statistics`` and ``failed_scene_ids`` of ``job`` from its level states."""
        statistics = _empty_statistics()
        failed: set[int] = set()
        for row in cls._level_rows(session, job.id):
            if row.status in STATISTICS_KEYS:
                statistics[row.level][row.status] += 1
            if row.status == "failed":
                failed.add(row.scene_id)
        job.statistics = statistics
        job.failed_scene_ids = [scene_id for scene_id in job.scene_ids if scene_id in failed]

    def update_statistics(self, job_id: int) -> dict[str, dict[str, int]]:
        """Recount the per-level done/failed/skipped counts and the failed scenes of a job; return the counts."""

        def update(session: Session) -> dict[str, dict[str, int]]:
            job = self._job_row(session, job_id)
            self._recount(session, job)
            return job.statistics

        return self._write(update)

    def finish_job(self, job_id: int) -> str:
        """End a job: recount, set ``finish_time`` and the status from its scenes; return the status.

        ``finished`` if no scene failed, ``failed`` if every scene failed, else ``finished_with_errors``;
        a ``canceled`` job stays canceled. A level still ``running`` never ended (its worker was lost): it is
        recorded as failed with error type ``Interrupted``.
        """

        def finish(session: Session) -> str:
            job = self._job_row(session, job_id)
            now = _now()
            for row in self._level_rows(session, job_id):
                if row.status == "running":
                    row.status, row.finished_at = "failed", now
                    row.error_type = "Interrupted"
                    row.error_message = f"{row.level} was still running when job {job_id} finished"
            session.flush()
            self._recount(session, job)
            if job.status != "canceled":
                if not job.failed_scene_ids:
                    job.status = "finished"
                elif len(job.failed_scene_ids) == len(job.scene_ids):
                    job.status = "failed"
                else:
                    job.status = "finished_with_errors"
            job.finish_time = now
            return job.status

        return self._write(finish)

    # --- MGRS tiles ----------------------------------------------------------------------------------

    def record_tile(self, job_id: int, tile: str, virtual_sensor: str, path: str | Path, scene_id: int) -> None:
        """Record that a job wrote ``scene_id`` into the cube of MGRS ``tile`` at ``path`` (again: updated)."""
        tile_id = normalize_tile(tile)

        def upsert(session: Session) -> None:
            self._job_row(session, job_id)
            self._scene_row(session, scene_id)
            row = session.scalars(select(TileWrittenRow).where(
                TileWrittenRow.job_id == job_id, TileWrittenRow.tile == tile_id,
                TileWrittenRow.virtual_sensor == virtual_sensor, TileWrittenRow.scene_id == scene_id,
            )).one_or_none()
            if row is None:
                row = TileWrittenRow(job_id=job_id, tile=tile_id, virtual_sensor=virtual_sensor, scene_id=scene_id)
                session.add(row)
            row.path = str(path)
            row.written_at = _now()

        self._write(upsert, retry_on_conflict=True)

    def tiles_written(self, job_id: int) -> list[TileRecord]:
        """The tile cubes a job wrote, by tile, virtual sensor and scene."""

        def find(session: Session) -> list[TileRecord]:
            self._job_row(session, job_id)
            query = (select(TileWrittenRow).where(TileWrittenRow.job_id == job_id)
                     .order_by(TileWrittenRow.tile, TileWrittenRow.virtual_sensor, TileWrittenRow.scene_id))
            return [TileRecord(row.job_id, row.tile, row.virtual_sensor, row.path, row.scene_id, row.written_at)
                    for row in session.scalars(query)]

        return self._read(find)
