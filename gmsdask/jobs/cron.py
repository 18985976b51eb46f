"""Crontab entries of routines (python-crontab).

One entry per routine runs ``gmsdask routine run <jid>`` at the routine's ``timing``, tagged with the comment
``gmsdask routine <jid>``; disabling comments the entry out, removing deletes it. The crontab is the user's
unless a tab file is given (``RoutineCron(tabfile)`` or the ``GMSDASK_CRONTAB`` environment variable): tests
always use a tab file.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Literal

from crontab import CronItem, CronTab

from ..errors import JobError
from .validation import parse_cron, validate_job_id

__all__ = ["CronStatus", "RoutineCron", "cron_comment"]

#: ``unavailable``: the crontab cannot be read (no ``crontab`` program on this machine, for instance).
CronStatus = Literal["absent", "enabled", "disabled", "unavailable"]


class CronUnavailableError(JobError):
    """The crontab cannot be read or written (the message says why and how to use a tab file instead)."""


def cron_comment(jid: str) -> str:
    """The comment tagging routine ``jid``'s crontab entry."""
    return f"gmsdask routine {validate_job_id(jid)}"


def _gmsdask_command() -> str:
    """The ``gmsdask`` executable of this Python environment (cron has no PATH of ours)."""
    beside = Path(sys.executable).parent / "gmsdask"
    return shlex.quote(str(beside)) if beside.exists() else "gmsdask"


class RoutineCron:
    """Reads and edits the crontab entries of routines.

    Parameters
    ----------
    tabfile
        A crontab file to edit instead of the user's crontab (created if missing). Default: the
        ``GMSDASK_CRONTAB`` environment variable, else the user's crontab.
    """

    def __init__(self, tabfile: str | Path | None = None) -> None:
        chosen = tabfile if tabfile is not None else os.environ.get("GMSDASK_CRONTAB") or None
        self.tabfile: Path | None = Path(chosen) if chosen is not None else None

    def _open(self) -> CronTab:
        try:
            if self.tabfile is None:
                return CronTab(user=True)
            self.tabfile.parent.mkdir(parents=True, exist_ok=True)
            self.tabfile.touch(exist_ok=True)
            return CronTab(tabfile=str(self.tabfile))
        except OSError as error:
            where = self.tabfile or "the user's crontab"
            raise CronUnavailableError(f"cannot read {where}: {error} (a crontab file can be used instead: "
                                       "RoutineCron(tabfile), --tabfile or GMSDASK_CRONTAB)") from None

    @staticmethod
    def _entries(tab: CronTab, jid: str) -> list[CronItem]:
        return list(tab.find_comment(cron_comment(jid)))

    def enable(self, jid: str, timing: str, home: Path) -> None:
        """Write (or update and re-enable) the entry running routine ``jid`` at ``timing`` with ``home``."""
        timing = parse_cron(timing)
        command = (f"GMSDASK_HOME={shlex.quote(str(home))} {_gmsdask_command()} routine run "
                   f"{validate_job_id(jid)}")
        tab = self._open()
        entries = self._entries(tab, jid)
        entry = entries[0] if entries else tab.new(command=command, comment=cron_comment(jid))
        for duplicate in entries[1:]:
            tab.remove(duplicate)
        entry.set_command(command)
        entry.setall(timing)
        entry.enable(True)
        tab.write()

    def disable(self, jid: str) -> None:
        """Comment routine ``jid``'s entry out (nothing happens if it is absent)."""
        tab = self._open()
        for entry in self._entries(tab, jid):
            entry.enable(False)
        tab.write()

    def remove(self, jid: str) -> None:
        """Delete routine ``jid``'s entry (nothing happens if it is absent)."""
        tab = self._open()
        for entry in self._entries(tab, jid):
            tab.remove(entry)
        tab.write()

    def status(self, jid: str) -> tuple[CronStatus, str | None]:
        """(``absent`` | ``enabled`` | ``disabled`` | ``unavailable``, the entry's timing or None) of ``jid``."""
        try:
            entries = self._entries(self._open(), jid)
        except CronUnavailableError:
            return "unavailable", None
        if not entries:
            return "absent", None
        entry = entries[0]
        return ("enabled" if entry.is_enabled() else "disabled"), entry.slices.clean_render()
