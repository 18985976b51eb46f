"""Validation of routine (Sen2Chain job) ids and of every value a ``job_<jid>.cfg`` may hold.

Each ``parse_*`` function turns one cell or global value of the file into its typed value, or raises
:class:`InvalidValue` with a message; the file reader collects those messages with their line numbers and raises
one :class:`RoutineConfigError` listing every problem of the file. Cron expressions are checked with
``croniter`` and tile ids with :func:`gmsdask.mgrs_grid.normalize_tile`; the small grammars of Sen2Chain
(cloud-mask names, ``remove`` items, ``today-xx``) are regular expressions here because no library knows them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from croniter import croniter

from ..errors import GmsdaskError, JobError
from ..mgrs_grid import normalize_tile
from .model import DayBound, RemoveItem

__all__ = [
    "INDEX_NAMES",
    "InvalidValue",
    "Problem",
    "RoutineConfigError",
    "RoutineIdError",
    "parse_bool",
    "parse_cloudmasks",
    "parse_cron",
    "parse_day_bound",
    "parse_download",
    "parse_indices",
    "parse_number",
    "parse_remove",
    "parse_tile",
    "validate_job_id",
]

#: The 12 indices of Sen2Chain (FACTS.md section 7), in its order; ``All`` in a task means all of them.
INDEX_NAMES: tuple[str, ...] = ("NDVI", "NDWIGAO", "NDWIMCF", "MNDWI", "NDRE", "IRECI", "BIGR", "BIRNIR", "BIBG",
                                "EVI", "NBR", "NDBI")

_JOB_ID = re.compile(r"[A-Za-z0-9_-]+")
_CLOUDMASK = re.compile(
    r"CM001|CM002|CM003-PRB(?P<prb>\d{1,3})-ITER(?P<iter3>\d+)"
    r"|CM004-CSH[01]-CMP[01]-CHP[01]-TCI[01]-ITER(?P<iter4>\d+)"
)
_REMOVE = re.compile(r"(?P<level>l1c|l2a)(?:-(?P<scope>new|all)(?:-cc(?P<cc>\d+(?:\.\d+)?))?)?")
_TODAY = re.compile(r"today(?:\s*-\s*(?P<days>\d+))?")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
#: Cells meaning "nothing" in list and download columns (Sen2Chain writes both spellings).
_NOTHING = frozenset({"", "false", "none"})


class RoutineIdError(JobError, ValueError):
    """A routine id that is not letters, digits, ``-`` and ``_`` only (empty, a path, ``../x``)."""

    def __init__(self, jid: object, problem: str) -> None:
        self.jid = jid
        super().__init__(f"routine id {jid!r}: {problem}; use letters, digits, '-' and '_' only")


@dataclass(frozen=True)
class Problem:
    """One invalid value: where (``line 12`` of the file, or ``task 0``), which field, what is wrong."""

    where: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}, {self.field}: {self.message}"


class RoutineConfigError(JobError, ValueError):
    """Every invalid value of one routine file (or one edit), each with its line number or task id."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"{source}: {len(self.problems)} invalid value(s):\n{lines}")


class InvalidValue(ValueError):
    """One invalid value (raised by the ``parse_*`` functions); collected into a :class:`RoutineConfigError` by the caller."""


def validate_job_id(jid: object) -> str:
    """``jid`` if it is a safe routine id (``[A-Za-z0-9_-]+``), else :class:`RoutineIdError`.

    Ids name files (``job_<jid>.cfg``), cron comments and log folders, so nothing that could leave the jobs
    folder (``../x``, ``/abs``, ``a/b``) or be empty is accepted.
    """
    if not isinstance(jid, str):
        raise RoutineIdError(jid, f"must be a string, not {type(jid).__name__}")
    if not jid:
        raise RoutineIdError(jid, "is empty")
    if not _JOB_ID.fullmatch(jid):
        raise RoutineIdError(jid, "contains characters that are not allowed (a path or spaces?)")
    return jid


def parse_bool(text: str) -> bool:
    """``True``/``False`` (also ``yes``/``no``/``1``/``0``, any case); the string ``"False"`` is false."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidValue(f"{text!r} is not True or False")


def parse_cron(text: str) -> str:
    """A five-field cron expression (minute hour day month weekday), normalised to single spaces."""
    fields = text.split()
    if len(fields) != 5 or not croniter.is_valid(" ".join(fields)):
        raise InvalidValue(f"{text!r} is not a cron expression of 5 fields such as '0 20 * * *'")
    return " ".join(fields)


def parse_tile(text: str) -> str:
    """An MGRS tile id in Sentinel-2 spelling (``T29UNU``, ``29unu`` -> ``29UNU``)."""
    try:
        return normalize_tile(text)
    except GmsdaskError as error:
        raise InvalidValue(str(error)) from None


def parse_day_bound(text: str) -> DayBound:
    """``YYYY-MM-DD``, ``today`` or ``today-xx`` (xx days before the day of the run)."""
    stripped = text.strip()
    today = _TODAY.fullmatch(stripped.lower())
    if today:
        return DayBound(day=None, days_before=int(today["days"] or 0))
    try:
        return DayBound(day=date.fromisoformat(stripped), days_before=0)
    except ValueError:
        raise InvalidValue(f"{text!r} is not a date (YYYY-MM-DD), 'today' or 'today-xx'") from None


def _items(text: str) -> list[str]:
    """The ``/``-separated items of a list cell; empty or ``False`` means none."""
    if text.strip().lower() in _NOTHING:
        return []
    return [item.strip() for item in text.split("/") if item.strip()]


def parse_cloudmasks(text: str) -> tuple[str, ...]:
    """Cloud-mask names: ``CM001``, ``CM002``, ``CM003-PRBp-ITERi``, ``CM004-CSHa-CMPb-CHPc-TCId-ITERi``."""
    masks: list[str] = []
    for item in _items(text):
        name = item.upper()
        match = _CLOUDMASK.fullmatch(name)
        if match is None:
            raise InvalidValue(f"unknown cloud mask {item!r} (allowed: CM001, CM002, CM003-PRB<p>-ITER<i>, "
                           "CM004-CSH<0|1>-CMP<0|1>-CHP<0|1>-TCI<0|1>-ITER<i>)")
        if match["prb"] is not None and not 0 <= int(match["prb"]) <= 100:
            raise InvalidValue(f"cloud mask {item!r}: probability must be 0..100")
        if name not in masks:
            masks.append(name)
    return tuple(masks)


def parse_indices(text: str) -> tuple[str, ...]:
    """Index names among :data:`INDEX_NAMES`, or ``All`` (kept as the single item ``"All"``)."""
    names: list[str] = []
    for item in _items(text):
        if item.lower() == "all":
            names.append("All")
            continue
        name = item.upper()
        if name not in INDEX_NAMES:
            raise InvalidValue(f"unknown index {item!r} (allowed: All, {', '.join(INDEX_NAMES)})")
        if name not in names:
            names.append(name)
    if "All" in names and len(names) > 1:
        raise InvalidValue(f"{text!r}: 'All' already means every index")
    return tuple(names)


def parse_remove(text: str) -> tuple[RemoveItem, ...]:
    """``remove`` items ``{l1c|l2a}-{new|all}[-ccXX]``; a bare ``l1c``/``l2a`` (older files) means ``-new``."""
    items: list[RemoveItem] = []
    for item in _items(text):
        match = _REMOVE.fullmatch(item.lower())
        if match is None:
            raise InvalidValue(f"invalid remove item {item!r} (form: l1c|l2a-new|all[-ccXX], e.g. l1c-new-cc80)")
        cloud = float(match["cc"]) if match["cc"] is not None else None
        if cloud is not None and not 0 <= cloud <= 100:
            raise InvalidValue(f"remove item {item!r}: cloud cover must be 0..100")
        items.append(RemoveItem(level=match["level"], scope=match["scope"] or "new", min_cloud_cover=cloud,
                                short=match["scope"] is None))
    return tuple(items)


def parse_download(text: str) -> str | None:
    """``l1c``, ``l2a`` or None (empty / ``False``: nothing is downloaded)."""
    lowered = text.strip().lower()
    if lowered in _NOTHING:
        return None
    if lowered in ("l1c", "l2a"):
        return lowered
    raise InvalidValue(f"{text!r} is not l1c, l2a or False")


def parse_number(text: str, *, low: float | None = None, high: float | None = None, integer: bool = False) -> float | int:
    """A number within ``[low, high]``; ``integer`` asks for a whole number."""
    try:
        value = float(text)
    except ValueError:
        raise InvalidValue(f"{text!r} is not a number") from None
    if integer and value != int(value):
        raise InvalidValue(f"{text!r} is not a whole number")
    if (low is not None and value < low) or (high is not None and value > high):
        lowest = "-inf" if low is None else f"{low:g}"
        highest = "inf" if high is None else f"{high:g}"
        raise InvalidValue(f"{text!r} is out of range ({lowest} .. {highest})")
    return int(value) if integer else value
