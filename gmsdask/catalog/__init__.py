"""The catalogue of scenes, jobs and processing states, in any SQLAlchemy database (SQLite by default).

GeoMultiSens kept its scene and job tables in PostgreSQL/PostGIS; gmsdask keeps the same information in
SQLite (``JobConfig.db_url``) or PostgreSQL. Tables (:mod:`gmsdask.catalog.schema`):

``scenes`` and ``scene_tiles``
    One row per product (deduplicated on ``product_id``) with the homogenized metadata needed to select
    scenes for a job, and the Sentinel-2 MGRS tiles it touches.
``jobs`` and ``job_scenes``
    One row per job: status (``pending|running|canceled|failed|finished_with_errors|finished``), the
    ``JobConfig`` it runs with, its owner process and heartbeat while running; its scenes in order.
``scene_levels``
    Per job, scene and level the state (``pending|running|done|skipped|failed|canceled``), the output, a
    note, small facts, the version of the level's implementation and, for failures, the exception type,
    message and traceback. A rerun resumes each scene after its last completed level.
``mgrs_tiles_written``
    The MGRS tile cubes a job wrote, per scene.

Modules: :mod:`~gmsdask.catalog.api` (the :class:`Catalog`), :mod:`~gmsdask.catalog.scenes`,
:mod:`~gmsdask.catalog.jobs`, :mod:`~gmsdask.catalog.levels` (its operations),
:mod:`~gmsdask.catalog.database` (sessions and retries), :mod:`~gmsdask.catalog.engine` (URLs and
dialects), :mod:`~gmsdask.catalog.migrate` and ``migrations/`` (Alembic). Product discovery lives in
:mod:`gmsdask.io.discovery` (re-exported here for compatibility).
"""

from ..io.discovery import find_products, is_product_name
from ..mgrs_grid import normalize_tile
from .api import Catalog
from .jobs import HEARTBEAT_INTERVAL_S, HEARTBEAT_STALE_AFTER_S
from .migrate import SCHEMA_REVISION
from .records import FailureRecord, JobLiveness, JobOwner, JobRecord, LevelRecord, SceneRecord, TileRecord
from .schema import COMPLETED_LEVEL_STATUSES, JOB_STATUSES, LEVEL_STATUSES, TERMINAL_JOB_STATUSES
from .values import ErrorReport

__all__ = [
    "COMPLETED_LEVEL_STATUSES",
    "HEARTBEAT_INTERVAL_S",
    "HEARTBEAT_STALE_AFTER_S",
    "JOB_STATUSES",
    "LEVEL_STATUSES",
    "SCHEMA_REVISION",
    "TERMINAL_JOB_STATUSES",
    "Catalog",
    "ErrorReport",
    "FailureRecord",
    "JobLiveness",
    "JobOwner",
    "JobRecord",
    "LevelRecord",
    "SceneRecord",
    "TileRecord",
    "find_products",
    "is_product_name",
    "normalize_tile",
]
