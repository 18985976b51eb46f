"""``Jobs`` and ``Job``: Sen2Chain's job API on gmsdask (routines; not the catalogue's integer jobs).

>>> from gmsdask.jobs import Jobs, Job
>>> j = Job("reunion")                       # opens job_reunion.cfg, or a new routine if there is none
>>> j.task_add({"tile": "40KCB", "date_min": "today-10", "indices": ["NDVI", "MNDWI"]})
>>> j.task_edit(0, remove=["l1c-new", "l2a-all-cc80"], max_clouds=60)
>>> j.save(); j.cron_enable()
>>> Jobs()                                   # a DataFrame: job_id, config_file, python_script, logging, ...
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from . import cfg_format
from .cron import CronUnavailableError, RoutineCron
from .home import gmsdask_home, job_file, job_options_file, jobs_folder
from .model import DEFAULT_TEMPLATE_TILE, JobSettings, RoutineFile, Task
from .validation import (
    InvalidValue,
    Problem,
    RoutineConfigError,
    RoutineIdError,
    parse_bool,
    validate_job_id,
)

__all__ = ["JOBS_COLUMNS", "Job", "Jobs"]

log = logging.getLogger("gmsdask.jobs")

#: Columns of the ``Jobs()`` listing (Sen2Chain's).
JOBS_COLUMNS: tuple[str, ...] = ("job_id", "config_file", "python_script", "logging", "timing", "cron_status",
                                 "cron_timing")
_SETTINGS = tuple(name for name in JobSettings.__dataclass_fields__ if name != "extra")


def _job_row(path: Path, cron: RoutineCron) -> dict[str, Any] | None:
    jid = path.stem.removeprefix("job_")
    try:
        validate_job_id(jid)
    except RoutineIdError as error:
        log.warning("%s: not listed: %s", path, error)
        return None
    texts = cfg_format.read_globals_loosely(path.read_text(errors="replace"))
    try:
        logs: Any = parse_bool(texts.get("logs", "False"))
    except InvalidValue:
        logs = texts.get("logs")
    status, timing = cron.status(jid)
    return {"job_id": jid, "config_file": True, "python_script": False, "logging": logs,
            "timing": texts.get("timing"), "cron_status": status, "cron_timing": timing}


class Jobs(pd.DataFrame):
    """Every routine of ``GMSDASK_HOME`` as a DataFrame (Sen2Chain's columns), with ``list`` and ``remove``.

    ``python_script`` is always False: gmsdask generates no script per job. A routine file with invalid
    values is still listed (its ``timing`` as written), so one broken file never hides the others.

    Parameters
    ----------
    home
        The gmsdask home folder (default ``$GMSDASK_HOME`` or ``~/gmsdask_data``).
    crontab
        A crontab file instead of the user's crontab (see :class:`~gmsdask.jobs.cron.RoutineCron`).
    """

    _metadata: ClassVar[list[str]] = ["_home", "_cron"]  # pandas keeps these attributes off the columns

    def __init__(self, home: str | Path | None = None, crontab: str | Path | None = None) -> None:
        folder = jobs_folder(Path(home) if home else None)
        cron = RoutineCron(crontab)
        paths = sorted(folder.glob("job_*.cfg")) if folder.is_dir() else []
        rows = [row for row in (_job_row(path, cron) for path in paths) if row is not None]
        super().__init__(rows, columns=list(JOBS_COLUMNS))
        self._home = Path(home) if home else None
        self._cron = cron

    @property
    def _constructor(self) -> Callable[..., pd.DataFrame]:
        # Slices and copies of the listing are plain DataFrames (a Jobs is built from the files only).
        return pd.DataFrame

    @property
    def list(self) -> list[str]:
        """The routine ids."""
        return [str(jid) for jid in self["job_id"]]

    def remove(self, jid: str) -> None:
        """Delete routine ``jid``: its ``.cfg``, its ``.toml`` options and its crontab entry (logs stay)."""
        home = self._home or gmsdask_home()
        try:
            self._cron.remove(jid)
            log.info("routine %s: crontab entry removed", jid)
        except CronUnavailableError as error:
            log.warning("routine %s: crontab entry not removed: %s", jid, error)
        for path in (job_file(jid, home), job_options_file(jid, home)):
            if path.exists():
                path.unlink()
                log.info("routine %s: removed %s", jid, path)


def _cells(row: Mapping[str, Any] | pd.DataFrame | None) -> dict[str, str]:
    if row is None:
        return {"tile": DEFAULT_TEMPLATE_TILE}
    if isinstance(row, pd.DataFrame):
        if len(row) != 1:
            raise RoutineConfigError("task_add", [Problem("row", "row", f"{len(row)} rows given, one expected")])
        row = row.iloc[0].to_dict()
    return {str(column): cfg_format.cell_text(value) for column, value in row.items()
            if not (isinstance(value, float) and math.isnan(value))}  # NaN: a cell the DataFrame left empty


class Job:
    """One routine: global settings (attributes) and a task table, stored in ``job_<jid>.cfg``.

    Parameters
    ----------
    jid
        Routine id: letters, digits, ``-`` and ``_`` (``../x``, paths and empty ids raise
        :class:`~gmsdask.jobs.validation.RoutineIdError`).
    home
        The gmsdask home folder (default ``$GMSDASK_HOME`` or ``~/gmsdask_data``).
    crontab
        A crontab file instead of the user's crontab.

    Raises
    ------
    RoutineConfigError
        When the existing file holds invalid values (every one listed with its line number).
    """

    def __init__(self, jid: str, home: str | Path | None = None, crontab: str | Path | None = None) -> None:
        self.jid = validate_job_id(jid)
        self.home = Path(home).resolve() if home else gmsdask_home()
        self.config_file = job_file(self.jid, self.home)
        self._cron = RoutineCron(crontab)
        if self.config_file.is_file():
            self._routine = cfg_format.read_routine(self.config_file.read_text(), str(self.config_file))
        else:
            self._routine = cfg_format.new_routine()

    # --- global parameters ---------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name in _SETTINGS:
            return getattr(self.__dict__["_routine"].settings, name)
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _SETTINGS:
            super().__setattr__(name, value)
            return
        key = "copy_L2A_sideproducts" if name == "copy_l2a_sideproducts" else name
        try:
            parsed = cfg_format.parse_global(key, cfg_format.cell_text(value))
        except InvalidValue as error:
            raise RoutineConfigError(f"routine {self.jid}", [Problem("setting", key, str(error))]) from None
        self._routine = replace(self._routine, settings=replace(self._routine.settings, **{name: parsed}))

    @property
    def routine(self) -> RoutineFile:
        """The typed routine (settings and tasks)."""
        return self._routine

    @property
    def settings(self) -> JobSettings:
        """The typed global parameters."""
        return self._routine.settings

    # --- tasks ------------------------------------------------------------------------------------------
    @property
    def task_list(self) -> list[Task]:
        """The typed tasks, in table order (task id = position)."""
        return list(self._routine.tasks)

    @property
    def tasks(self) -> pd.DataFrame:
        """The task table as Sen2Chain shows it (one text cell per column, as it will be written)."""
        columns = cfg_format.table_columns(self._routine)
        rows = [[cfg_format.task_cell(c, task) for c in columns] for task in self._routine.tasks]
        return pd.DataFrame(rows, columns=columns)

    def _parsed(self, cells: Mapping[str, str], where: str) -> Task:
        task, problems = cfg_format.task_from_cells(cells, where)
        if task is None:
            raise RoutineConfigError(f"routine {self.jid}", problems)
        return task

    def _check_columns(self, cells: Mapping[str, str], task_id: int) -> None:
        unknown = sorted(set(cells) - set(cfg_format.CELL_PARSERS) - {"tile", "active"})
        if unknown:
            raise RoutineConfigError(f"routine {self.jid}", [Problem(f"task {task_id}", name, "unknown column")
                                                            for name in unknown])

    def task_add(self, row: Mapping[str, Any] | pd.DataFrame | None = None) -> int:
        """Append a task (a dict or one-row DataFrame of column -> value; missing columns get their defaults).

        Without ``row``, Sen2Chain's template task (tile 40KCB) is added. Returns the new task id.
        """
        tasks = self.task_list
        cells = _cells(row)
        self._check_columns(cells, len(tasks))
        if "active" in cells:
            active = parse_bool(cells.pop("active"))
            cells["tile"] = ("" if active else "!") + cells.get("tile", "").lstrip("!").strip()
        tasks.append(self._parsed(cells, f"task {len(tasks)}"))
        self._routine = cfg_format.with_tasks(self._routine, tasks)
        return len(tasks) - 1

    def task_edit(self, task_id: int, **fields: Any) -> None:
        """Change columns of task ``task_id`` (``remove=["l1c-new", "l2a-all-cc80"]``, ``active=False`` ...)."""
        tasks = self.task_list
        if not 0 <= task_id < len(tasks):
            raise RoutineConfigError(f"routine {self.jid}", [Problem(f"task {task_id}", "task_id",
                                                                     f"no such task (0..{len(tasks) - 1})")])
        old = tasks[task_id]
        columns = cfg_format.table_columns(self._routine)
        cells = {column: cfg_format.task_cell(column, old) for column in columns}
        active = bool(fields.pop("active", old.active))
        changed = {str(k): cfg_format.cell_text(value) for k, value in fields.items()}
        self._check_columns(changed, task_id)
        cells.update(changed)
        cells["tile"] = ("" if active else "!") + cells["tile"].lstrip("!").strip()
        tasks[task_id] = self._parsed(cells, f"task {task_id}")
        self._routine = cfg_format.with_tasks(self._routine, tasks)

    def task_remove(self, task_id: int) -> None:
        """Delete task ``task_id`` (the following tasks move up by one)."""
        tasks = self.task_list
        if not 0 <= task_id < len(tasks):
            raise RoutineConfigError(f"routine {self.jid}", [Problem(f"task {task_id}", "task_id", "no such task")])
        del tasks[task_id]
        self._routine = cfg_format.with_tasks(self._routine, tasks)

    # --- file -------------------------------------------------------------------------------------------
    def save(self) -> Path:
        """Write ``job_<jid>.cfg`` (atomically) and return its path."""
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.config_file.with_suffix(".cfg.tmp")
        partial.write_text(cfg_format.write_routine(self._routine))
        os.replace(partial, self.config_file)
        log.info("routine %s: saved %s", self.jid, self.config_file)
        return self.config_file

    # --- run --------------------------------------------------------------------------------------------
    def run(self, clean_before: bool = False, clean_after: bool = False, **options: Any):
        """Run every active task (see :func:`gmsdask.jobs.runner.run_routine` for ``options``).

        ``clean_before``/``clean_after`` add to the job's own settings of the same name. Returns the
        :class:`~gmsdask.jobs.runner.RunReport` (tasks' outcomes and the catalogue job ids created).
        """
        from .runner import run_routine

        return run_routine(self.jid, self._routine, home=self.home, clean_before=clean_before,
                           clean_after=clean_after, **options)

    # --- cron -------------------------------------------------------------------------------------------
    def cron_enable(self) -> None:
        """Save, then add (or update and enable) the crontab entry running this routine at ``timing``."""
        self.save()
        self._cron.enable(self.jid, self.timing, self.home)

    def cron_disable(self) -> None:
        """Comment the crontab entry out."""
        self._cron.disable(self.jid)

    def cron_remove(self) -> None:
        """Delete the crontab entry."""
        self._cron.remove(self.jid)

    @property
    def cron_status(self) -> str:
        """``absent``, ``enabled`` or ``disabled``."""
        return self._cron.status(self.jid)[0]

    @property
    def cron_timing(self) -> str | None:
        """The timing of the crontab entry, or None when absent."""
        return self._cron.status(self.jid)[1]

    def __repr__(self) -> str:
        settings = ", ".join(f"{name}={getattr(self.settings, name)!r}" for name in _SETTINGS)
        return f"Job({self.jid!r}: {settings})\n{self.tasks.to_string()}"

