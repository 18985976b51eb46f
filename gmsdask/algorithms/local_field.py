"""A smooth local displacement field from co-registration tie points (pure numpy/scipy).

Used by L1B with ``coreg_local``: after AROSICS's three outlier levels (:mod:`.tie_point_filter`) a fourth one,
local to the field, drops points that disagree with a robust low-order (quadratic) surface through their
neighbours' shifts; the rest are fitted by a smoothed thin-plate spline (scipy's ``RBFInterpolator``; its affine
part is not penalised, so translations, scale and rotation-like fields are reproduced exactly) and the field is
sampled on a coarse grid that L2A interpolates bilinearly per pixel. The same spline carries the points'
reliability, so the accuracy layer follows the points too.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import RBFInterpolator

__all__ = ["quadratic_outliers", "fit_local_field", "bilinear_at"]

# A robust quadratic surface needs clearly more points than its six coefficients.
_MIN_QUADRATIC_POINTS = 12


def _design(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones_like(x), x, y, x * x, x * y, y * y])


def quadratic_outliers(x: np.ndarray, y: np.ndarray, dx: np.ndarray, dy: np.ndarray, *, k: float = 4.0,
                       min_threshold: float = 0.3, iterations: int = 3) -> np.ndarray:
    """Points whose shift departs from a robust quadratic surface fitted to all points (True = outlier).

    ``x``/``y``: positions (any unit, e.g. target pixels); ``dx``/``dy``: shifts in pixels. The surface is fitted
    by least squares, points beyond ``k`` scaled median absolute deviations of the residual vector length (at
    least ``min_threshold`` px, so that sub-noise scatter is never flagged) are dropped, and the fit is repeated
    ``iterations`` times on the kept points. With fewer than 12 points nothing is flagged.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    outlier = np.zeros(n, dtype=bool)
    if n < _MIN_QUADRATIC_POINTS:
        return outlier
    # centred and scaled so that the normal equations stay well conditioned for map coordinates too
    scale = max(float(np.ptp(x)), float(np.ptp(y)), 1e-9)
    design = _design((x - x.mean()) / scale, (y - y.mean()) / scale)
    values = np.column_stack([dx, dy]).astype(float)
    for _ in range(iterations):
        keep = ~outlier
        if keep.sum() < _MIN_QUADRATIC_POINTS:
            break
        coef, *_ = np.linalg.lstsq(design[keep], values[keep], rcond=None)
        residual = np.hypot(*(values - design @ coef).T)
        mad = float(np.median(np.abs(residual[keep] - np.median(residual[keep]))))
        limit = max(float(np.median(residual[keep])) + k * 1.4826 * mad, min_threshold)
        flagged = residual > limit
        if np.array_equal(flagged, outlier):
            break
        outlier = flagged
    return outlier


def fit_local_field(x: np.ndarray, y: np.ndarray, values: np.ndarray, grid_x: np.ndarray, grid_y: np.ndarray,
                    *, smoothing: float = 0.01) -> np.ndarray:
    """A smoothed thin-plate spline through ``values`` (n points x k quantities) at ``(x, y)``, evaluated at
    ``grid_x``/``grid_y`` (same shape each); returns ``grid_x.shape + (k,)``.

    Coordinates are scaled by the points' extent, so ``smoothing`` does not depend on the units or the image size
    (0.01: the smallest field error on the synthetic fields of ``tests/test_coreg_local.py``, see
    docs/coregistration.md). Each quantity is clipped to the range the points span widened by half of it on
    either side: beyond the outermost points the spline continues the trend (the image edges lie a window's
    reach beyond them) but must not run away far from its data. With fewer than three points the field is their
    mean (a constant).
    """
    points = np.column_stack([x, y]).astype(float)
    values = np.asarray(values, dtype=float).reshape(len(points), -1)
    targets = np.column_stack([np.ravel(grid_x), np.ravel(grid_y)]).astype(float)
    if len(points) < 3:
        mean = values.mean(axis=0) if len(points) else np.zeros(values.shape[1])
        field = np.broadcast_to(mean, (len(targets), values.shape[1])).copy()
    else:
        centre = points.mean(axis=0)
        scale = max(float(np.ptp(points, axis=0).max()), 1e-9)
        spline = RBFInterpolator((points - centre) / scale, values, kernel="thin_plate_spline", smoothing=smoothing)
        span = np.ptp(values, axis=0)
        field = np.clip(spline((targets - centre) / scale), values.min(axis=0) - span / 2,
                        values.max(axis=0) + span / 2)
    return field.reshape(*np.shape(grid_x), values.shape[1])


def bilinear_at(grid_y: np.ndarray, grid_x: np.ndarray, values: np.ndarray, y: np.ndarray,
                x: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of ``values[..., grid_y, grid_x]`` (leading axes: quantities) at scattered points
    ``(y, x)`` of any shape; the grid axes are strictly monotonic (either direction), points beyond the grid take
    the value of the nearest edge (constant extrapolation). Element-wise per point, so a point gets the same
    value whichever other points it is computed with. Returns ``values.shape[:-2] + y.shape`` float64."""
    iy, fy = _cell(np.asarray(grid_y, dtype=float), np.asarray(y, dtype=float))
    ix, fx = _cell(np.asarray(grid_x, dtype=float), np.asarray(x, dtype=float))
    v = np.asarray(values, dtype=float)
    top = v[..., iy, ix] * (1.0 - fx) + v[..., iy, ix + 1] * fx
    bottom = v[..., iy + 1, ix] * (1.0 - fx) + v[..., iy + 1, ix + 1] * fx
    return top * (1.0 - fy) + bottom * fy


def _cell(grid: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the grid interval holding each point and the fraction along it (clamped to [0, 1])."""
    if len(grid) == 1:
        grid = np.array([grid[0], grid[0] + 1.0])
    if grid[-1] < grid[0]:
        index, fraction = _cell(grid[::-1], points)
        return len(grid) - 2 - index, 1.0 - fraction
    index = np.clip(np.searchsorted(grid, points, side="right") - 1, 0, len(grid) - 2)
    fraction = np.clip((points - grid[index]) / (grid[index + 1] - grid[index]), 0.0, 1.0)
    return index, fraction
