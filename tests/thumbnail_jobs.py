"""A small job on two real Landsat thumbnails, shared by the controller, level-contract and option tests.

The products are 60x60 thumbnails of whole scenes (~4 km pixels): a 3660 m target grid nests in the 109.8 km
MGRS tiles and keeps the cubes small.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gmsdask import JobConfig, set_config
from gmsdask.catalog import Catalog

from .conftest import data_path

LANDSAT_A = ("landsat", "collection1", "LC08_L1TP_090084_20160121_20170405_01_T1.tar.gz")
LANDSAT_B = ("landsat", "collection1", "LT05_L1TP_090085_19970406_20161231_01_T1.tar.gz")


def thumbnail_job(folder: Path, **options: Any) -> tuple[Catalog, int, JobConfig]:
    """A catalogue in ``folder`` with both thumbnails, a job over them with ``options``, and its configuration."""
    cfg = set_config(db_url=f"sqlite:///{folder / 'catalog.sqlite'}", path_procdata_MGRS=folder / "cubes",
                     path_procdata_scenes=folder / "scenes", path_job_logs=folder / "logs",
                     target_gsd=3660.0, mgrs_pixel_buffer=0, tiling_block_size_XY=(64, 64), **options)
    catalog = Catalog.from_config(cfg)
    scene_ids = catalog.add_products([data_path(*LANDSAT_A), data_path(*LANDSAT_B)])
    return catalog, catalog.create_job(scene_ids, cfg), cfg
