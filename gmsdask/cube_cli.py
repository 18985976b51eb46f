"""``gmsdask cube``: history, tags, export, compaction and migration of MGRS tile cubes.

A cube is named by its tile (``29UNU``), found at ``<path_procdata_MGRS>/<sensor>/<TILE>.icechunk`` of the
configuration (``--config``; ``--sensor`` defaults to ``virtual_sensor_name``), or given as a path or URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .config import set_config
from .errors import ConfigError, GmsdaskError
from .io.cube import cube_log, tag_cube
from .io.cube_export import compact_cube, export_cube
from .io.cube_migrate import migrate_cube
from .io.cube_storage import cube_location
from .mgrs_grid import normalize_tile
from .terminal import console

cube_app = typer.Typer(help="Inspect, export and maintain MGRS tile cubes.", no_args_is_help=True)

ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="JSON or TOML configuration file.")]
SensorOption = Annotated[Optional[str], typer.Option("--sensor", help="Virtual sensor (default: from the config).")]
TileArgument = Annotated[str, typer.Argument(help="MGRS tile (29UNU), or the cube's path or URL.")]


def _location(tile: str, sensor: str | None, config: Path | None) -> str:
    if "/" in tile or tile.endswith(".icechunk"):
        return tile
    cfg = set_config(json_config=str(config) if config else "")
    return cube_location(cfg.path_procdata_MGRS, sensor or cfg.virtual_sensor_name, normalize_tile(tile))


def _fail(error: Exception) -> None:
    console().print(f"[red]error:[/red] {error}")
    raise typer.Exit(code=2)


@cube_app.command("log")
def log(tile: TileArgument, sensor: SensorOption = None, config: ConfigOption = None) -> None:
    """List the cube's commits, newest first: which job wrote which scene, when."""
    try:
        commits = cube_log(_location(tile, sensor, config))
    except GmsdaskError as error:
        _fail(error)
    table = Table("commit", "written (UTC)", "message")
    for commit in commits:
        table.add_row(commit.id, commit.time.strftime("%Y-%m-%d %H:%M:%S"), commit.message)
    console().print(table)


@cube_app.command("tag")
def tag(tile: TileArgument, name: Annotated[str, typer.Argument(help="The tag.")],
        snapshot: Annotated[Optional[str], typer.Option(help="Commit id (default: the latest).")] = None,
        sensor: SensorOption = None, config: ConfigOption = None) -> None:
    """Tag a commit of the cube, so that it can be opened again by name."""
    try:
        tagged = tag_cube(_location(tile, sensor, config), name, snapshot)
    except GmsdaskError as error:
        _fail(error)
    console().print(f"tagged {tagged} as {name}")


@cube_app.command("export")
def export(tile: TileArgument,
           layout: Annotated[str, typer.Option("--layout", help="hls: the bands etc. per variable and date "
                                                                "(--format); sen2chain: the cloud masks and "
                                                                "indices in Sen2Chain's folders.")] = "hls",
           format: Annotated[str, typer.Option("--format", help="cog (GeoTIFF per band and date) or zarr "
                                                                "(hls layout only).")] = "cog",
           time: Annotated[Optional[str], typer.Option(help="A date or START/END dates.")] = None,
           out: Annotated[Path, typer.Option(help="Output folder.")] = Path("export"),
           sensor: SensorOption = None, config: ConfigOption = None) -> None:
    """Export the cube for GIS tools: Cloud-Optimized GeoTIFFs or a plain Zarr copy (``--layout hls``), or the
    cloud masks and indices as Sen2Chain's INDICES/ and CLOUDMASKS/ GeoTIFFs (``--layout sen2chain``)."""
    try:
        location = _location(tile, sensor, config)
        if layout == "sen2chain":
            from .indices.export import export_sen2chain

            written = export_sen2chain(location, out, time=time)
            console().print(f"{len(written)} files written to {out} (Sen2Chain layout)")
            return
        if layout != "hls":
            raise ConfigError("--layout", f"unknown layout {layout!r}; allowed: hls, sen2chain")
        written = export_cube(location, out, format=format, time=time)
    except GmsdaskError as error:
        _fail(error)
    console().print(f"{len(written)} {'files' if format == 'cog' else 'store'} written to {out}")


@cube_app.command("compact")
def compact(tile: TileArgument, sensor: SensorOption = None, config: ConfigOption = None) -> None:
    """Rewrite the cube with its time slots in time order (one commit)."""
    try:
        snapshot = compact_cube(_location(tile, sensor, config))
    except GmsdaskError as error:
        _fail(error)
    console().print("already in time order" if snapshot is None else f"compacted: commit {snapshot}")


@cube_app.command("migrate")
def migrate(path: Annotated[Path, typer.Argument(help="A plain-Zarr cube <TILE>.zarr of gmsdask 0.1.")],
            rebuild: Annotated[bool, typer.Option("--rebuild", help="Keep only the virtual sensor's bands and "
                                                                    "scenes of a cube that mixes band sets.")] = False
            ) -> None:
    """Convert a plain-Zarr cube into an Icechunk cube beside it (<TILE>.icechunk)."""
    try:
        result = migrate_cube(path, rebuild=rebuild)
    except GmsdaskError as error:
        _fail(error)
    console().print(f"{result.location}: {result.slots} slots, commit {result.snapshot_id}")
    if result.dropped_scenes:
        console().print(f"left out (reprocess them): {', '.join(result.dropped_scenes)}; "
                        f"variables dropped: {', '.join(result.dropped_variables)}")
