"""Band files decoded once: a lossless copy of a scene's JPEG 2000 digital numbers that every later pass reads.

A Sentinel-2 tile's chain reads its bands in several passes: L1B's matching (the green band), L1C's cloud masks
(the 20 m bands) and the final pass (every band). Decoding JPEG 2000 costs ~0.45 s of CPU per 2048² window of a
10 m band, and those passes decoded about 30 CPU s of a whole tile's bands a second time (``docs/
performance.md``). L1A therefore decodes each JPEG 2000 band once into a Zarr store of the same integers
(Blosc-LZ4 with bit shuffle: ~40 ms to write a 2048² window, ~7 ms to read it back) and builds the scene on it.
GeoTIFF bands (Landsat) decode about as fast as the copy would read, so they are read from their files.

Why a copy on disk and not Dask's ``persist``: the decoded bands would sit in the workers' memory for the
whole chain (~1.3 GB for a tile); on disk they cost ~0.8 GB of scratch space per tile and nothing at rest.

A copy counts only once complete: a marker file written after every block is (in L1A's ``finish``), removed
first when the copy is deleted. A read checks the marker before and after taking its block and decodes the file
itself when the copy is not there, e.g. a scene rebuilt for another scene's L1B after its own chain deleted the
copy (Zarr returns its fill value for a chunk that is missing, so a read must never trust a copy without the
marker). The values are the same integers either way.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import dask.array as da
import numpy as np
import zarr
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer
from zarr.codecs import BloscCodec
from zarr.errors import BaseZarrError

from .raster import RasterInfo, WindowReader, lazy_raster, read_window, whole_blocks

__all__ = ["DecodedCopy"]

#: The file whose presence says the copy is complete.
_MARKER = "complete"
#: Dask priority of the copy's tasks (0 for all other tasks; lower runs later).
_COPY_PRIORITY = -10
#: Blosc-LZ4 with bit shuffle: the fastest of the codecs measured on 12-bit DNs (zstd level 1: 29 ms to write
#: a 2048² window, 12 ms to read; LZ4: 41 and 7 ms; the copy is read about three times per write).
_CODEC = BloscCodec(cname="lz4", clevel=1, shuffle="bitshuffle")


@dataclass(frozen=True)
class DecodedCopy:
    """Where a scene's JPEG 2000 bands are kept decoded (a Zarr store on a file system every worker sees).

    ``location`` is the store's directory; ``chunks`` the ``(rows, cols)`` blocks the scene reads it in (the
    scene's chunks); each band is written in whole blocks of its file (:meth:`store_chunks`). ``read_chunks``,
    where set (:meth:`read_in`), are the blocks a reader takes instead: the same copy, read in other chunks.
    """

    location: str
    chunks: tuple[int, int]
    read_chunks: tuple[int, int] | None = None

    def read_in(self, chunks: tuple[int, int]) -> DecodedCopy:
        """This copy, read in ``chunks`` (``(rows, cols)``) instead of the scene's (e.g. Fmask's smaller blocks)."""
        return replace(self, read_chunks=(int(chunks[0]), int(chunks[1])))

    @property
    def scene_chunks(self) -> tuple[int, int]:
        """The ``(rows, cols)`` blocks a scene read from this copy comes in."""
        return self.read_chunks or tuple(self.chunks)

    def store_chunks(self, raster: RasterInfo) -> tuple[int, int]:
        """``(rows, cols)`` of the windows ``raster`` is decoded in, each one Zarr chunk of the copy: whole blocks of
        its file, as many as come closest to :attr:`chunks` (:func:`~gmsdask.io.raster.whole_blocks`: a window that
        cuts a JPEG 2000 tile decodes all of it). The scene then reads its chunks across the copy's; a Zarr chunk
        decompresses in a few milliseconds."""
        return whole_blocks(raster, self.chunks)

    def covers(self, raster: RasterInfo) -> bool:
        """Whether ``raster`` is decoded into the copy: a JPEG 2000 file read at its own grid, of at least one full
        chunk of pixels (a smaller band decodes in a few milliseconds; the copy would cost more than it saves)."""
        return (raster.reduction == 1 and raster.path.lower().endswith(".jp2")
                and raster.height * raster.width >= self.chunks[0] * self.chunks[1])

    def array_name(self, raster: RasterInfo) -> str:
        """The Zarr array of ``raster`` in the copy: the file's name and a token of its full path, its grid, the
        copy's chunks and the file's size and modification time (where the path is a plain file's)."""
        token = tokenize(raster.path, raster.shape, raster.dtype, self.store_chunks(raster), _stat(raster.path))
        return f"{Path(raster.path).stem}-{token}"

    def dn(self, raster: RasterInfo) -> da.Array:
        """``raster``'s digital numbers as a Dask array: read from the copy where it covers the raster (falling
        back to the file while the copy is incomplete or gone), else from the file itself."""
        if not self.covers(raster):
            return lazy_raster(raster, self.scene_chunks)
        return da.from_array(
            _CopyReader(self, raster), chunks=self.scene_chunks, lock=False, asarray=False,
            inline_array=True,  # read tasks stay root tasks, as in lazy_raster
            fancy=False, meta=np.empty((0, 0), dtype=raster.dtype),
            name=f"read-copy-{tokenize(self.location, raster.path, raster.shape, self.scene_chunks)}")

    def write(self, rasters: Iterable[RasterInfo]) -> Delayed | None:
        """A graph that decodes every covered raster of ``rasters`` once, one task per chunk, into the copy at
        ``location``; None when it covers none. Building the graph touches nothing; the copy is unused from the
        graph's first task until :meth:`mark_complete`."""
        covered = list({r.path: r for r in rasters if self.covers(r)}.values())
        if not covered:
            return None
        names = [self.array_name(raster) for raster in covered]
        created = f"decoded-copy-created-{tokenize(self.location, names)}"
        graph: dict = {created: (_create, self, tuple(covered))}
        keys: list = []
        for raster, name in zip(covered, names):
            window = self.store_chunks(raster)
            prefix = f"decode-once-{tokenize(self.location, raster.path, raster.shape, window)}"
            for iy, row0 in enumerate(range(0, raster.height, window[0])):
                for ix, col0 in enumerate(range(0, raster.width, window[1])):
                    rows = slice(row0, min(row0 + window[0], raster.height))
                    cols = slice(col0, min(col0 + window[1], raster.width))
                    graph[(prefix, iy, ix)] = (_decode_into, created, raster, rows, cols, self.location, name)
                    keys.append((prefix, iy, ix))
        done = f"decoded-copy-written-{tokenize(self.location, keys)}"
        graph[done] = (sum, keys)
        # below every other task: a scene's later passes go first, so that the copies of scenes started together
        # (each job's first scenes) do not all end together and run their later passes in step, which added up
        # their peaks (one worker, four quarter tiles: 1937 -> 2555 MiB)
        layer = MaterializedLayer(graph, annotations={"priority": _COPY_PRIORITY})
        return Delayed(done, HighLevelGraph({done: layer}, {done: set()}))

    def mark_complete(self) -> None:
        """Make the copy count: every block is written (call after :meth:`write`'s graph is computed)."""
        (Path(self.location) / _MARKER).touch()

    @property
    def complete(self) -> bool:
        return os.path.exists(os.path.join(self.location, _MARKER))

    def delete(self) -> None:
        """Remove the copy: its marker first, so that no read takes a block from a copy being removed."""
        marker = Path(self.location) / _MARKER
        marker.unlink(missing_ok=True)
        shutil.rmtree(self.location, ignore_errors=True)


def _stat(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:  # a GDAL virtual path (/vsizip/...): the archive's members are not files
        return None
    return status.st_size, status.st_mtime_ns


def _create(copy: DecodedCopy, rasters: tuple[RasterInfo, ...]) -> None:
    """The copy's arrays, before any block is written: its marker removed, the arrays of ``rasters`` created
    where they are not there yet. Nothing written is removed: Dask runs this task again when the worker that
    holds its result is lost, while blocks may already be written (an array of another file, or of an earlier
    version of this one, has another name: :meth:`DecodedCopy.array_name`)."""
    (Path(copy.location) / _MARKER).unlink(missing_ok=True)
    group = zarr.open_group(copy.location, mode="a", zarr_format=3)
    for raster in rasters:
        name = copy.array_name(raster)
        if name not in group:
            group.create_array(name, shape=raster.shape, chunks=copy.store_chunks(raster), dtype=raster.dtype,
                               compressors=[_CODEC], fill_value=0)


def _decode_into(_created: None, raster: RasterInfo, rows: slice, cols: slice, location: str, name: str) -> int:
    """Decode one window of ``raster`` and store it at its place in the copy's array; the bytes stored."""
    block = read_window(raster.path, rows, cols, raster.name)
    zarr.open_array(location, path=name, mode="r+")[rows, cols] = block
    return block.nbytes


class _CopyReader(WindowReader):
    """Array-like view of one raster that indexing reads from the copy (or the file; see the module's text)."""

    def __init__(self, copy: DecodedCopy, raster: RasterInfo) -> None:
        super().__init__(raster)
        self.copy = copy
        self.array = copy.array_name(raster)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        if self.copy.complete:
            rows, cols = self.window(key)
            try:
                block = zarr.open_array(self.copy.location, path=self.array, mode="r")
                values = block[rows, cols]
            except (FileNotFoundError, KeyError, BaseZarrError):  # deleted while we opened it
                values = None
            if values is not None and self.copy.complete:  # still there: every block read was in the copy
                return values
        return super().__getitem__(key)
