"""Lazy, chunked, concurrent reading of single-band rasters into Dask arrays.

GDAL dataset handles are not thread-safe, and one global lock would serialize every read. Each thread (in
threaded schedulers) or process (in ``distributed`` workers) therefore opens its own handle per file and keeps it
in a small per-thread cache, so windowed reads of one file run concurrently. A Dask array is built with
``dask.array.from_array`` over a picklable window reader: one task per chunk, no per-chunk ``delayed`` calls.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import dask.array as da
import numpy as np
import rasterio
from affine import Affine
from odc.geo.geobox import GeoBox
from dask.base import tokenize
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from ..errors import BandFileError

__all__ = ["RasterInfo", "raster_info", "lazy_raster", "read_window", "WindowReader", "whole_blocks"]

_MAX_HANDLES_PER_THREAD = 64
_thread_state = threading.local()
#: GDAL's JPEG 2000 driver decodes with every CPU unless told otherwise (a 2048² window of a 10 m band on this
#: project's 2-core machine: 0.25 s wall, 0.48 s CPU). Under Dask each read task is one unit of parallelism, so
#: a "one-thread" worker used two cores and two workers oversubscribed them: with two workers the decoding
#: took 72 % more worker time than with one. Reads decode in one thread, as ``distributed``'s nanny sets
#: ``OMP_NUM_THREADS=1`` for the same reason; a ``GDAL_NUM_THREADS`` set in the environment is kept.
_DEFAULT_DECODE_THREADS = "1"


def _decode_threads() -> str:
    return os.environ.get("GDAL_NUM_THREADS", _DEFAULT_DECODE_THREADS)


@dataclass(frozen=True)
class RasterInfo:
    """Grid and type of one raster file, read from its header only; the grid is an ``odc.geo.GeoBox``."""

    path: str
    name: str  # human-readable, for error messages
    geobox: GeoBox
    dtype: str
    nodata: float | None
    #: Reduction factors of the file's internal overviews (JPEG 2000 resolution levels, GeoTIFF overviews).
    overview_factors: tuple[int, ...] = ()
    #: Native pixels per pixel of ``geobox`` along each axis (1: the file's own grid; see :meth:`reduced`).
    reduction: int = 1
    #: ``(rows, cols)`` of the blocks GDAL decodes the file in (a JPEG 2000 file's tiles, a GeoTIFF's tiles or
    #: strips; None when not known). A window whose edges cut these blocks decodes the blocks it cuts in full.
    block_shape: tuple[int, int] | None = None

    def reduced(self, factor: int) -> RasterInfo:
        """This raster read ``factor`` times coarser along each axis: a grid of ``floor(n / factor)`` pixels
        of ``factor`` native pixels each (the last ``n % factor`` rows and columns are left out, so the pixel
        size is exact). Reads decode the file's overview of that factor where it has one (JPEG 2000 decodes
        only the resolution levels needed: a 4x reduction costs ~8 % of a full decode), otherwise GDAL
        decodes the full resolution and keeps every ``factor``-th pixel."""
        if factor == 1:
            return self
        if factor < 1 or self.reduction != 1:
            raise ValueError(f"{self.name}: a reduction must be a whole factor >= 1 of the native grid")
        geobox = GeoBox((self.height // factor, self.width // factor),
                        self.transform * Affine.scale(factor), self.geobox.crs)
        return replace(self, geobox=geobox, reduction=factor)

    @property
    def from_overviews(self) -> bool:
        """True when reads decode an overview of the file (or the native grid): no full decode."""
        return self.reduction == 1 or self.reduction in self.overview_factors

    @property
    def shape(self) -> tuple[int, int]:
        return self.geobox.shape.yx

    @property
    def height(self) -> int:
        return self.geobox.shape.y

    @property
    def width(self) -> int:
        return self.geobox.shape.x

    @property
    def transform(self) -> Affine:
        return self.geobox.affine

    @property
    def crs(self) -> CRS | None:
        """The grid's CRS as rasterio's type (None when the file has none)."""
        return None if self.geobox.crs is None else CRS.from_wkt(self.geobox.crs.to_wkt())

    @property
    def resolution(self) -> float:
        """Pixel width in CRS units (metres for UTM)."""
        return abs(self.transform.a)


def whole_blocks(raster: RasterInfo, chunks: tuple[int, int]) -> tuple[int, int]:
    """``(rows, cols)`` of windows of ``raster`` that hold whole blocks of its file (:attr:`RasterInfo.block_shape`),
    as many as come closest to ``chunks``, at most the raster's extent; ``chunks`` where the blocks are not known.

    GDAL decodes a JPEG 2000 file tile by tile: a window that cuts a tile decodes all of it, and the window beside
    it, often on another worker, decodes it again. Measured with a fresh handle per window (as on different
    workers): four rows of a whole tile's B03 (1024 px tiles) took 19.1 s of CPU in 2046 px windows and 9.5 s in
    2048 px ones; all of B05 (640 x 1024 px blocks) 5.2 s in 2048 px windows and 4.2 s in 1920 x 2048 px ones,
    as much as one read of the whole band."""
    if raster.block_shape is None:
        return chunks
    return tuple(min(extent, max(1, round(chunk / block)) * block)  # type: ignore[return-value]
                 for extent, chunk, block in zip(raster.shape, chunks, raster.block_shape))


def _dataset(path: str) -> rasterio.io.DatasetReader:
    """This thread's open handle of ``path`` (opened on first use, least recently used closed first)."""
    cache: OrderedDict[str, Any] | None = getattr(_thread_state, "handles", None)
    if cache is None:
        cache = _thread_state.handles = OrderedDict()
    handle = cache.get(path)
    if handle is None or handle.closed:
        handle = rasterio.open(path)
        cache[path] = handle
        while len(cache) > _MAX_HANDLES_PER_THREAD:
            cache.popitem(last=False)[1].close()
    cache.move_to_end(path)
    return handle


def _block_shape(dataset: rasterio.io.DatasetReader) -> tuple[int, int]:
    rows, cols = dataset.block_shapes[0]
    return int(rows), int(cols)


def raster_info(path: str, name: str | None = None) -> RasterInfo:
    """Header information of a single-band raster; a missing or undecodable file raises ``BandFileError``."""
    label = name or path
    try:
        with rasterio.open(path) as dataset:
            if dataset.count < 1:
                raise BandFileError(label, "raster has no bands")
            crs = dataset.crs.to_wkt() if dataset.crs else None
            return RasterInfo(path=path, name=label,
                              geobox=GeoBox((dataset.height, dataset.width), dataset.transform, crs),
                              dtype=dataset.dtypes[0], nodata=dataset.nodata,
                              overview_factors=tuple(int(f) for f in dataset.overviews(1)),
                              block_shape=_block_shape(dataset))
    except RasterioError as err:
        raise BandFileError(label, f"cannot open raster ({err})") from None


def read_window(path: str, rows: slice, cols: slice, name: str | None = None, reduction: int = 1) -> np.ndarray:
    """Read ``[rows, cols]`` of band 1 with this thread's handle; with a ``reduction``, ``rows`` and ``cols``
    are pixels of the grid ``reduction`` times coarser (:meth:`RasterInfo.reduced`)."""
    window = Window.from_slices(slice(rows.start * reduction, rows.stop * reduction),
                                slice(cols.start * reduction, cols.stop * reduction))
    out_shape = (rows.stop - rows.start, cols.stop - cols.start)
    try:
        with rasterio.Env(GDAL_NUM_THREADS=_decode_threads()):
            if reduction == 1:
                return _dataset(path).read(1, window=window)
            # GDAL picks the overview of this factor (nearest: no resampling beyond what the overview holds)
            return _dataset(path).read(1, window=window, out_shape=out_shape, resampling=Resampling.nearest)
    except RasterioError as err:
        raise BandFileError(name or path, f"reading window {window} failed ({err})") from None


class WindowReader:
    """Array-like view of band 1 of a raster file; indexing reads a window. Picklable (holds the path only).

    The base of every band reader that :func:`dask.array.from_array` wraps (the decoded copy's reader reads its
    windows elsewhere and falls back to the file)."""

    def __init__(self, info: RasterInfo) -> None:
        self.info = info
        self.shape = info.shape
        self.dtype = np.dtype(info.dtype)
        self.ndim = 2

    def window(self, key: tuple[slice, slice]) -> tuple[slice, slice]:
        """The rows and columns that ``key`` (Dask's slices, possibly open-ended) selects, with explicit bounds."""
        rows, cols = (slice(*k.indices(n)[:2]) for k, n in zip(key, self.shape))
        return rows, cols

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rows, cols = self.window(key)
        return read_window(self.info.path, rows, cols, self.info.name, self.info.reduction)


def lazy_raster(info: RasterInfo, chunks: tuple[int, int]) -> da.Array:
    """A Dask array of band 1 of ``info``'s file with ``chunks`` = (rows, cols); nothing is read yet."""
    return da.from_array(
        WindowReader(info),
        chunks=chunks,
        lock=False,
        asarray=False,
        # each read task carries the (tiny) reader instead of depending on one shared key: reads are then
        # root tasks, which the distributed scheduler queues instead of running all of them ahead of their
        # consumers (which held whole scenes in memory)
        inline_array=True,
        fancy=False,
        meta=np.empty((0, 0), dtype=info.dtype),
        name=f"read-{tokenize(info.path, info.shape, info.reduction, chunks)}",
    )
