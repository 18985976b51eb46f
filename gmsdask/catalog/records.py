"""The plain, frozen records the catalogue hands out (no database session attached; they pickle)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..config import JobConfig

__all__ = ["FailureRecord", "JobLiveness", "JobOwner", "JobRecord", "LevelRecord", "SceneRecord", "TileRecord"]


@dataclass(frozen=True)
class SceneRecord:
    """One catalogued scene; ``mgrs_tiles`` sorted, in the ``29UNU`` spelling."""

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


@dataclass(frozen=True)
class JobOwner:
    """The process running a job: host name and process id."""

    host: str
    pid: int

    @classmethod
    def this_process(cls) -> JobOwner:
        """The calling process."""
        return cls(socket.gethostname(), os.getpid())

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"


@dataclass(frozen=True)
class JobRecord:
    """One job: its scenes (in creation order), status, live statistics per level and its configuration.

    ``statistics`` (``{level: {"done": n, "failed": n, "skipped": n}}``) and ``failed_scene_ids`` are counted
    from the level states when the record is read. ``owner`` and ``heartbeat_at`` are set while it runs.
    """

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
    owner: JobOwner | None = None
    heartbeat_at: datetime | None = None

    def job_config(self) -> JobConfig:
        """The stored configuration as a validated :class:`JobConfig`."""
        return JobConfig.model_validate(self.config)


@dataclass(frozen=True)
class LevelRecord:
    """The state of one processing level of one scene in one job.

    ``version`` is the level implementation's version that produced the state (``""``: not recorded, as for
    states written before versions were kept); ``note`` says why a level was skipped; ``facts`` holds small
    JSON results of the level (a shift, an aerosol optical thickness) or None.
    """

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
    note: str = ""
    version: str = ""
    facts: dict[str, Any] | None = None


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


@dataclass(frozen=True)
class JobLiveness:
    """Whether a job's stored status still holds.

    ``status`` is the stored status, except ``"interrupted"`` for a job stored as ``running`` whose owner
    process is gone (same host) or whose heartbeat is older than the threshold; ``reason`` says which.
    """

    job_id: int
    status: str
    stored_status: str
    owner: JobOwner | None
    heartbeat_at: datetime | None
    reason: str = ""

    @property
    def interrupted(self) -> bool:
        """True if the job is stored as running but nobody runs it any more."""
        return self.status == "interrupted"
