"""Routines: Sen2Chain's jobs (``Jobs``/``Job``, ``job_<jid>.cfg`` task tables per tile, cron) on gmsdask.

Not to be confused with the catalogue's jobs (integer ids, ``ProcessController``): a routine run creates
catalogue jobs and reports their ids. See :mod:`gmsdask.jobs.api` for the Python API and
:mod:`gmsdask.jobs.cli` for ``gmsdask routine ...``.
"""

from .api import Job, Jobs
from .model import DayBound, JobSettings, RemoveItem, RoutineFile, Task
from .validation import INDEX_NAMES, RoutineConfigError, RoutineIdError

__all__ = [
           "INDEX_NAMES",
           "DayBound",
           "Job",
           "JobSettings",
           "Jobs",
           "RemoveItem",
           "RoutineConfigError",
           "RoutineFile",
           "RoutineIdError",
           "Task",
]
