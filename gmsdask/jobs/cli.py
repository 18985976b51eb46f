"""``gmsdask routine ...``: Sen2Chain jobs (routines) from the command line (a typer sub-app).

Mounted by the main CLI with ``app.add_typer(routine_app, name="routine")``. Routines live in
``$GMSDASK_HOME/config/jobs`` (default ``~/gmsdask_data``); ``--tabfile`` (or ``GMSDASK_CRONTAB``) edits a
crontab file instead of the user's crontab.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import GmsdaskError
from ..terminal import console
from . import cfg_format
from .api import Job, Jobs
from .home import gmsdask_home, job_file
from .validation import RoutineIdError

__all__ = ["routine_app"]

routine_app = typer.Typer(help="Routines: Sen2Chain jobs (task tables per tile, cron) on gmsdask.",
                          no_args_is_help=True)
task_app = typer.Typer(help="Add, edit or remove tasks of a routine.", no_args_is_help=True)
cron_app = typer.Typer(help="Run a routine from cron: enable, disable, remove its crontab entry.",
                       no_args_is_help=True)
routine_app.add_typer(task_app, name="task")
routine_app.add_typer(cron_app, name="cron")

Jid = Annotated[str, typer.Argument(help="Routine id (letters, digits, '-' and '_').")]
TaskId = Annotated[int, typer.Argument(help="Task id (its line in the table, from 0).")]
Tabfile = Annotated[Path | None, typer.Option("--tabfile", help="Crontab file to edit instead of the user's.")]


def _fail(error: Exception) -> None:
    console().print(f"[red]error:[/red] {error}", highlight=False)
    raise typer.Exit(code=2)


def _print_frame(frame: Any, title: str) -> None:
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(str(column))
    for row in frame.itertuples(index=False):
        table.add_row(*["" if value is None else str(value) for value in row])
    console().print(table)


def _existing(jid: str, tabfile: Path | None = None) -> Job:
    if not job_file(jid).is_file():
        raise GmsdaskError(f"routine {jid!r}: no {job_file(jid)}")
    return Job(jid, crontab=tabfile)


def _fields(**options: Any) -> dict[str, Any]:
    return {name: value for name, value in options.items() if value is not None}


@routine_app.command("list")
def list_routines(tabfile: Tabfile = None) -> None:
    """List the routines with their timing and crontab state."""
    _print_frame(Jobs(crontab=tabfile), f"routines in {gmsdask_home()}")


@routine_app.command("show")
def show(jid: Jid, tabfile: Tabfile = None) -> None:
    """Show a routine's global parameters and task table."""
    try:
        job = _existing(jid, tabfile)
    except GmsdaskError as error:
        _fail(error)
    for name, value in vars(job.settings).items():
        if name != "extra":
            console().print(f"{name} = {value}", highlight=False)
    console().print(f"cron: {job.cron_status} {job.cron_timing or ''}", highlight=False)
    _print_frame(job.tasks, f"routine {jid}: tasks")


@routine_app.command("create")
def create(jid: Jid,
           timing: Annotated[str | None, typer.Option(help="Cron expression, e.g. '0 20 * * *'.")] = None,
           logs: Annotated[bool | None, typer.Option("--logs/--no-logs", help="One log file per run.")] = None,
           nb_proc: Annotated[int | None, typer.Option(help="Dask workers of the runs.")] = None,
           provider: Annotated[str | None, typer.Option(help="Default provider of the tasks.")] = None) -> None:
    """Create a routine file (with no task yet)."""
    try:
        if job_file(jid).exists():
            raise GmsdaskError(f"routine {jid!r} exists already: {job_file(jid)}")
        job = Job(jid)
        for name, value in _fields(timing=timing, logs=logs, nb_proc=nb_proc, provider=provider).items():
            setattr(job, name, value)
        console().print(f"created {job.save()}", highlight=False)
    except GmsdaskError as error:
        _fail(error)


def _task_options(tile, date_min, date_max, max_clouds, provider, filter_max_pb, pb_min, pb_max, download,
                  compute_l2a, cloudmasks, indices, remove, comments, active) -> dict[str, Any]:
    return _fields(tile=tile, date_min=date_min, date_max=date_max, max_clouds=max_clouds, provider=provider,
                   filter_max_pb=filter_max_pb, pb_min=pb_min, pb_max=pb_max, download=download,
                   compute_l2a=compute_l2a, cloudmasks=cloudmasks, indices=indices, remove=remove,
                   comments=comments, active=active)


TileOpt = Annotated[str | None, typer.Option(help="MGRS tile, e.g. 29UNU.")]
DateMin = Annotated[str | None, typer.Option(help="YYYY-MM-DD or today-xx (empty: 2015-01-01).")]
DateMax = Annotated[str | None, typer.Option(help="YYYY-MM-DD or today (empty: open).")]
MaxClouds = Annotated[float | None, typer.Option(help="Maximum cloud cover, percent (default 100).")]
ProviderOpt = Annotated[str | None, typer.Option(help="local, stac name, cop_dataspace, peps.")]
FilterPb = Annotated[bool | None, typer.Option("--filter-max-pb/--no-filter-max-pb",
                                                  help="Only the highest processing baseline.")]
PbMin = Annotated[float | None, typer.Option(help="Lowest processing baseline (default 0).")]
PbMax = Annotated[float | None, typer.Option(help="Highest processing baseline (default 98).")]
Download = Annotated[str | None, typer.Option(help="l1c, l2a or False.")]
ComputeL2a = Annotated[bool | None, typer.Option("--compute-l2a/--no-compute-l2a",
                                                    help="Take Level-1 inputs through gmsdask's chain.")]
Cloudmasks = Annotated[str | None, typer.Option(help="e.g. CM001/CM004-CSH1-CMP1-CHP1-TCI1-ITER0.")]
Indices = Annotated[str | None, typer.Option(help="All or e.g. NDVI/MNDWI.")]
Remove = Annotated[str | None, typer.Option(help="e.g. l1c-new-cc80/l2a-all.")]
Comments = Annotated[str | None, typer.Option(help="Free text.")]
Active = Annotated[bool | None, typer.Option("--active/--inactive", help="'!' comments the task out.")]


@task_app.command("add")
def task_add(jid: Jid, tile: TileOpt = None, date_min: DateMin = None, date_max: DateMax = None,
             max_clouds: MaxClouds = None, provider: ProviderOpt = None, filter_max_pb: FilterPb = None,
             pb_min: PbMin = None, pb_max: PbMax = None, download: Download = None, compute_l2a: ComputeL2a = None,
             cloudmasks: Cloudmasks = None, indices: Indices = None, remove: Remove = None,
             comments: Comments = None, active: Active = None) -> None:
    """Add a task (missing columns get their defaults) and save."""
    try:
        job = _existing(jid)
        fields = _task_options(tile, date_min, date_max, max_clouds, provider, filter_max_pb, pb_min, pb_max,
                               download, compute_l2a, cloudmasks, indices, remove, comments, active)
        task_id = job.task_add(fields or None)
        job.save()
    except GmsdaskError as error:
        _fail(error)
    console().print(f"routine {jid}: task {task_id} added", highlight=False)


@task_app.command("edit")
def task_edit(jid: Jid, task_id: TaskId, tile: TileOpt = None, date_min: DateMin = None, date_max: DateMax = None,
              max_clouds: MaxClouds = None, provider: ProviderOpt = None, filter_max_pb: FilterPb = None,
              pb_min: PbMin = None, pb_max: PbMax = None, download: Download = None,
              compute_l2a: ComputeL2a = None, cloudmasks: Cloudmasks = None, indices: Indices = None,
              remove: Remove = None, comments: Comments = None, active: Active = None) -> None:
    """Change columns of a task and save."""
    try:
        job = _existing(jid)
        job.task_edit(task_id, **_task_options(tile, date_min, date_max, max_clouds, provider, filter_max_pb,
                                               pb_min, pb_max, download, compute_l2a, cloudmasks, indices, remove,
                                               comments, active))
        job.save()
    except GmsdaskError as error:
        _fail(error)
    console().print(f"routine {jid}: task {task_id} edited", highlight=False)


@task_app.command("remove")
def task_remove(jid: Jid, task_id: TaskId) -> None:
    """Delete a task and save."""
    try:
        job = _existing(jid)
        job.task_remove(task_id)
        job.save()
    except GmsdaskError as error:
        _fail(error)
    console().print(f"routine {jid}: task {task_id} removed", highlight=False)


@routine_app.command("run")
def run(jid: Jid,
        clean_before: Annotated[bool, typer.Option(help="Clean the tasks' tiles first.")] = False,
        clean_after: Annotated[bool, typer.Option(help="Clean the tasks' tiles at the end.")] = False) -> None:
    """Run a routine's active tasks; print each task's outcome and the catalogue jobs created."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = _existing(jid).run(clean_before=clean_before, clean_after=clean_after)
    except GmsdaskError as error:
        _fail(error)
    table = Table(title=f"routine {jid}: catalogue jobs {', '.join(map(str, report.catalog_job_ids)) or 'none'}")
    for column in ("task", "tile", "status", "found", "processed", "already", "catalogue job", "removed", "errors"):
        table.add_column(column)
    for t in report.tasks:
        table.add_row(str(t.task_id), t.tile, t.status, str(len(t.found)), str(len(t.processed)),
                      str(len(t.already_processed)), "" if t.catalog_job_id is None else str(t.catalog_job_id),
                      str(len(t.removed)), "\n".join(t.errors))
    console().print(table)
    if report.log_file:
        console().print(f"log: {report.log_file}", highlight=False)
    if not report.ok:
        raise typer.Exit(code=1)


@cron_app.command("enable")
def cron_enable(jid: Jid, tabfile: Tabfile = None) -> None:
    """Add (or update) the crontab entry running the routine at its timing."""
    try:
        job = _existing(jid, tabfile)
        job.cron_enable()
    except GmsdaskError as error:
        _fail(error)
    console().print(f"routine {jid}: cron {job.cron_status} ({job.cron_timing})", highlight=False)


@cron_app.command("disable")
def cron_disable(jid: Jid, tabfile: Tabfile = None) -> None:
    """Comment the routine's crontab entry out."""
    try:
        job = _existing(jid, tabfile)
        job.cron_disable()
    except GmsdaskError as error:
        _fail(error)
    console().print(f"routine {jid}: cron {job.cron_status}", highlight=False)


@cron_app.command("remove")
def cron_remove(jid: Jid, tabfile: Tabfile = None) -> None:
    """Delete the routine's crontab entry."""
    try:
        Job(jid, crontab=tabfile).cron_remove()
    except GmsdaskError as error:
        _fail(error)
    console().print(f"routine {jid}: cron entry removed", highlight=False)


@routine_app.command("import")
def import_cfg(path: Annotated[Path, typer.Argument(help="A Sen2Chain job_<jid>.cfg.", exists=True, dir_okay=False)],
               jid: Annotated[str | None, typer.Option(help="Routine id (default: from job_<jid>.cfg).")] = None,
               force: Annotated[bool, typer.Option(help="Replace an existing routine.")] = False) -> None:
    """Import a Sen2Chain job file unchanged, after checking every value."""
    try:
        name = jid or path.stem.removeprefix("job_")
        target = job_file(name)
        text = path.read_text()
        routine = cfg_format.read_routine(text, str(path))
        if target.exists() and not force:
            raise GmsdaskError(f"routine {name!r} exists already: {target} (use --force)")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    except (GmsdaskError, RoutineIdError, OSError) as error:
        _fail(error)
    console().print(f"imported {path} as routine {name} ({len(routine.tasks)} task(s)): {target}", highlight=False)
