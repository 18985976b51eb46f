"""Compiled last pass of :func:`.interpolation.bilinear_from_grid`: between two interpolated grid rows, per pixel.

numpy took ~8 passes over float64 images for it (two gathers of the grid rows, two products, a sum, two casts to
float32), each a fresh 33 MB array for a 2046² block. It runs once per band and chunk in the TOA conversion (the
per-pixel sun zenith) and once per angle and chunk in L2B: on the full Landsat job the TOA's calls alone took
~21 s of worker time. This loop computes each pixel with numpy's operations in numpy's order, in float64, and
rounds once to float32, so the values are the same bits (tested). A module of its own so that importing the
interpolation does not import numba.
"""

import numba
import numpy as np

__all__ = ["between_rows"]


@numba.njit(cache=True, nogil=True)
def between_rows(along_x: np.ndarray, row_index: np.ndarray, row_fraction: np.ndarray,
                 out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[i, j] = float32(along_x[r, j] * (1 - f) + along_x[r + 1, j] * f)`` with ``r = row_index[i]`` and
    ``f = row_fraction[i]`` (float64): ``along_x`` holds the grid's rows already interpolated along x."""
    for i in range(out.shape[0]):
        row = row_index[i]
        fraction = row_fraction[i]
        remainder = 1.0 - fraction
        for j in range(out.shape[1]):
            out[i, j] = along_x[row, j] * remainder + along_x[row + 1, j] * fraction
