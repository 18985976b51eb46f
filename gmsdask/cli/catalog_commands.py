"""``gmsdask archive ...``, ``gmsdask job ...`` and ``gmsdask status``: the catalogue from the command line."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..catalog import Catalog, find_products, is_product_name
from ..errors import GmsdaskError
from .common import ConfigOption, DbOption, console, fail, job_config

__all__ = ["archive_app", "job_app", "status"]

archive_app = typer.Typer(help="Register products in the catalogue and list them.", no_args_is_help=True)
job_app = typer.Typer(help="Create and list jobs.", no_args_is_help=True)

def _products_in(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """The products named by ``paths`` (folders are searched) and what was skipped, with the reason."""
    products: list[Path] = []
    skipped: list[str] = []
    for path in paths:
        if not path.exists():
            skipped.append(f"{path}: no such file or folder")
        elif path.is_dir() and not is_product_name(path):
            found = find_products(path)
            products += found
            if not found:
                skipped.append(f"{path}: no Landsat or Sentinel-2 product found in this folder")
        elif is_product_name(path):
            products.append(path)
        else:
            skipped.append(f"{path}: not named like a Landsat or Sentinel-2 product")
    return products, skipped


@archive_app.command("add")
def archive_add(paths: Annotated[Optional[list[Path]], typer.Argument(
                    help="Products or folders to scan (default: the configured path_archive).")] = None,
                config: ConfigOption = None, db_url: DbOption = None) -> None:
    """Catalogue products (directories, .tar/.tar.gz/.zip archives, .SAFE folders, or folders of them)."""
    try:
        cfg = job_config(config, db_url=db_url)
        targets = list(paths) if paths else [Path(cfg.path_archive)]
        products, skipped = _products_in(targets)
        for line in skipped:
            console().print(f"[yellow]skipped[/yellow] {line}")
        if not products:
            fail(f"no products found in {', '.join(map(str, targets))}", code=1)
        catalog = Catalog.from_config(cfg)
        scene_ids, failed = [], []
        for product in products:
            try:
                scene_ids += [i for i in catalog.add_products([product]) if i not in scene_ids]
            except GmsdaskError as error:
                failed.append(f"{product}: {error}")
    except GmsdaskError as error:
        fail(error)
    for line in failed:
        console().print(f"[red]not catalogued[/red] {line}")
    console().print(f"catalogued {len(scene_ids)} scene(s): {', '.join(map(str, scene_ids)) or '-'}")
    if failed:
        raise typer.Exit(code=1)


@archive_app.command("list")
def archive_list(tile: Annotated[Optional[str], typer.Option(help="Only scenes touching this MGRS tile.")] = None,
                 config: ConfigOption = None, db_url: DbOption = None) -> None:
    """List the catalogued scenes."""
    try:
        scenes = _read_catalog(config, db_url).scenes(tile=tile)
    except GmsdaskError as error:
        fail(error)
    table = Table("id", "product", "platform", "acquired", "cloud %", "tiles")
    for scene in scenes:
        table.add_row(str(scene.id), scene.product_id, scene.platform, f"{scene.acquisition_time:%Y-%m-%d %H:%M}",
                      "-" if scene.cloud_cover_pct is None else f"{scene.cloud_cover_pct:.1f}",
                      " ".join(scene.mgrs_tiles))
    console().print(table)


def _read_catalog(config: Path | None, db_url: str | None) -> Catalog:
    """The configured catalogue for a command that only reads: it must exist already."""
    cfg = job_config(config, db_url=db_url)
    return Catalog(cfg.db_url, create=False)


def _narrowest_filter(catalog: Catalog, filters: dict[str, object]) -> str:
    """Which filter leaves no scene on its own (or that only their combination does)."""
    if not catalog.scenes():
        return "the catalogue holds no scenes; catalogue products first with `gmsdask archive add`"
    for name, value in filters.items():
        if value is not None and not catalog.scenes(**{name: value}):
            return f"no catalogued scene matches --{name.replace('_', '-')} {value}"
    given = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in filters.items() if v is not None)
    return f"each filter matches scenes, but no scene matches all of them together ({given})"


@job_app.command("create")
def job_create(
    scene_id: Annotated[Optional[list[int]], typer.Option("--scene-id", help="Scene ids (repeatable).")] = None,
    product: Annotated[Optional[list[Path]], typer.Option("--product", help="Product paths (catalogued first).")] = None,
    tile: Annotated[Optional[str], typer.Option(help="Select scenes touching this MGRS tile, e.g. 33UUU.")] = None,
    start: Annotated[Optional[datetime], typer.Option(formats=["%Y-%m-%d"],
                                                      help="First acquisition day (YYYY-MM-DD).")] = None,
    end: Annotated[Optional[datetime], typer.Option(formats=["%Y-%m-%d"],
                                                    help="Last acquisition day, included (YYYY-MM-DD).")] = None,
    max_cloud: Annotated[Optional[float], typer.Option(help="Maximum cloud cover, percent (0-100).")] = None,
    comment: Annotated[str, typer.Option(help="Free comment.")] = "",
    config: ConfigOption = None, db_url: DbOption = None,
) -> None:
    """Create a job from scene ids, product paths, or a filter (tile, dates, max cloud cover)."""
    if start and end and end < start:
        fail(f"--end {end:%Y-%m-%d} is before --start {start:%Y-%m-%d}")
    if max_cloud is not None and not 0 <= max_cloud <= 100:
        fail(f"--max-cloud {max_cloud:g} is not a percentage between 0 and 100")
    try:
        cfg = job_config(config, db_url=db_url)
        catalog = Catalog.from_config(cfg)
        ids = list(scene_id or []) + (catalog.add_products(product) if product else [])
        filters = {"tile": tile, "start": start.date() if start else None, "end": end.date() if end else None,
                   "max_cloud": max_cloud}
        if any(v is not None for v in filters.values()) or not ids:
            selected = catalog.scenes(**filters)
            if not selected:
                fail(f"no scenes match: {_narrowest_filter(catalog, filters)}", code=1)
            ids += [s.id for s in selected if s.id not in ids]
        job_id = catalog.create_job(ids, cfg, comment=comment)
    except GmsdaskError as error:
        fail(error)
    console().print(f"created job {job_id} with {len(ids)} scene(s)")


@job_app.command("list")
def job_list(config: ConfigOption = None, db_url: DbOption = None) -> None:
    """List the jobs of the catalogue with their status."""
    try:
        catalog = _read_catalog(config, db_url)
        jobs = catalog.jobs()
    except GmsdaskError as error:
        fail(error)
    table = Table("id", "status", "scenes", "created", "comment")
    for job in jobs:
        table.add_row(str(job.id), _job_status(catalog, job), str(len(job.scene_ids)),
                      f"{job.creation_time:%Y-%m-%d %H:%M}", job.comment)
    console().print(table)


def _job_status(catalog: Catalog, job) -> str:  # noqa: ANN001
    """The job's status; ``running`` only while its controller is alive, else ``interrupted (why)``."""
    liveness = catalog.job_liveness(job.id)
    return f"{liveness.status} ({liveness.reason})" if liveness.interrupted else liveness.status


def status(job_id: Annotated[int, typer.Argument(help="The job.")], config: ConfigOption = None,
           db_url: DbOption = None) -> None:
    """Show a job's status, live statistics per level, and failures."""
    try:
        catalog = _read_catalog(config, db_url)
        record = catalog.job(job_id)
        statistics = record.statistics  # counted from the level states when read: live while a job runs
    except GmsdaskError as error:
        fail(error)
    console().print(f"job {record.id}: [bold]{_job_status(catalog, record)}[/bold], {len(record.scene_ids)} "
                    f"scene(s), created {record.creation_time:%Y-%m-%d %H:%M}, comment {record.comment!r}")
    keys = sorted({k for counts in statistics.values() for k in counts} | {"done", "skipped", "failed"})
    table = Table("level", *keys)
    for level, counts in statistics.items():
        table.add_row(level, *(str(counts.get(k, 0)) for k in keys))
    console().print(table)
    for failure in catalog.failures(job_id):
        console().print(f"[red]{failure.product_id}[/red] failed at {failure.level}: "
                        f"{failure.error_type}: {failure.error_message}")
