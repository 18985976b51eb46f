"""The one I/O floor of every chain figure: decode every input band once, and write the cube's bytes once.

- Decode: every band raster the chain reads (Sentinel-2: the 13 JPEG 2000 bands; Landsat: the reflective
  bands B1-B7 and the cirrus band B9, which the default chain reads with thermal and pan skipped) read whole
  with rasterio, one file after the other, in this process.
- Write: the arrays the job wrote into its cubes, read back beforehand (untimed) as stored (int16 reflectance,
  masks) and written to a plain local Zarr store with the same shapes, chunks and codecs.

The floor is measured right after the job it belongs to, in the same process, so both see the same machine.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import rasterio
import zarr

from gmsdask.io.archive import ProductFiles
from gmsdask.io.cube import open_cube_session

_SENTINEL2_BAND = re.compile(r"_B(0[1-9]|1[0-2]|8A)\.jp2$")
_LANDSAT_BAND = re.compile(r"_B([1-7]|9)\.TIF$", re.IGNORECASE)


def band_files(product: Path) -> list[str]:
    """GDAL paths of the band rasters of ``product`` that the chain decodes."""
    files = ProductFiles.open(product)
    pattern = _SENTINEL2_BAND if any(m.endswith(".jp2") for m in files.members) else _LANDSAT_BAND
    found = [files.gdal_path(m) for m in files.members if pattern.search(m) and "/QI_DATA/" not in m]
    if not found:
        raise ValueError(f"{product}: no band rasters found")
    return sorted(found)


def decode_seconds(products: Sequence[Path]) -> float:
    """Seconds to read every band of ``products`` once."""
    paths = [p for product in products for p in band_files(product)]
    started = time.perf_counter()
    for path in paths:
        with rasterio.open(path) as dataset:
            dataset.read(1)
    return time.perf_counter() - started


def _cube_arrays(cube: str) -> list[tuple[str, zarr.Array]]:
    """Every array of a cube."""
    return list(zarr.open_group(open_cube_session(cube).store, mode="r").arrays())


def _read_all(cubes: Sequence[str]) -> list[tuple[int, list[tuple[str, zarr.Array, object]]]]:
    """Every array of ``cubes`` with its stored values, read now so that writing them can be timed alone. The
    arrays are read side by side, one per CPU: one after the other, reading a Landsat job's 15 cubes took 40.7 s,
    twice the timed write (side by side 15.5 s)."""
    arrays = [(index, name, array) for index, cube in enumerate(cubes) for name, array in _cube_arrays(cube)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        values = list(pool.map(lambda item: item[2][...], arrays))
    contents: dict[int, list[tuple[str, zarr.Array, object]]] = {index: [] for index in range(len(cubes))}
    for (index, name, array), value in zip(arrays, values):
        contents[index].append((name, array, value))
    return list(contents.items())


def write_seconds(cubes: Sequence[str], scratch: Path) -> tuple[float, int]:
    """Seconds to write the stored bytes of ``cubes`` once to plain Zarr, and how many bytes they are."""
    contents = _read_all(cubes)
    target = scratch / "floor_cubes"
    shutil.rmtree(target, ignore_errors=True)
    nbytes = 0
    started = time.perf_counter()
    for index, arrays in contents:
        group = zarr.open_group(str(target / f"cube{index}.zarr"), mode="w")
        for name, source, values in arrays:
            out = group.create_array(name, shape=source.shape, chunks=source.chunks, dtype=source.dtype,
                                     compressors=source.compressors, filters=source.filters,
                                     fill_value=source.fill_value)
            out[...] = values
            nbytes += values.nbytes
    seconds = time.perf_counter() - started
    shutil.rmtree(target, ignore_errors=True)
    return seconds, nbytes


def _read_into_page_cache(products: Sequence[Path]) -> None:
    """Read every file of ``products`` (a folder's files, or an archive) once, discarding the bytes."""
    for product in products:
        for path in [product] if product.is_file() else sorted(p for p in product.rglob("*") if p.is_file()):
            with open(path, "rb") as stream:
                while stream.read(1 << 24):
                    pass


def io_floor(products: Sequence[Path], cubes: Sequence[str], scratch: Path) -> dict[str, float]:
    """The floor of a job of ``products`` that wrote ``cubes``: ``decode_s``, ``write_s``, ``floor_s``."""
    # the page cache held the files for the job too: warm it for the floor as well (reading the bytes is
    # enough: 0.7 s for a whole tile, where decoding them a second time took 39 s of the benchmark's time)
    _read_into_page_cache(products)
    decode = decode_seconds(products)
    write, nbytes = write_seconds(cubes, scratch)
    return {"decode_s": decode, "write_s": write, "floor_s": decode + write, "cube_mib": nbytes / 2**20}
