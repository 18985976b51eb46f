"""Conversion and validation of the values the catalogue stores (times, cloud cover, tile ids, choices)."""

from __future__ import annotations

import math
import re
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from ..errors import CatalogError, GmsdaskError
from ..mgrs_grid import normalize_tile

__all__ = [
    "ID_CHUNK_SIZE",
    "catalog_tile",
    "check_choice",
    "chunks",
    "cloud_cover",
    "ErrorReport",
    "format_traceback",
    "now",
    "parse_time",
    "time_bound",
    "utc",
]

#: Ids per ``IN (...)`` clause: SQLite's bound-parameter limit is far above, but long lists stay readable in logs.
ID_CHUNK_SIZE = 500

T = TypeVar("T")


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (naive values are taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def now() -> datetime:
    """The current time, aware UTC."""
    return datetime.now(UTC)


def parse_time(value: Any, what: str) -> datetime:
    """A UTC datetime from a datetime, a date (midnight) or an ISO 8601 string (``...Z``)."""
    if isinstance(value, datetime):
        return utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            return utc(datetime.fromisoformat(value.strip()))
        except ValueError:
            pass
    raise CatalogError(f"{what}: {value!r} is not an ISO 8601 time")


def time_bound(value: date | datetime | str, *, upper: bool) -> tuple[datetime, bool]:
    """A filter bound and whether it is inclusive; a bare date as upper bound includes its whole day."""
    is_bare_date = (isinstance(value, date) and not isinstance(value, datetime)) or (
        isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()) is not None
    )
    bound = parse_time(value, "end" if upper else "start")
    if upper and is_bare_date:
        return bound + timedelta(days=1), False
    return bound, True


def cloud_cover(value: Any) -> float | None:
    """Cloud cover in percent, or None where unknown (missing, NaN or negative as in Landsat's ``-1``)."""
    if value is None or value == "":
        return None
    cover = float(value)
    return None if math.isnan(cover) or cover < 0 else cover


def catalog_tile(tile: str, what: str = "") -> str:
    """``tile`` normalized by :func:`gmsdask.mgrs_grid.normalize_tile`; a bad id raises :class:`CatalogError`."""
    try:
        return normalize_tile(str(tile))
    except GmsdaskError as err:
        raise CatalogError(f"{what}{': ' if what else ''}{err}") from None


def check_choice(value: str, allowed: Sequence[str], what: str) -> str:
    """``value`` if it is one of ``allowed``, else :class:`CatalogError` naming it and the allowed values."""
    if value not in allowed:
        raise CatalogError(f"invalid {what} {value!r}; allowed: {', '.join(allowed)}")
    return value


def format_traceback(error: BaseException) -> str:
    """The formatted traceback of ``error`` (just its type and message if it was never raised)."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


@dataclass(frozen=True)
class ErrorReport:
    """What the catalogue stores of a failure: exception type name, message and formatted traceback.

    A plain value, so that a failure on a worker reaches the catalogue whole whatever the exception's class:
    an exception whose ``__init__`` takes other arguments than ``args`` may not unpickle, and a traceback pickles
    only where ``tblib`` is installed."""

    type_name: str
    message: str
    traceback: str

    @classmethod
    def of(cls, error: "BaseException | ErrorReport") -> "ErrorReport":
        if isinstance(error, ErrorReport):
            return error
        return cls(type(error).__name__, str(error), format_traceback(error))


def chunks(values: Sequence[T], size: int = ID_CHUNK_SIZE) -> Iterable[Sequence[T]]:
    """``values`` in slices of at most ``size``."""
    for start in range(0, len(values), size):
        yield values[start:start + size]
