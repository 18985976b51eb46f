"""``gmsdask demo``: the whole chain on a built-in synthetic sample, on a fresh machine with no data."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console

from .catalog import Catalog
from .config import set_config
from .errors import GmsdaskError
from .io.cube import open_cube
from .quicklook import write_quicklook

__all__ = ["run_demo", "write_demo_products", "seed_sixs_cache", "DEMO_TILE"]

DEMO_TILE = "33UUU"
#: A file marking a folder as a demo's output, which a later demo may delete and rewrite.
DEMO_MARKER = ".gmsdask-demo"
DEMO_TIME = datetime(2024, 6, 1, 10, 20, tzinfo=timezone.utc)


def write_demo_products(archive: str | Path):
    """The demo's sample: a synthetic Sentinel-2B L1C product of tile 33UUU and a Landsat-9 L1 product of the
    same ground and day, misregistered by a known (30, -15) m (which L1B measures), whose surfaces reflect with a
    known BRDF of their own (``gmsdask.synthetic.brdf``; the truth's ``nbar`` is what L2B's NBAR aims at). Returns both
    :class:`~gmsdask.synthetic.SyntheticProduct`s (paths and truth)."""
    from .synthetic import sentinel2_extent, write_landsat_l1, write_sentinel2_l1c

    sentinel2 = write_sentinel2_l1c(archive, platform="SENTINEL_2B", tile=DEMO_TILE, acquisition_time=DEMO_TIME,
                                    size=(900, 900), cloud_fraction=0.1, seed=1, brdf=True)
    landsat = write_landsat_l1(archive, platform="LANDSAT_9", location=sentinel2_extent(DEMO_TILE, (900, 900)),
                               acquisition_time=DEMO_TIME.replace(minute=5), shift_m=(30.0, -15.0),
                               cloud_fraction=0.05, seed=1, brdf=True)
    return sentinel2, landsat


def run_demo(workdir: str | Path, *, cpus: int = 2, console: Console | None = None) -> int:
    """Write the sample products, catalogue them, run the job on a LocalCluster; returns the job id."""
    from .controller import ProcessController

    console = console or Console()
    workdir = Path(workdir).absolute()
    _clear_previous_demo(workdir)
    archive = workdir / "archive"
    archive.mkdir(parents=True)
    (workdir / DEMO_MARKER).write_text("written by `gmsdask demo`; the next demo in this folder replaces it\n")
    console.print(f"[bold]1.[/bold] writing a synthetic Sentinel-2B L1C and an overlapping Landsat-9 L1 product "
                  f"(tile {DEMO_TILE}, {DEMO_TIME:%Y-%m-%d}) into {archive}")
    sentinel2, landsat = write_demo_products(archive)
    cfg = set_config(
        CPUs=cpus,
        db_url=f"sqlite:///{workdir / 'catalog.sqlite'}",
        path_archive=archive,
        path_procdata_scenes=workdir / "processed_scenes",
        path_procdata_MGRS=workdir / "mgrs_tiles",
        path_job_logs=workdir / "logs",
        tiling_block_size_XY=(512, 512),
        mgrs_pixel_buffer=0,
        # the sample lies at the tile's upper-left corner, inside its neighbours' overlap: keep one cube
        target_mgrs_tiles=(DEMO_TILE,),
    )
    seed_sixs_cache(Path(cfg.path_cache))
    catalog = Catalog.from_config(cfg)
    scene_ids = catalog.add_products(archive)
    job_id = catalog.create_job(scene_ids, cfg, comment="gmsdask demo")
    console.print(f"[bold]2.[/bold] catalogued {len(scene_ids)} scenes "
                  f"({sentinel2.product_id}, {landsat.product_id}); job {job_id}")
    console.print(f"[bold]3.[/bold] running job {job_id} on a LocalCluster with {cpus} workers")
    controller = ProcessController(job_id, db_url=cfg.db_url)
    controller.run_all_processors()
    console.print(controller.summary.to_string(index=False))
    console.print(f"job status: [bold]{controller.DB_job_record.status}[/bold]")
    console.print("[bold]4.[/bold] cubes written and their quicklooks:")
    for path in sorted({tile.path for tile in catalog.tiles_written(job_id)}):
        cube = open_cube(path)
        png = write_quicklook(cube, Path(path).with_suffix(".png"))
        console.print(f"  {path}: {dict(cube.sizes)}, variables {sorted(cube.data_vars)[:8]}..., quicklook {png}")
    controller.shutdown()
    return job_id


def _clear_previous_demo(workdir: Path) -> None:
    """Delete a previous demo's output; refuse any other non-empty folder (it may hold someone's work)."""
    if not workdir.exists():
        return
    if not workdir.is_dir():
        raise GmsdaskError(f"demo workdir {workdir} exists and is not a folder; choose another --workdir")
    if (workdir / DEMO_MARKER).is_file():
        shutil.rmtree(workdir)
    elif any(workdir.iterdir()):
        raise GmsdaskError(f"demo workdir {workdir} is not empty and is not a previous demo's output "
                           "(no .gmsdask-demo marker): nothing was deleted; choose an empty or new --workdir")


def seed_sixs_cache(cache: str | Path) -> None:
    """Copy the 6S lookup tables of the demo's geometries (shipped with gmsdask) into the cache, so the demo
    does not spend minutes of 6S runs; tables already there are kept."""
    shipped = Path(__file__).parent / "synthetic" / "data" / "sixs_cache"
    for table in shipped.rglob("*.npz"):
        target = Path(cache) / table.relative_to(shipped)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(table, target)
