"""The ``gmsdask`` command: demo, archive, job, run, status."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from .catalog import Catalog
from .config import LEVELS, JobConfig, set_config
from .errors import GmsdaskError

app = typer.Typer(help="gmsdask: analysis-ready Landsat and Sentinel-2 datacubes on Dask.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
archive_app = typer.Typer(help="Register products in the catalogue.", no_args_is_help=True)
job_app = typer.Typer(help="Create jobs.", no_args_is_help=True)
app.add_typer(archive_app, name="archive")
app.add_typer(job_app, name="job")
console = Console()

ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="JSON or TOML configuration file.")]
DbOption = Annotated[Optional[str], typer.Option("--db-url", help="Catalogue URL (default: from the config).")]


def _config(config: Path | None, **overrides: object) -> JobConfig:
    options = {k: v for k, v in overrides.items() if v is not None}
    return set_config(json_config=str(config) if config else "", **options)


def _configure_logging() -> None:
    """Warnings and the job's own messages on the terminal; Dask's INFO chatter only in its own logs."""
    import distributed  # noqa: F401  (configures its loggers on import; quieten them afterwards)

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    noisy = ("distributed", "bokeh", "tornado")
    for name in [*noisy, *logging.root.manager.loggerDict]:
        if name.startswith(noisy):
            logging.getLogger(name).setLevel(logging.WARNING)


def _fail(error: Exception) -> None:
    console.print(f"[red]error:[/red] {error}")
    raise typer.Exit(code=2)


@archive_app.command("add")
def archive_add(paths: Annotated[list[Path], typer.Argument(help="Products or folders to scan.")],
                config: ConfigOption = None, db_url: DbOption = None) -> None:
    """Catalogue products (directories, .tar/.tar.gz/.zip archives, .SAFE folders, or folders of them)."""
    try:
        cfg = _config(config, db_url=db_url)
        scene_ids = Catalog.from_config(cfg).add_products(paths)
    except GmsdaskError as error:
        _fail(error)
    console.print(f"catalogued {len(scene_ids)} scene(s): {', '.join(map(str, scene_ids))}")


@job_app.command("create")
def job_create(
    scene_id: Annotated[Optional[list[int]], typer.Option("--scene-id", help="Scene ids (repeatable).")] = None,
    product: Annotated[Optional[list[Path]], typer.Option("--product", help="Product paths (catalogued first).")] = None,
    tile: Annotated[Optional[str], typer.Option(help="Select scenes touching this MGRS tile, e.g. 33UUU.")] = None,
    start: Annotated[Optional[datetime], typer.Option(help="First acquisition date.")] = None,
    end: Annotated[Optional[datetime], typer.Option(help="Last acquisition date.")] = None,
    max_cloud: Annotated[Optional[float], typer.Option(help="Maximum cloud cover, percent.")] = None,
    comment: Annotated[str, typer.Option(help="Free comment.")] = "",
    config: ConfigOption = None, db_url: DbOption = None,
) -> None:
    """Create a job from scene ids, product paths, or a filter (tile, dates, max cloud cover)."""
    try:
        cfg = _config(config, db_url=db_url)
        catalog = Catalog.from_config(cfg)
        ids = list(scene_id or []) + (catalog.add_products(product) if product else [])
        if tile or start or end or max_cloud is not None or not ids:
            selected = catalog.scenes(tile=tile, start=start, end=end, max_cloud=max_cloud)
            ids += [s.id for s in selected if s.id not in ids]
        if not ids:
            _fail(GmsdaskError("no scenes match; catalogue products first with `gmsdask archive add`"))
        job_id = catalog.create_job(ids, cfg, comment=comment)
    except GmsdaskError as error:
        _fail(error)
    console.print(f"created job {job_id} with {len(ids)} scene(s)")


@app.command()
def run(job_id: Annotated[int, typer.Argument(help="The job to run.")],
        level: Annotated[str, typer.Option(help="Run up to this level.")] = "L2C",
        cpus: Annotated[Optional[int], typer.Option("--cpus", help="LocalCluster workers.")] = None,
        scheduler_address: Annotated[Optional[str], typer.Option(help="Dask scheduler to use.")] = None,
        config: ConfigOption = None, db_url: DbOption = None) -> None:
    """Run a job on a Dask cluster and print its summary."""
    from .controller import ProcessController

    _configure_logging()
    overrides = {k: v for k, v in {"CPUs": cpus, "scheduler_address": scheduler_address, "db_url": db_url}.items()
                 if v is not None}
    if level not in LEVELS:
        _fail(GmsdaskError(f"--level {level!r}: allowed levels are {', '.join(LEVELS)}"))
    try:
        controller = ProcessController(job_id, json_config=str(config) if config else "", **overrides)
        getattr(controller, f"run_{level}_processing")()
    except GmsdaskError as error:
        _fail(error)
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
    console.print(table)
    for tile in controller.catalog.tiles_written(record.id):
        console.print(f"  cube {tile.tile}: {tile.path}")


@app.command()
def status(job_id: Annotated[int, typer.Argument(help="The job.")], config: ConfigOption = None,
           db_url: DbOption = None) -> None:
    """Show a job's status, statistics per level, and failures."""
    try:
        catalog = Catalog.from_config(_config(config, db_url=db_url))
        record = catalog.job(job_id)
    except GmsdaskError as error:
        _fail(error)
    console.print(f"job {record.id}: [bold]{record.status}[/bold], {len(record.scene_ids)} scene(s), "
                  f"created {record.creation_time:%Y-%m-%d %H:%M}, comment {record.comment!r}")
    table = Table("level", "done", "skipped", "failed")
    for level, counts in record.statistics.items():
        table.add_row(level, *(str(counts.get(k, 0)) for k in ("done", "skipped", "failed")))
    console.print(table)
    for failure in catalog.failures(job_id):
        console.print(f"[red]{failure.product_id}[/red] failed at {failure.level}: "
                      f"{failure.error_type}: {failure.error_message}")


@app.command()
def demo(workdir: Annotated[Path, typer.Option(help="Where the sample data and outputs go.")] = Path("demo_output"),
         cpus: Annotated[int, typer.Option("--cpus", help="LocalCluster workers.")] = 2) -> None:
    """Write a synthetic Landsat-9 and an overlapping Sentinel-2 scene, run the job, show the cubes."""
    from .demo import run_demo

    _configure_logging()
    try:
        run_demo(workdir, cpus=cpus, console=console)
    except GmsdaskError as error:
        _fail(error)


if __name__ == "__main__":
    app()
