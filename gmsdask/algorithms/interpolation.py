"""Interpolation of coarse grids (angle grids) onto pixel grids (numpy; the per-pixel pass compiled)."""

from __future__ import annotations

import numpy as np

__all__ = ["linear_weights", "bilinear_from_grid", "filled_from_nearest"]


def _segments(grid: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each point, the index ``i`` of its grid segment [i, i+1] and its fraction along it.

    ``grid`` must be strictly monotonic (increasing or decreasing); points outside are extrapolated linearly
    from the outermost segment, so a pixel just beyond a coarse angle grid still gets a value.
    """
    grid = np.asarray(grid, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    descending = grid[-1] < grid[0]
    ordered = grid[::-1] if descending else grid
    index = np.clip(np.searchsorted(ordered, points) - 1, 0, len(grid) - 2)
    fraction = (points - ordered[index]) / (ordered[index + 1] - ordered[index])
    if descending:  # segment i of the reversed grid is segment n-2-i of the original, walked backwards
        index, fraction = len(grid) - 2 - index, 1.0 - fraction
    return index, fraction


def linear_weights(grid: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Matrix ``W`` (len(points) x len(grid)) with ``W @ f(grid) == linear interpolation of f at points``."""
    if len(grid) == 1:
        return np.ones((len(points), 1))
    index, fraction = _segments(grid, points)
    weights = np.zeros((len(points), len(grid)))
    rows = np.arange(len(points))
    weights[rows, index] = 1.0 - fraction
    weights[rows, index + 1] = fraction
    return weights


def bilinear_from_grid(grid_y: np.ndarray, grid_x: np.ndarray, values: np.ndarray,
                       y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of ``values[grid_y, grid_x]`` at every (y, x) of a rectilinear pixel grid (float32).

    Separable: first along x for the grid rows the pixels fall between, then along y. Every output pixel is
    computed from the same operands in the same order whatever block it belongs to (element-wise arithmetic, no
    matrix product whose summation order depends on the block's shape), so chunked and whole reads agree bit for
    bit. NaN grid nodes propagate, so fill them first.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(grid_y) == 1 or len(grid_x) == 1:
        wide = np.broadcast_to(values, (max(len(grid_y), 2), max(len(grid_x), 2)))
        grid_y = grid_y if len(grid_y) > 1 else np.array([grid_y[0], grid_y[0] + 1.0])
        grid_x = grid_x if len(grid_x) > 1 else np.array([grid_x[0], grid_x[0] + 1.0])
        values = np.ascontiguousarray(wide)
    row_index, row_fraction = _segments(grid_y, y)
    col_index, col_fraction = _segments(grid_x, x)
    first, last = int(row_index.min()), int(row_index.max()) + 2
    nodes = values[first:last]
    along_x = nodes[:, col_index] * (1.0 - col_fraction) + nodes[:, col_index + 1] * col_fraction
    # the pass over every pixel, compiled (numpy's arithmetic, one float64 -> float32 rounding); imported here so
    # that numba's import is paid by the processes that interpolate
    from ._interpolation_kernels import between_rows

    out = np.empty((len(row_index), len(col_index)), dtype=np.float32)
    between_rows(np.ascontiguousarray(along_x), np.ascontiguousarray(row_index - first, dtype=np.int64),
                 np.ascontiguousarray(row_fraction, dtype=np.float64), out)
    return out


def filled_from_nearest(values: np.ndarray) -> np.ndarray:
    """``values`` (float64) with each NaN node taking the value of its nearest node that has one (unchanged when no
    node or every node is NaN): coarse angle grids have no value outside every detector."""
    from scipy import ndimage

    values = np.asarray(values, dtype=np.float64)
    missing = ~np.isfinite(values)
    if not missing.any() or missing.all():
        return values
    nearest = ndimage.distance_transform_edt(missing, return_distances=False, return_indices=True)
    return values[tuple(nearest)]
