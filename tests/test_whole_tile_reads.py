"""JPEG 2000 files are read in windows of whole tiles where the chunks allow it: GDAL decodes a file tile by
tile, so a window that cuts a tile decodes all of it, and the window beside it decodes it again
(``gmsdask.io.raster.whole_blocks``). L1A's decoded copy is written in whole tiles whatever the scene's chunks,
and L1B reads its reference, which has no copy, in chunks of whole tiles."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dask
import numpy as np
import pytest

from gmsdask.io import decoded_copy as copy_module
from gmsdask.io import open_scene
from gmsdask.io.decoded_copy import DecodedCopy
from gmsdask.io.raster import raster_info, read_window, whole_blocks
from gmsdask.levels import l1b
from gmsdask.synthetic import write_sentinel2_l1c
from gmsdask.synthetic.grid import PixelGrid
from gmsdask.synthetic.rasters import write_sentinel2_jp2


@pytest.fixture(scope="module")
def tiled_band(tmp_path_factory) -> str:
    """A 10 m band of 2100 x 1300 px in the real files' 1024 px tiles."""
    rows, cols = 2100, 1300
    values = (np.arange(rows * cols, dtype=np.uint32).reshape(rows, cols) * 7919 % 10000).astype(np.uint16)
    path = tmp_path_factory.mktemp("tiled") / "T33UUU_20240601T102321_B03.jp2"
    write_sentinel2_jp2(Path(path), values, PixelGrid(32633, 300000.0, 5900040.0, 10.0, rows, cols))
    return str(path)


def test_windows_of_whole_blocks_come_closest_to_the_chunks(tiled_band):
    raster = raster_info(tiled_band)
    assert raster.block_shape == (1024, 1024)
    assert whole_blocks(raster, (2046, 2046)) == (2048, 1300)  # at most the raster's extent
    assert whole_blocks(raster, (700, 1600)) == (1024, 1300)
    assert whole_blocks(raster, (300, 300)) == (1024, 1024)  # never less than one block
    assert whole_blocks(replace(raster, block_shape=None), (700, 700)) == (700, 700)


def test_the_copy_is_decoded_in_whole_tiles_and_read_in_the_scenes_chunks(tiled_band, tmp_path, monkeypatch):
    raster = raster_info(tiled_band)
    windows: list[tuple[slice, slice]] = []

    def spy(path, rows, cols, name=None, reduction=1):
        windows.append((rows, cols))
        return read_window(path, rows, cols, name, reduction)

    monkeypatch.setattr(copy_module, "read_window", spy)
    copy = DecodedCopy(str(tmp_path / "copy.zarr"), (700, 700))
    work = copy.write([raster])
    assert work is not None
    with dask.config.set(scheduler="sync"):
        work.compute()
    copy.mark_complete()
    # 1024, 1024 and 52 rows by 1024 and 276 columns: every window starts on a tile's edge
    assert sorted((r.start, r.stop, c.start, c.stop) for r, c in windows) == [
        (r0, r1, c0, c1) for r0, r1 in [(0, 1024), (1024, 2048), (2048, 2100)] for c0, c1 in [(0, 1024), (1024, 1300)]]
    dn = copy.dn(raster)
    assert dn.chunks == ((700, 700, 700), (700, 600))  # the scene's chunks, across the copy's
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(dn.compute(), read_window(tiled_band, slice(0, 2100), slice(0, 1300)))


def test_l1b_reads_its_reference_in_chunks_of_whole_tiles(tmp_path):
    product = write_sentinel2_l1c(tmp_path / "s2", tile="33UUU", size=(600, 600), seed=3)  # tiles of 600 px
    reference = l1b._reference_scene(str(product.path), (250, 250))
    assert reference["r10m"].ds["B03"].data.chunks == ((600,), (600,))
    assert reference["r20m"].ds["B11"].data.chunks == ((300,), (300,))
    assert l1b._reference_scene(str(product.path), (1200, 1200))["r10m"].ds["B03"].data.chunks == ((600,), (600,))
