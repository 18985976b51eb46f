"""Interpolation of coarse grids (angle grids) onto pixel grids (pure numpy)."""

from __future__ import annotations

import numpy as np

__all__ = ["linear_weights", "bilinear_from_grid"]


def linear_weights(grid: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Matrix ``W`` (len(points) x len(grid)) with ``W @ f(grid) == linear interpolation of f at points``.

    ``grid`` must be strictly monotonic (increasing or decreasing); points outside are extrapolated linearly
    from the two outermost grid nodes, so a pixel just beyond a coarse angle grid still gets a value.
    """
    grid = np.asarray(grid, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    if len(grid) == 1:
        return np.ones((len(points), 1))
    ascending = grid[-1] > grid[0]
    ordered = grid if ascending else grid[::-1]
    index = np.clip(np.searchsorted(ordered, points) - 1, 0, len(grid) - 2)
    fraction = (points - ordered[index]) / (ordered[index + 1] - ordered[index])
    weights = np.zeros((len(points), len(grid)))
    rows = np.arange(len(points))
    weights[rows, index] = 1.0 - fraction
    weights[rows, index + 1] = fraction
    return weights if ascending else weights[:, ::-1]


def bilinear_from_grid(grid_y: np.ndarray, grid_x: np.ndarray, values: np.ndarray,
                       y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of ``values[grid_y, grid_x]`` at every (y, x) of a rectilinear pixel grid.

    Separable: ``Wy @ values @ Wx.T``; costs two small matrix products instead of per-pixel look-ups.
    NaN grid nodes propagate, so fill them before calling.
    """
    return linear_weights(grid_y, y) @ np.asarray(values, dtype=np.float64) @ linear_weights(grid_x, x).T
