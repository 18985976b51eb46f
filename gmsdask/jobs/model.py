"""Typed model of a routine (a Sen2Chain job): global settings and one task per tile.

Values are parsed once, when a file is read or a task edited (:mod:`gmsdask.jobs.validation`), into these
frozen dataclasses; nothing downstream looks at strings again. Dataclasses rather than pydantic because the
parsing (with line numbers and Sen2Chain's spellings) happens in the file reader, not in the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Literal

__all__ = [
    "DEFAULT_DATE_MIN",
    "DEFAULT_TEMPLATE_TILE",
    "GLOBAL_KEYS",
    "TASK_COLUMNS",
    "DayBound",
    "JobSettings",
    "RemoveItem",
    "RoutineFile",
    "Task",
]

#: Task table columns as Sen2Chain writes them today (FACTS.md section 7); ``pb_min``/``pb_max`` are written
#: only when a file has them or a task sets them.
TASK_COLUMNS: tuple[str, ...] = ("tile", "date_min", "date_max", "max_clouds", "provider", "filter_max_pb",
                                 "download", "compute_l2a", "cloudmasks", "indices", "remove", "comments")
#: Global keys in Sen2Chain's order (``provider`` and ``process_by_line`` only when present or set).
GLOBAL_KEYS: tuple[str, ...] = ("logs", "timing", "provider", "tries", "sleep", "nb_proc", "copy_L2A_sideproducts",
                                "clean_before", "clean_after", "process_by_line")
#: ``date_min`` when the cell is empty (the start of the Sentinel-2 archive).
DEFAULT_DATE_MIN = date(2015, 1, 1)
#: The tile of Sen2Chain's template task (``task_add()`` without a row).
DEFAULT_TEMPLATE_TILE = "40KCB"


@dataclass(frozen=True)
class DayBound:
    """A task's date bound: a fixed ``day``, or ``days_before`` the day of the run (``today``, ``today-xx``)."""

    day: date | None
    days_before: int = 0

    def resolve(self, today: date) -> date:
        """The calendar day this bound means on ``today``."""
        return self.day if self.day is not None else today - timedelta(days=self.days_before)

    def __str__(self) -> str:
        if self.day is not None:
            return self.day.isoformat()
        return "today" if self.days_before == 0 else f"today-{self.days_before}"


@dataclass(frozen=True)
class RemoveItem:
    """One ``remove`` item: delete ``level`` products, ``new`` (of this run) or ``all`` of the tile.

    ``min_cloud_cover`` (``-ccXX``) restricts it to products with a cloud cover >= XX percent (inclusive).
    ``short`` records the older spelling ``l1c``/``l2a`` (meaning ``-new``) so that a file saves back as read.
    """

    level: Literal["l1c", "l2a"]
    scope: Literal["new", "all"] = "new"
    min_cloud_cover: float | None = None
    short: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        if self.short and self.scope == "new" and self.min_cloud_cover is None:
            return self.level
        text = f"{self.level}-{self.scope}"
        return text if self.min_cloud_cover is None else f"{text}-cc{self.min_cloud_cover:g}"


@dataclass(frozen=True)
class Task:
    """One line of the task table: what to do on one MGRS tile.

    Defaults are the documented meanings of empty cells: ``date_min`` 2015-01-01, ``date_max`` open (None),
    ``max_clouds`` 100 %, processing baselines 0 .. 98, nothing downloaded, no L2A computed, no masks, no indices,
    nothing removed. ``provider`` None means the job's global ``provider``, else ``local``.
    """

    tile: str
    active: bool = True
    date_min: DayBound = DayBound(DEFAULT_DATE_MIN)
    date_max: DayBound | None = None
    max_clouds: float = 100.0
    provider: str | None = None
    filter_max_pb: bool = False
    pb_min: float = 0.0
    pb_max: float = 98.0
    download: Literal["l1c", "l2a"] | None = None
    compute_l2a: bool = False
    cloudmasks: tuple[str, ...] = ()
    indices: tuple[str, ...] = ()
    remove: tuple[RemoveItem, ...] = ()
    comments: str = ""
    #: Cells of columns gmsdask does not know, kept as read and written back.
    extra: Mapping[str, str] = field(default_factory=dict)
    #: The cells as read from the file (column -> text); unchanged values are written back spelled as read.
    source: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def dates(self, today: date) -> tuple[date, date | None]:
        """First and last day (inclusive) of the task on ``today``; None = open end."""
        return self.date_min.resolve(today), None if self.date_max is None else self.date_max.resolve(today)

    def index_names(self, all_names: tuple[str, ...]) -> tuple[str, ...]:
        """The indices to compute, with ``All`` expanded to ``all_names``."""
        return all_names if "All" in self.indices else self.indices

    def edited(self, **changes: object) -> Task:
        """A copy with ``changes`` (already typed values)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class JobSettings:
    """The global parameters of a routine (the ``key = value`` lines of ``job_<jid>.cfg``).

    ``sleep`` is in minutes; ``nb_proc`` is the number of Dask workers of the job's runs (it overrides
    ``CPUs``); ``process_by_line`` None means the whole table at once.
    """

    logs: bool = False
    timing: str = "0 0 * * *"
    provider: str | None = None
    tries: int = 1
    sleep: float = 0.0
    nb_proc: int = 8
    copy_l2a_sideproducts: bool = False
    clean_before: bool = False
    clean_after: bool = False
    process_by_line: int | None = None
    #: Global keys gmsdask does not know, kept as read (key -> text).
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RoutineFile:
    """A whole ``job_<jid>.cfg``: its comment header, global settings, and task table.

    ``global_keys`` are the global keys in file order and spelling (``copy_L2A_sideproducts``); ``columns`` the
    task table header as read (legacy names included); ``global_source`` the global values as read.
    Equality compares what the file means (header, settings, tasks), not its layout.
    """

    header: tuple[str, ...]
    settings: JobSettings
    tasks: tuple[Task, ...]
    global_keys: tuple[str, ...] = field(default=(), compare=False)
    columns: tuple[str, ...] = field(default=(), compare=False)
    global_source: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
