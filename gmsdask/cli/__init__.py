"""The ``gmsdask`` command: demo, archive, job, run, status (and the sub-apps of routines and cubes)."""

from __future__ import annotations

import typer

from ..cube_cli import cube_app
from ..jobs.cli import routine_app
from .catalog_commands import archive_app, job_app, status
from .run_commands import demo, run

__all__ = ["app"]

app = typer.Typer(help="gmsdask: analysis-ready Landsat and Sentinel-2 datacubes on Dask.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(archive_app, name="archive")
app.add_typer(job_app, name="job")
app.add_typer(routine_app, name="routine")
app.add_typer(cube_app, name="cube")
app.command()(run)
app.command()(status)
app.command()(demo)
