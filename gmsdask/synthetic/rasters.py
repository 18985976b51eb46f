"""Writing band files the way the providers do, byte-identically for identical input.

GDAL writes no timestamps into GeoTIFF or JPEG 2000 unless asked to; side-car ``.aux.xml`` files are turned
off, and every creation option is fixed here rather than left to GDAL's defaults.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from .grid import PixelGrid

__all__ = ["write_landsat_geotiff", "write_sentinel2_jp2", "JP2_BLOCK_SIZE", "write_all"]

_log = logging.getLogger(__name__)
#: Tile size of the real Sentinel-2 JPEG 2000 files per resolution (read off real L2A products).
JP2_BLOCK_SIZE = {10: 1024, 20: 640, 60: 192}

#: OpenJPEG rejects tiles smaller than this (a tile may be larger than a tiny image).
_MIN_JP2_BLOCK = 32
_ENV = {"GDAL_PAM_ENABLED": "NO", "GDAL_NUM_THREADS": "1"}
#: Tile side of the Landsat GeoTIFFs (as USGS's Collection 2 COGs).
_GEOTIFF_BLOCK = 256


def write_landsat_geotiff(path: Path, data: np.ndarray, grid: PixelGrid, nodata: int | None = 0, *,
                          overview_resampling: str = "average") -> None:
    """A Collection 2 style band file: a Cloud Optimized GeoTIFF as USGS delivers them (LSDS-1388): tiled, LZW,
    pixel-is-point, uint16, with internal overviews (``overview_resampling``: ``average`` for DNs, ``nearest``
    for bit-packed QA layers) at 2, 4, 8 ... until the coarsest fits in one 256-pixel block."""
    profile = dict(driver="GTiff", width=grid.cols, height=grid.rows, count=1, dtype=data.dtype.name,
                   crs=f"EPSG:{grid.epsg}", transform=grid.transform, nodata=nodata, tiled=True,
                   blockxsize=_GEOTIFF_BLOCK, blockysize=_GEOTIFF_BLOCK, compress="LZW", predictor=2,
                   interleave="band")
    with rasterio.Env(**_ENV), rasterio.open(path, "w", **profile) as dst:
        dst.update_tags(AREA_OR_POINT="Point")
        dst.write(data, 1)
        factors = _overview_factors(max(grid.rows, grid.cols))
        if factors:
            dst.build_overviews(factors, Resampling[overview_resampling])


def _overview_factors(side: int) -> list[int]:
    """2, 4, 8 ... while the image at the previous factor is larger than one block (GDAL's COG rule)."""
    factors, factor = [], 2
    while -(-side // (factor // 2)) > _GEOTIFF_BLOCK:
        factors.append(factor)
        factor *= 2
    return factors


def write_sentinel2_jp2(path: Path, data: np.ndarray, grid: PixelGrid) -> None:
    """A lossless JPEG 2000 band or mask file (one or more bands), georeferenced like the real ones."""
    data = data if data.ndim == 3 else data[None]
    block = JP2_BLOCK_SIZE.get(int(round(grid.res)), 1024)
    profile = dict(driver="JP2OpenJPEG", width=grid.cols, height=grid.rows, count=data.shape[0],
                   dtype=data.dtype.name, crs=f"EPSG:{grid.epsg}", transform=grid.transform,
                   QUALITY=100, REVERSIBLE="YES", YCC="NO", CODEC="JP2",
                   BLOCKXSIZE=max(_MIN_JP2_BLOCK, min(block, grid.cols)),
                   BLOCKYSIZE=max(_MIN_JP2_BLOCK, min(block, grid.rows)),
                   RESOLUTIONS=_resolution_levels(min(grid.rows, grid.cols, block)),
                   CODEBLOCK_WIDTH=64, CODEBLOCK_HEIGHT=64, PROGRESSION="LRCP",
                   GMLJP2="YES", GeoJP2="YES", WRITE_METADATA="NO", INSPIRE_TG="NO")
    with rasterio.Env(**_ENV), rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def _resolution_levels(tile: int) -> int:
    """Wavelet levels: up to 6, as many as the tile allows (the coarsest level needs >= 2 pixels)."""
    levels = 1
    while levels < 6 and (tile >> levels) >= 2:
        levels += 1
    return levels


def write_all(jobs: list[tuple], workers: int = 2) -> None:
    """Run ``(function, path, *args)`` jobs in ``workers`` threads (GDAL encoders release the GIL)."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(job[0], *job[1:]) for job in jobs]:
            future.result()
    _log.info("wrote %d raster files in %.1f s", len(jobs), time.perf_counter() - started)
