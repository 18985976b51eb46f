"""``gmsdask run`` and ``gmsdask demo``: processing from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..errors import GmsdaskError
from ..levels import default_registry
from .common import ConfigOption, DbOption, configure_logging, console, fail

__all__ = ["run", "demo"]


def _levels_help() -> str:
    registry = default_registry()
    return "Run up to this level: " + "; ".join(f"{level.name} = {level.title}" for level in registry) + "."


def run(job_id: Annotated[int, typer.Argument(help="The job to run.")],
        level: Annotated[Optional[str], typer.Option(help=_levels_help())] = None,
        cpus: Annotated[Optional[int], typer.Option("--cpus", help="LocalCluster workers.")] = None,
        scheduler_address: Annotated[Optional[str], typer.Option(help="Dask scheduler to use.")] = None,
        config: ConfigOption = None, db_url: DbOption = None) -> None:
    """Run a job on a Dask cluster and print its summary."""
    from ..controller import ProcessController

    configure_logging()
    overrides = {k: v for k, v in {"CPUs": cpus, "scheduler_address": scheduler_address, "db_url": db_url}.items()
                 if v is not None}
    registry = default_registry()
    target = level or registry.names[-1]
    if target not in registry:
        fail(f"--level {target!r}: allowed levels are {', '.join(registry.names)}")
    try:
        controller = ProcessController(job_id, registry=registry, json_config=str(config) if config else "",
                                       **overrides)
        controller.run_level(target)
    except GmsdaskError as error:
        fail(error)
    _print_summary(controller)
    controller.shutdown()


def _print_summary(controller) -> None:  # noqa: ANN001
    record = controller.DB_job_record
    table = Table(title=f"job {record.id}: {record.status}")
    summary = controller.summary
    for column in summary.columns:
        table.add_column(str(column))
    for row in summary.itertuples(index=False):
        table.add_row(*[str(value) for value in row])
    console().print(table)
    for tile in controller.catalog.tiles_written(record.id):
        console().print(f"  cube {tile.tile}: {tile.path}")


def demo(workdir: Annotated[Path, typer.Option(help="Where the sample data and outputs go (a new or empty folder, "
                                                    "or a previous demo's output, which is replaced).")]
         = Path("demo_output"),
         cpus: Annotated[int, typer.Option("--cpus", help="LocalCluster workers.")] = 2) -> None:
    """Write a synthetic Landsat-9 and an overlapping Sentinel-2 scene, run the job, show the cubes."""
    from ..demo import run_demo

    configure_logging()
    try:
        run_demo(workdir, cpus=cpus, console=console())
    except GmsdaskError as error:
        fail(error)
