"""Sen2Chain's ``job_<jid>.cfg`` format, read and written exactly.

Layout (what Sen2Chain writes and reads): ``#`` comment lines, ``key = value`` global parameters, a blank line,
then the task table: a ``;``-separated header row and one row per task (``!`` before the tile comments a task
out). Older files name three columns differently (``cloudmask`` -> ``cloudmasks``, ``l1c`` = download L1C,
``l2a`` = compute L2A); they are read and saved with today's names.

Every cell is parsed once into the typed :mod:`gmsdask.jobs.model`; all invalid values of a file are collected
and raised together as one :class:`~gmsdask.jobs.validation.RoutineConfigError` with their line numbers.
A value that was not changed is written back spelled as it was read, so a file reads and saves back equal.
The table is parsed with :mod:`csv` (``;`` delimiter, pandas-compatible quoting) rather than pandas so that
line numbers stay known.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from . import validation as v
from .model import (
    DEFAULT_DATE_MIN,
    GLOBAL_KEYS,
    TASK_COLUMNS,
    DayBound,
    JobSettings,
    RoutineFile,
    Task,
)

__all__ = [
    "CELL_PARSERS",
    "DEFAULT_HEADER",
    "cell_text",
    "new_routine",
    "parse_global",
    "read_globals_loosely",
    "read_routine",
    "table_columns",
    "task_cell",
    "task_from_cells",
    "with_tasks",
    "write_routine",
]

#: Comment header of files gmsdask creates (Sen2Chain's parameter documentation, shortened).
DEFAULT_HEADER: tuple[str, ...] = (
    "# Routine (Sen2Chain job) of gmsdask. Global parameters:",
    "# logs: True | False; timing: cron expression (minute hour day month weekday)",
    "# tries: provider fetch attempts; sleep: minutes between attempts; nb_proc: Dask workers",
    "# copy_L2A_sideproducts: keep SCL and MSK_CLDPRB when an L2A product is removed",
    "# clean_before / clean_after: remove corrupt products of the tasks' tiles before / after the run",
    "# process_by_line: run the table in chunks of n lines",
    "# Tasks (one line per tile, '!' before the tile comments a line out):",
    "# tile; date_min (empty = 2015-01-01 | YYYY-MM-DD | today-xx); date_max (empty = open | YYYY-MM-DD | today)",
    "# max_clouds (empty = 100); provider (empty = job's provider or local | local | stac | cop_dataspace | peps)",
    "# filter_max_pb (True: only the highest processing baseline); pb_min/pb_max (optional columns, 0 / 98)",
    "# download: l1c | l2a | False; compute_l2a: True | False",
    "# cloudmasks: False | CM001/CM002/CM003-PRB1-ITER5/CM004-CSH1-CMP1-CHP1-TCI1-ITER0",
    "# indices: False | All | NDVI/NDWIGAO/NDWIMCF/MNDWI/NDRE/IRECI/BIGR/BIRNIR/BIBG/EVI/NBR/NDBI",
    "# remove: False | l1c-new-cc80 | l1c-all | l2a-new | l1c-all/l2a-new-cc25; comments: free text",
)

_LEGACY_COLUMNS = {"cloudmask": "cloudmasks", "l1c": "download", "l2a": "compute_l2a"}
_OPTIONAL_COLUMNS = ("pb_min", "pb_max")
_REQUIRED_GLOBALS = tuple(key for key in GLOBAL_KEYS if key not in ("provider", "process_by_line"))
_GLOBAL_FIELDS = {key.lower(): key.lower() for key in GLOBAL_KEYS}


def _optional_text(text: str) -> str | None:
    return text.strip() or None


def _legacy_download(text: str) -> str | None:
    return "l1c" if text.strip() and v.parse_bool(text) else None


#: Global key (lower case) -> parser of its value.
_GLOBAL_PARSERS: dict[str, Callable[[str], Any]] = {
    "logs": v.parse_bool,
    "timing": v.parse_cron,
    "provider": _optional_text,
    "tries": lambda text: v.parse_number(text, low=1, integer=True),
    "sleep": lambda text: v.parse_number(text, low=0),
    "nb_proc": lambda text: v.parse_number(text, low=1, integer=True),
    "copy_l2a_sideproducts": v.parse_bool,
    "clean_before": v.parse_bool,
    "clean_after": v.parse_bool,
    "process_by_line": lambda text: v.parse_number(text, low=0, integer=True) or None,
}

#: Column -> (task field, parser of a non-empty cell, value of an empty cell).
CELL_PARSERS: dict[str, tuple[str, Callable[[str], Any], Any]] = {
    "date_min": ("date_min", v.parse_day_bound, DayBound(DEFAULT_DATE_MIN)),
    "date_max": ("date_max", v.parse_day_bound, None),
    "max_clouds": ("max_clouds", lambda text: v.parse_number(text, low=0, high=100), 100.0),
    "provider": ("provider", _optional_text, None),
    "filter_max_pb": ("filter_max_pb", v.parse_bool, False),
    "pb_min": ("pb_min", lambda text: v.parse_number(text, low=0), 0.0),
    "pb_max": ("pb_max", lambda text: v.parse_number(text, low=0), 98.0),
    "download": ("download", v.parse_download, None),
    "compute_l2a": ("compute_l2a", v.parse_bool, False),
    "cloudmasks": ("cloudmasks", v.parse_cloudmasks, ()),
    "indices": ("indices", v.parse_indices, ()),
    "remove": ("remove", v.parse_remove, ()),
    "comments": ("comments", str, ""),
    # older Sen2Chain columns
    "cloudmask": ("cloudmasks", v.parse_cloudmasks, ()),
    "l1c": ("download", _legacy_download, None),
    "l2a": ("compute_l2a", v.parse_bool, False),
}


def cell_text(value: Any) -> str:
    """The canonical cell text of a typed value (``True``, ``NDVI/NBR``, ``2024-01-31``, ``80``, empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return "/".join(str(item) for item in value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _field_cell(column: str, task: Task) -> str:
    """The canonical text of ``column`` for ``task`` (defaults of date columns written empty)."""
    if column == "tile":
        return ("" if task.active else "!") + task.tile
    field_name = CELL_PARSERS[column][0]
    value = getattr(task, field_name)
    if column == "date_min" and value == DayBound(DEFAULT_DATE_MIN):
        return ""
    return cell_text(value)


def task_from_cells(cells: Mapping[str, str], where: str) -> tuple[Task | None, list[v.Problem]]:
    """A task from its cells (column -> text, legacy names allowed), or the problems of its cells.

    Unknown columns are kept in ``Task.extra``; ``source`` keeps the cells for writing back as read.
    """
    problems: list[v.Problem] = []
    tile_text = cells.get("tile", "").strip()
    active = not tile_text.startswith("!")
    tile_text = tile_text.lstrip("!").strip()
    values: dict[str, Any] = {"active": active}
    try:
        values["tile"] = v.parse_tile(tile_text)
    except v.InvalidValue as error:
        problems.append(v.Problem(where, "tile", str(error)))
    extra: dict[str, str] = {}
    for column, text in cells.items():
        if column == "tile":
            continue
        if column not in CELL_PARSERS:
            extra[column] = text
            continue
        field_name, parse, empty = CELL_PARSERS[column]
        try:
            values[field_name] = parse(text) if text.strip() else empty
        except v.InvalidValue as error:
            problems.append(v.Problem(where, column, str(error)))
    low, high = values.get("date_min"), values.get("date_max")
    if low is not None and high is not None and low.day and high.day and low.day > high.day:
        problems.append(v.Problem(where, "date_min", f"date_min {low} is after date_max {high}"))
    if "pb_min" in values and "pb_max" in values and values["pb_min"] > values["pb_max"]:
        problems.append(v.Problem(where, "pb_min", f"pb_min {values['pb_min']:g} > pb_max {values['pb_max']:g}"))
    if problems:
        return None, problems
    return Task(**values, extra=extra, source=dict(cells)), []


def parse_global(key: str, text: str) -> Any:
    """The typed value of global ``key`` (any case); an empty ``provider``/``process_by_line`` is None."""
    if not text.strip() and key.lower() in ("provider", "process_by_line"):
        return None
    return _GLOBAL_PARSERS[key.lower()](text)


def read_globals_loosely(text: str) -> dict[str, str]:
    """The global ``key = value`` texts of a file (lower-case keys), without validation (for listings)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if ";" in stripped and ("=" not in stripped or stripped.index(";") < stripped.index("=")):
            break
        if "=" in stripped:
            key, _, value = stripped.partition("=")
            found[key.strip().lower()] = value.strip()
    return found


def read_routine(text: str, source: str = "job file") -> RoutineFile:
    """Parse the text of a ``job_<jid>.cfg``.

    Raises
    ------
    RoutineConfigError
        Listing every invalid value, unknown layout line and missing header with its line number.
    """
    problems: list[v.Problem] = []
    header: list[str] = []
    settings: dict[str, Any] = {}
    extra_globals: dict[str, str] = {}
    keys: list[str] = []
    global_source: dict[str, str] = {}
    columns: list[str] = []
    tasks: list[Task] = []
    lines = text.splitlines()
    number = 0
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if ";" in stripped and not stripped.startswith("#") and (
                "=" not in stripped or stripped.index(";") < stripped.index("=")):
            break
        if not keys and (not stripped or stripped.startswith("#")):
            header.append(line)
        elif not stripped or stripped.startswith("#"):
            continue
        elif "=" in stripped:
            key, _, value = (part.strip() for part in stripped.partition("="))
            keys.append(key)
            global_source[key.lower()] = value
            if key.lower() not in _GLOBAL_FIELDS:
                extra_globals[key] = value
                continue
            try:
                settings[key.lower()] = parse_global(key, value)
            except v.InvalidValue as error:
                problems.append(v.Problem(f"line {number}", key, str(error)))
        else:
            problems.append(v.Problem(f"line {number}", "layout", f"{stripped!r} is neither 'key = value' "
                                      "nor a ';'-separated table row"))
    else:
        number = len(lines) + 1
    table = lines[number - 1:] if number <= len(lines) else []
    if not table:
        problems.append(v.Problem(f"line {number}", "layout", "no task table (a 'tile;date_min;...' header row)"))
    else:
        columns = next(csv.reader([table[0]], delimiter=";"))
        columns = [column.strip() for column in columns]
        if "tile" not in columns:
            problems.append(v.Problem(f"line {number}", "layout", f"task table header {table[0]!r} has no 'tile'"))
        for offset, row_line in enumerate(table[1:], start=1):
            if not row_line.strip() or row_line.lstrip().startswith("#"):
                continue
            where = f"line {number + offset}"
            row = next(csv.reader([row_line], delimiter=";"))
            if len(row) != len(columns):
                problems.append(v.Problem(where, "layout", f"{len(row)} cells for {len(columns)} columns"))
                continue
            task, task_problems = task_from_cells(dict(zip(columns, row)), where)
            problems.extend(task_problems)
            if task is not None:
                tasks.append(task)
    if problems:
        raise v.RoutineConfigError(source, problems)
    return RoutineFile(header=tuple(header), settings=JobSettings(**settings, extra=extra_globals),
                       tasks=tuple(tasks), global_keys=tuple(keys), columns=tuple(columns),
                       global_source=global_source)


def _global_text(key: str, settings: JobSettings, source: Mapping[str, str]) -> str:
    name = key.lower()
    if name not in _GLOBAL_FIELDS:
        return settings.extra.get(key, source.get(name, ""))
    value = getattr(settings, name)
    if name in source:
        try:
            if parse_global(key, source[name]) == value:
                return source[name]
        except v.InvalidValue:  # an edited invalid source is rewritten canonically
            pass
    return cell_text(value)


def table_columns(routine: RoutineFile) -> list[str]:
    known = set(CELL_PARSERS) | {"tile"}
    columns = list(TASK_COLUMNS)
    with_pb = any(column in routine.columns for column in _OPTIONAL_COLUMNS) or any(
        task.pb_min != 0.0 or task.pb_max != 98.0 for task in routine.tasks)
    if with_pb:
        at = columns.index("filter_max_pb") + 1
        columns[at:at] = list(_OPTIONAL_COLUMNS)
    extra = [c for c in routine.columns if c not in known]
    extra += [c for task in routine.tasks for c in task.extra if c not in extra and c not in known]
    return columns + extra


def task_cell(column: str, task: Task) -> str:
    if column not in CELL_PARSERS and column != "tile":
        return task.extra.get(column, "")
    canonical = _field_cell(column, task)
    raw = task.source.get(column)
    if raw is None:
        return canonical
    parsed, _problems = task_from_cells({"tile": task.source.get("tile", task.tile), column: raw}, "")
    same = parsed is not None and all(
        getattr(parsed, name) == getattr(task, name)
        for name in (("tile", "active") if column == "tile" else (CELL_PARSERS[column][0],)))
    return raw if same else canonical


def write_routine(routine: RoutineFile) -> str:
    """The text of ``routine`` in Sen2Chain's format (a file Sen2Chain reads; unchanged values as read)."""
    settings = routine.settings
    keys = list(routine.global_keys)
    lowered = {key.lower() for key in keys}
    for key in GLOBAL_KEYS:
        wanted = key in _REQUIRED_GLOBALS or getattr(settings, key.lower()) is not None
        if key.lower() not in lowered and wanted:
            keys.append(key)
    keys += [key for key in settings.extra if key not in keys]
    out = io.StringIO()
    for line in routine.header:
        out.write(line + "\n")
    for key in keys:
        out.write(f"{key} = {_global_text(key, settings, routine.global_source)}\n")
    out.write("\n")
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    columns = table_columns(routine)
    writer.writerow(columns)
    for task in routine.tasks:
        writer.writerow([task_cell(column, task) for column in columns])
    return out.getvalue()


def new_routine(settings: JobSettings | None = None) -> RoutineFile:
    """An empty routine with gmsdask's comment header and Sen2Chain's default globals."""
    return RoutineFile(header=DEFAULT_HEADER, settings=settings or JobSettings(), tasks=())


def with_tasks(routine: RoutineFile, tasks: list[Task]) -> RoutineFile:
    """``routine`` with its task table replaced."""
    return replace(routine, tasks=tuple(tasks))
