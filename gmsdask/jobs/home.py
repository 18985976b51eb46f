"""Where routines live and which gmsdask options their runs use.

``GMSDASK_HOME`` (environment variable, default ``~/gmsdask_data``) holds everything:
``config/jobs/job_<jid>.cfg`` (Sen2Chain's format), ``config/jobs/job_<jid>.toml`` (that job's gmsdask
options), ``config/gmsdask.toml`` (gmsdask options of every job), ``logs/routine_<jid>/`` (one log per run),
and, unless the options say otherwise, the archive, the catalogue and the cubes. Every path is built from a
validated routine id, so nothing outside the home folder is read or written.

The TOML files hold any option of ``configs/default.toml``, plus an optional ``[routine]`` table for routine
settings that are not gmsdask options (``[routine.providers.<name>]`` provider definitions).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import JobConfig, load_config_file, set_config
from ..errors import ConfigError
from .validation import validate_job_id

__all__ = [
    "RoutineOptions",
    "gmsdask_home",
    "job_file",
    "job_options_file",
    "jobs_folder",
    "load_options",
    "routine_log_folder",
]


def gmsdask_home() -> Path:
    """``$GMSDASK_HOME``, default ``~/gmsdask_data`` (not created here)."""
    return Path(os.environ.get("GMSDASK_HOME") or "~/gmsdask_data").expanduser().resolve()


def jobs_folder(home: Path | None = None) -> Path:
    """``<home>/config/jobs``."""
    return (home or gmsdask_home()) / "config" / "jobs"


def job_file(jid: str, home: Path | None = None) -> Path:
    """``<home>/config/jobs/job_<jid>.cfg`` of a validated routine id."""
    return jobs_folder(home) / f"job_{validate_job_id(jid)}.cfg"


def job_options_file(jid: str, home: Path | None = None) -> Path:
    """``<home>/config/jobs/job_<jid>.toml``: the job's own gmsdask options (optional)."""
    return jobs_folder(home) / f"job_{validate_job_id(jid)}.toml"


def routine_log_folder(jid: str, home: Path | None = None) -> Path:
    """``<home>/logs/routine_<jid>``: one log file per run."""
    return (home or gmsdask_home()) / "logs" / f"routine_{validate_job_id(jid)}"


@dataclass(frozen=True)
class RoutineOptions:
    """The gmsdask configuration of a routine's runs, and its ``[routine]`` settings (provider definitions)."""

    config: JobConfig
    routine: Mapping[str, Any] = field(default_factory=dict)
    home: Path = Path(".")

    @property
    def providers(self) -> Mapping[str, Mapping[str, Any]]:
        """``[routine.providers.<name>]`` tables: name -> settings (``kind``, ``url``, ``collections`` ...)."""
        return dict(self.routine.get("providers", {}))


def _home_defaults(home: Path) -> dict[str, Any]:
    """Paths under the home folder instead of gmsdask's working-directory-relative defaults."""
    return {
        "path_archive": home / "archive",
        "path_procdata_scenes": home / "processed_scenes",
        "path_procdata_MGRS": home / "processed_mgrs_tiles",
        "path_job_logs": home / "logs",
        "db_url": f"sqlite:///{home / 'catalog.sqlite'}",
    }


def _read_toml(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(gmsdask options, ``[routine]`` table) of a TOML file; missing file: both empty."""
    if not path.is_file():
        return {}, {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError("json_config", f"{path}: cannot parse: {error}") from None
    routine = data.pop("routine", {})
    if not isinstance(routine, dict):
        raise ConfigError("routine", f"{path}: [routine] must be a table")
    return load_config_file(json.dumps(data, default=str)) if data else {}, routine


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, Mapping) and isinstance(
            merged.get(key), Mapping) else value
    return merged


def load_options(jid: str, nb_proc: int | None = None, home: Path | None = None) -> RoutineOptions:
    """Options of routine ``jid``: home defaults < ``gmsdask.toml`` < ``job_<jid>.toml`` < ``CPUs = nb_proc``.

    Raises
    ------
    ConfigError
        For an unknown option or invalid value in either file (naming the option).
    """
    home = home or gmsdask_home()
    common, common_routine = _read_toml(home / "config" / "gmsdask.toml")
    own, own_routine = _read_toml(job_options_file(jid, home))
    options = _home_defaults(home) | common | own
    if nb_proc is not None:
        options["CPUs"] = nb_proc
    return RoutineOptions(config=set_config(**options), routine=_merge(common_routine, own_routine), home=home)
