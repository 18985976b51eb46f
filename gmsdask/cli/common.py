"""What every ``gmsdask`` command shares: the console, the ``--config``/``--db-url`` options, errors, logging."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer

from ..config import JobConfig, set_config
from ..terminal import console

__all__ = ["console", "ConfigOption", "DbOption", "job_config", "fail", "configure_logging"]


ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="JSON or TOML configuration file.")]
DbOption = Annotated[Optional[str], typer.Option("--db-url", help="Catalogue URL (default: from the config).")]


def job_config(config: Path | None, **overrides: object) -> JobConfig:
    """The configuration from ``--config`` with the options given on the command line on top."""
    options = {k: v for k, v in overrides.items() if v is not None}
    return set_config(json_config=str(config) if config else "", **options)


def configure_logging() -> None:
    """Warnings and the job's own messages on the terminal; Dask's INFO chatter only in its own logs."""
    import distributed  # noqa: F401  (configures its loggers on import; quieten them afterwards)

    from ..io.cube_storage import quiet_handled_icechunk_warnings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_handled_icechunk_warnings()
    noisy = ("distributed", "bokeh", "tornado")
    for name in [*noisy, *logging.root.manager.loggerDict]:
        if name.startswith(noisy):
            logging.getLogger(name).setLevel(logging.WARNING)


def fail(error: Exception | str, code: int = 2) -> NoReturn:
    """Print the error and leave with a non-zero exit code."""
    console().print(f"[red]error:[/red] {error}")
    raise typer.Exit(code=code)
