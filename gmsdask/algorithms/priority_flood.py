"""Grayscale hole filling by priority flood (Barnes, Lehman & Mulla 2014, "Priority-Flood", with its pit queue).

Every pixel is raised to its *spill level*: the lowest value at which a path of 8-connected pixels leads from it
to the image border, never below its own value. That is the morphological reconstruction by erosion of the
image from its border (Soille 2003), the operator Fmask's flood-fill uses, and the result equals
``skimage.morphology.reconstruction(marker, image, method="erosion")`` with the marker at the image maximum
inside and the image on the border (tested against it).

Why not scikit-image's ``reconstruction``: it sorts the marker and the image together twice (an ``argsort`` and a
``rank_order`` of 2n float64 values). On a Landsat scene's 60 m Fmask shadow grid (3870 x 3805) the four fills of
the potential-shadow layer took 35 s of a 43 s task that every later block of the scene waits for. The flood
visits each pixel once: a heap holds only the pixels above the current spill level, a FIFO queue the ones
below it. Compiled with numba (once per process, then cached on disk), a fill of that grid takes 2.5 s instead of
8.8 s, and the shadow task 15 s instead of 43 s.

Memory: the flood raises the pixels in place (a pixel's own value is read once, when the flood first reaches it)
and its queues hold 32-bit pixel indices where the grid has fewer than 2**31 pixels. A fill of a whole
Sentinel-2 tile's 60 m grid (1830², float32) takes ~17 MiB above its input instead of ~57 MiB (a copy of the image
and 64-bit indices), and the shadow task runs two fills at once.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["fill_holes_from_border"]


def fill_holes_from_border(image: np.ndarray, *, overwrite: bool = False) -> np.ndarray:
    """``image`` (2-D, finite) with every basin not connected to the border raised to its spill level, in the
    image's float type (float32 stays float32: half the memory traffic of the flood's heap).

    The border pixels keep their values; they are where water drains (pass ``max(border, background)`` in the
    border pixels to drain at a background level, as Fmask does). ``overwrite``: fill ``image`` itself where it
    is a C-contiguous float32 or float64 array (no copy; the caller's array is the result).
    """
    dtype = np.float32 if image.dtype == np.float32 else np.float64
    values = np.ascontiguousarray(image, dtype=dtype)
    if values.ndim != 2:
        raise ValueError(f"fill_holes_from_border needs a 2-D image, got {values.ndim} dimensions")
    if not np.isfinite(values).all():
        raise ValueError("fill_holes_from_border needs finite values (replace NaN before filling)")
    if values is image and not overwrite:
        values = values.copy()
    if min(values.shape) < 3:
        return values
    index_type = np.int32 if values.size < 2**31 else np.int64
    _flood(values, np.empty(0, dtype=index_type))
    return values


@numba.njit(cache=True, nogil=True)
def _push(heap_value: np.ndarray, heap_index: np.ndarray, size: int, value: float, index: int) -> int:
    position = size
    while position > 0:
        parent = (position - 1) // 2
        if heap_value[parent] <= value:
            break
        heap_value[position] = heap_value[parent]
        heap_index[position] = heap_index[parent]
        position = parent
    heap_value[position] = value
    heap_index[position] = index
    return size + 1


@numba.njit(cache=True, nogil=True)
def _pop(heap_value: np.ndarray, heap_index: np.ndarray, size: int) -> tuple[int, int]:
    top = heap_index[0]
    size -= 1
    last_value, last_index = heap_value[size], heap_index[size]
    position = 0
    while True:
        child = 2 * position + 1
        if child >= size:
            break
        if child + 1 < size and heap_value[child + 1] < heap_value[child]:
            child += 1
        if heap_value[child] >= last_value:
            break
        heap_value[position] = heap_value[child]
        heap_index[position] = heap_index[child]
        position = child
    if size > 0:
        heap_value[position] = last_value
        heap_index[position] = last_index
    return top, size


@numba.njit(cache=True, nogil=True)
def _flood(values: np.ndarray, index_type: np.ndarray) -> None:
    """Fill ``values`` in place; ``index_type``: an empty array of the integer type of the queues' indices."""
    rows, cols = values.shape
    # one array for the image and the result: a pixel's own value is read when the flood first reaches it (and
    # closes it); from then on it holds the pixel's spill level
    filled = values.ravel()
    closed = np.zeros(rows * cols, dtype=np.bool_)
    heap_value = np.empty(2 * (rows + cols), dtype=values.dtype)
    heap_index = np.empty(2 * (rows + cols), dtype=index_type.dtype)
    pit = np.empty(rows * cols, dtype=index_type.dtype)
    head, tail, size = 0, 0, 0
    for r in range(rows):
        for c in range(cols):
            if r == 0 or c == 0 or r == rows - 1 or c == cols - 1:
                i = r * cols + c
                closed[i] = True
                if size == heap_value.size:
                    heap_value = _grown(heap_value)
                    heap_index = _grown(heap_index)
                size = _push(heap_value, heap_index, size, filled[i], i)
    while head < tail or size > 0:
        if head < tail:
            i = pit[head]
            head += 1
        else:
            i, size = _pop(heap_value, heap_index, size)
        level = filled[i]
        r, c = i // cols, i % cols
        for dr in range(-1, 2):
            rr = r + dr
            if rr < 0 or rr >= rows:
                continue
            for dc in range(-1, 2):
                cc = c + dc
                if cc < 0 or cc >= cols:
                    continue
                n = rr * cols + cc
                if closed[n]:
                    continue
                closed[n] = True
                if filled[n] <= level:
                    filled[n] = level  # in a basin: at the spill level, and no lower pixel can come first
                    pit[tail] = n
                    tail += 1
                else:
                    if size == heap_value.size:
                        heap_value = _grown(heap_value)
                        heap_index = _grown(heap_index)
                    size = _push(heap_value, heap_index, size, filled[n], n)


@numba.njit(cache=True, nogil=True)
def _grown(array: np.ndarray) -> np.ndarray:
    bigger = np.empty(2 * array.size, dtype=array.dtype)
    bigger[:array.size] = array
    return bigger
