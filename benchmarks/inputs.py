"""The synthetic inputs of the chain benchmarks, written once per scale and kept in ``benchmarks/.cache``.

``scale`` is the fraction of a Sentinel-2 tile's side: 1.0 is the full 10980 x 10980 tile at 10 m, 0.5 a quarter
tile (a quarter of the area). Landsat scenes scale the same way from a full WRS-2 scene (7741 x 7611 at 30 m).
The products are deterministic (seeded), so a cached product is the product the arguments describe; a folder
is only used once its product is complete (written to a staging name, then renamed).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gmsdask.synthetic import LANDSAT_SCENE_SIZE, SENTINEL2_TILE_SIZE, sentinel2_extent, write_landsat_l1
from gmsdask.synthetic import write_sentinel2_l1c

from .common import REPO

CACHE = REPO / "benchmarks" / ".cache"
TILE = "33UUU"
#: 60 m bands need sizes in multiples of 6 pixels at 10 m.
_S2_MULTIPLE = 6
#: The smallest side: Fmask's 40-pixel overlap at 20 m fails on smaller products (reported to the masks owner).
_S2_MIN_SIDE = 120


def s2_side(scale: float) -> int:
    """Side in 10 m pixels of a Sentinel-2 product at ``scale`` (a multiple of 6, at least 120)."""
    return max(_S2_MIN_SIDE, int(SENTINEL2_TILE_SIZE[0] * scale) // _S2_MULTIPLE * _S2_MULTIPLE)


def landsat_size(scale: float) -> tuple[int, int]:
    """Lines and samples of a Landsat scene at ``scale`` of a full WRS-2 scene."""
    return tuple(max(40, int(n * scale)) for n in LANDSAT_SCENE_SIZE)  # type: ignore[return-value]


@dataclass(frozen=True)
class Product:
    """A cached product: where it is and how long writing it took (0 when it was already cached)."""

    path: Path
    write_s: float


def cache_dir() -> Path:
    """``$GMSDASK_BENCH_CACHE``, else ``benchmarks/.cache``."""
    return Path(os.environ.get("GMSDASK_BENCH_CACHE") or CACHE)


def _cached(name: str, write: Callable[[Path], Path]) -> Product:
    """The product cached under ``name``, written by ``write(folder) -> product path`` when missing."""
    folder = cache_dir() / name
    done = folder / "PRODUCT"
    if done.exists():
        return Product(folder / done.read_text().strip(), 0.0)
    staging = cache_dir() / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    started = time.perf_counter()
    written = Path(write(staging))  # the product, or its archive, inside ``staging``
    seconds = time.perf_counter() - started
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    relative = written.relative_to(staging)
    done.write_text(str(relative))  # relative: the cache can move
    return Product(folder / relative, seconds)


def sentinel2_scene(side: int, *, day: int = 1, cloud_fraction: float = 0.1, seed: int = 5,
                    processed: datetime | None = None) -> Product:
    """A Sentinel-2B L1C of the upper-left ``side`` x ``side`` 10 m pixels of tile 33UUU, June ``day`` 2024;
    ``processed`` sets the product's processing time (part of its name, so of its id in the catalogue)."""
    tag = "" if processed is None else f"_p{processed:%Y%m%dT%H%M%S}"
    return _cached(f"s2_{side}_{day:02d}_{seed}_{cloud_fraction:g}{tag}", lambda folder: write_sentinel2_l1c(
        folder, tile=TILE, size=(side, side), acquisition_time=f"2024-06-{day:02d}", cloud_fraction=cloud_fraction,
        seed=seed, processing_time=processed).path)


def landsat9_scene(size: tuple[int, int]) -> Product:
    """A Landsat-9 L1TP of ``size`` (30 m) centred on tile 33UUU (a full scene spans several MGRS tiles). The
    cache name says ``cog``: its band files have internal overviews, as USGS's Collection 2 files (products
    cached before the synthetic writer made them had none)."""
    return _cached(f"l9_cog_{size[0]}x{size[1]}", lambda folder: write_landsat_l1(
        folder, platform="LANDSAT_9", location=sentinel2_extent(TILE), size=size, acquisition_time="2024-06-03",
        cloud_fraction=0.1, seed=5).path)


def small_scenes(count: int, side: int = _S2_MIN_SIDE) -> list[Product]:
    """``count`` small Sentinel-2 products (different days and seeds) for the many-scenes figure. Beyond 28
    (one overpass a day in June), products of one day differ by their processing time: a product's name, and so
    its id, holds the datatake and the processing time, so the same name twice is one scene to the catalogue (a
    "100 scene" job used to be 28)."""
    return [sentinel2_scene(side, day=1 + index % 28, seed=100 + index, cloud_fraction=0.0,
                            processed=None if index < 28 else datetime(2024, 7, 1, 12, index // 28))
            for index in range(count)]
