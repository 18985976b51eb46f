"""Deleting products for routines: Sen2Chain's ``remove`` items, ``clean_before``/``clean_after``, side products.

Rules, stricter than Sen2Chain's:

* Only products inside the managed folders (``path_archive`` and provider download folders) are deleted;
  a symbolic link there is unlinked, never followed. Products elsewhere are left and the log says so.
* A product still needed is kept: one that a pending or running catalogue job holds, or that an active task
  of any routine would select (tile, dates, clouds, level) and has not yet written into that tile's cube.
* Every deletion, and every product kept for one of these reasons, is logged.
* ``remove`` items: ``l1c``/``l2a`` = Level-1/Level-2 products; ``-new`` = catalogued in this run, ``-all`` =
  every product of the tile; ``-ccXX`` = only products with a cloud cover >= XX % (inclusive).
* ``copy_L2A_sideproducts``: before a Sentinel-2 L2A product is deleted, its 20 m SCL and MSK_CLDPRB are
  copied to ``<GMSDASK_HOME>/sideproducts/<tile>/<product_id>/`` (the cloud-mask inputs).
* cleaning: products of the task's tile in the managed folders that cannot be opened are corrupt or partial
  and are deleted, as are ``*.part`` leftovers of interrupted fetches.
"""

from __future__ import annotations

import fnmatch
import logging
import shutil
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ..catalog import SceneRecord
from ..errors import GmsdaskError
from .model import RemoveItem, Task
from .product_names import level_group, parse_product_name
from .providers import find_products

__all__ = [
    "SIDEPRODUCT_PATTERNS",
    "NeededBy",
    "clean_folders",
    "copy_sideproducts",
    "delete_product",
    "select_for_removal",
]

#: Members of an L2A product kept by ``copy_L2A_sideproducts`` (paths relative to the product root).
SIDEPRODUCT_PATTERNS: tuple[str, ...] = ("GRANULE/*/IMG_DATA/R20m/*_SCL_20m.jp2", "GRANULE/*/QI_DATA/MSK_CLDPRB_20m.jp2")


@dataclass(frozen=True)
class NeededBy:
    """Who still needs products: active tasks (with their day of run) and scenes of unfinished catalogue jobs.

    ``written`` holds (tile, scene id) pairs already in a tile cube.
    """

    tasks: Sequence[tuple[str, Task]]
    today: date
    busy_scene_ids: frozenset[int]
    written: frozenset[tuple[str, int]]

    def reason(self, scene: SceneRecord) -> str | None:
        """Why ``scene`` must be kept, or None."""
        if scene.id in self.busy_scene_ids:
            return "an unfinished catalogue job holds it"
        day = scene.acquisition_time.date()
        for owner, task in self.tasks:
            if not task.active or task.tile not in scene.mgrs_tiles or (task.tile, scene.id) in self.written:
                continue
            start, end = task.dates(self.today)
            if day < start or (end is not None and day > end):
                continue
            if scene.cloud_cover_pct is not None and scene.cloud_cover_pct > task.max_clouds:
                continue
            if level_group(scene.processing_level) == "l1c" and not task.compute_l2a:
                continue
            return f"{owner} (tile {task.tile}) has not processed it yet"
        return None


def select_for_removal(item: RemoveItem, tile: str, scenes: Iterable[SceneRecord],
                       new_ids: set[int]) -> list[SceneRecord]:
    """The scenes of ``tile`` that ``remove`` item ``item`` designates (before the needed-by check)."""
    chosen = []
    for scene in scenes:
        if tile not in scene.mgrs_tiles or level_group(scene.processing_level) != item.level:
            continue
        if item.scope == "new" and scene.id not in new_ids:
            continue
        if item.min_cloud_cover is not None and (scene.cloud_cover_pct is None
                                                 or scene.cloud_cover_pct < item.min_cloud_cover):
            continue
        chosen.append(scene)
    return chosen


def _inside(path: Path, folders: Sequence[Path]) -> bool:
    parent = path.parent.resolve()
    return any(parent == f.resolve() or parent.is_relative_to(f.resolve()) for f in folders)


def delete_product(path: Path, managed: Sequence[Path], logger: logging.Logger, why: str) -> bool:
    """Delete a product (file, folder, or the link to it) if it lies in a managed folder; log it either way."""
    if not (path.exists() or path.is_symlink()):
        logger.info("remove: %s is already gone (%s)", path, why)
        return False
    if not _inside(path, managed):
        logger.warning("remove: %s kept: outside the managed folders %s (%s)", path,
                       ", ".join(map(str, managed)), why)
        return False
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path)
    logger.info("removed %s (%s)", path, why)
    return True


def copy_sideproducts(product: Path, destination: Path, logger: logging.Logger) -> list[Path]:
    """Copy an L2A product's 20 m SCL and MSK_CLDPRB (folder or ``.zip``) into ``destination``."""
    copied: list[Path] = []
    destination.mkdir(parents=True, exist_ok=True)
    if product.is_dir():
        for pattern in SIDEPRODUCT_PATTERNS:
            for member in product.glob(pattern):
                copied.append(Path(shutil.copy2(member, destination / member.name)))
    elif zipfile.is_zipfile(product):
        with zipfile.ZipFile(product) as archive:
            for name in archive.namelist():
                inner = name.split("/", 1)[-1]
                if any(fnmatch.fnmatch(inner, pattern) for pattern in SIDEPRODUCT_PATTERNS):
                    target = destination / Path(name).name
                    target.write_bytes(archive.read(name))
                    copied.append(target)
    logger.info("kept side products of %s: %s", product.name, ", ".join(p.name for p in copied) or "none found")
    return copied


def clean_folders(tile: str, folders: Sequence[Path], logger: logging.Logger) -> list[Path]:
    """Delete corrupt or partial products of ``tile`` (and ``*.part`` leftovers) in the managed ``folders``."""
    from ..io import open_scene

    removed: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for leftover in folder.rglob("*.part"):
            if delete_product(leftover, folders, logger, "clean: partial fetch"):
                removed.append(leftover)
        for product in find_products(folder):
            info = parse_product_name(product.name)
            if info is None or info.tile != tile:
                continue
            try:
                open_scene(product)
            except (GmsdaskError, OSError, zipfile.BadZipFile) as error:
                if delete_product(product, folders, logger, f"clean: cannot be opened: {error}"):
                    removed.append(product)
    return removed
