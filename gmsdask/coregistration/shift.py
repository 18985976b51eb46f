"""Global co-registration: one matching window between a reference and a target image (AROSICS's ``COREG``).

Sign convention (AROSICS): ``x_shift_px``/``y_shift_px`` are the correction to apply to the target, in target
pixels, x to the right and y down; ``x_shift_m``/``y_shift_m`` are the correction to add to the target's map
origin (x east, y north): ``new_origin = (x0 + x_shift_m, y0 + y_shift_m)``. So ``x_shift_m = x_shift_px * gsd``
and ``y_shift_m = -y_shift_px * gsd``. The L2A level of gmsdask instead takes the displacement of the target's
content, ``l1b_shift_m = (dx east, dy north) = (-x_shift_m, -y_shift_m)`` (:attr:`ShiftResult.l2a_shift_m`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import xarray as xr

from ..algorithms.phase_correlation import MatchSettings, WindowMatch, margin_px, match_window
from .grid import CommonGrid, common_grid, image_geobox, on_grid

__all__ = ["ShiftResult", "GlobalWindowPlan", "calculate_shift", "plan_global_window", "window_shape", "prepare_pair"]

# The smallest window worth matching when the overlap is smaller than the requested window.
_MIN_WINDOW = 32


@dataclass(frozen=True)
class ShiftResult:
    """The shift of a target image relative to a reference image (AROSICS conventions, see the module doc).

    ``x_shift_px``, ``y_shift_px``: target pixels (x right, y down); ``x_shift_m``, ``y_shift_m``: metres (CRS
    units) added to the target's map origin, x east, y north; NaN when ``success`` is False.
    ``reliability``: percent (0-100). ``ssim_before``/``ssim_after``: SSIM of the matching windows before and
    after the correction. ``status``: ``"success"`` or ``"failed:<reason>"``. ``x_map``/``y_map``: window centre
    in the reference CRS. ``window_size``: (rows, cols) actually matched, common-grid pixels.
    """

    x_shift_px: float
    y_shift_px: float
    x_shift_m: float
    y_shift_m: float
    reliability: float
    ssim_before: float
    ssim_after: float
    success: bool
    status: str
    x_map: float = math.nan
    y_map: float = math.nan
    window_size: tuple[int, int] = (0, 0)

    @property
    def l2a_shift_m(self) -> tuple[float, float]:
        """The displacement of the target's content, (dx east, dy north) metres, as L2A's ``l1b_shift_m``
        takes it: ``(-x_shift_m, -y_shift_m)``; (0, 0) when the match failed (the scene goes on unshifted)."""
        if not self.success:
            return (0.0, 0.0)
        return (-self.x_shift_m, -self.y_shift_m)

    @classmethod
    def failed(cls, reason: str, *, ssim_before: float = math.nan, x_map: float = math.nan,
               y_map: float = math.nan, window_size: tuple[int, int] = (0, 0)) -> "ShiftResult":
        """A named failure: no shift, ``status="failed:<reason>"``."""
        status = reason if reason.startswith("failed:") else f"failed:{reason}"
        return cls(math.nan, math.nan, math.nan, math.nan, 0.0, ssim_before, math.nan, False, status,
                   x_map, y_map, window_size)


def window_shape(window_size: int | tuple[int, int]) -> tuple[int, int]:
    """(rows, cols) from an int or a pair (the config's ``coreg_window_size`` is (x, y); windows are square by
    default so the order only matters for non-square ones: given as (cols, rows) like AROSICS's ``ws``)."""
    if isinstance(window_size, (int, np.integer)):
        return int(window_size), int(window_size)
    cols, rows = (int(v) for v in window_size)
    return rows, cols


def prepare_pair(reference: xr.DataArray, target: xr.DataArray
                 ) -> tuple[CommonGrid, xr.DataArray, xr.DataArray] | None:
    """Both images on their common grid (lazily), or None when they do not overlap."""
    ref_gbox = image_geobox(reference, "reference")
    tgt_gbox = image_geobox(target, "target")
    grid = common_grid(ref_gbox, tgt_gbox)
    if grid is None:
        return None
    return grid, on_grid(reference, ref_gbox, grid.geobox), on_grid(target, tgt_gbox, grid.geobox)


def to_result(match: WindowMatch, grid: CommonGrid, row: int, col: int, window: tuple[int, int]) -> ShiftResult:
    """A window match (common-grid pixels) as a :class:`ShiftResult` in target pixels and metres."""
    x_map, y_map = (float(v[0]) for v in grid.map_xy(np.array([row]), np.array([col])))
    if not match.success:
        return ShiftResult.failed(match.status, ssim_before=match.ssim_before, x_map=x_map, y_map=y_map,
                                  window_size=window)
    x_px, y_px, x_m, y_m = (float(v[0]) for v in grid.target_correction(
        np.array([row]), np.array([col]), np.array([match.x_shift_px]), np.array([match.y_shift_px])))
    return ShiftResult(
        x_shift_px=x_px, y_shift_px=y_px, x_shift_m=x_m, y_shift_m=y_m,
        reliability=match.reliability, ssim_before=match.ssim_before, ssim_after=match.ssim_after,
        success=True, status="success", x_map=x_map, y_map=y_map, window_size=window)


def _candidates(shape: tuple[int, int], reach: tuple[int, int]) -> list[tuple[int, int]]:
    """Window centres to try: the overlap centre, then eight positions a quarter of the overlap away."""
    rows, cols = shape
    out = []
    for fr, fc in [(0.5, 0.5), (0.25, 0.5), (0.75, 0.5), (0.5, 0.25), (0.5, 0.75),
                   (0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)]:
        r = min(max(int(rows * fr), reach[0]), rows - reach[0])
        c = min(max(int(cols * fc), reach[1]), cols - reach[1])
        if (r, c) not in out:
            out.append((r, c))
    return out


def _region(image: xr.DataArray, row: int, col: int, half: tuple[int, int], margin: int,
            window: tuple[int, int]) -> Any:
    """The matching region around common-grid pixel (row, col), lazy when ``image`` is."""
    r0, c0 = row - half[0] - margin, col - half[1] - margin
    return image[r0:r0 + window[0] + 2 * margin, c0:c0 + window[1] + 2 * margin].data


@dataclass(frozen=True)
class GlobalWindowPlan:
    """The global window of a pair, planned but not read: :attr:`first_regions` are the (lazy) reference and
    target regions of the first candidate position, which a caller may compute together with other work (L1B
    computes them with the tie points, so that the reference's blocks are read once, in one round trip) and
    hand to :meth:`finish`. A failure known before any pixel is read is :attr:`outcome`."""

    outcome: ShiftResult | None
    grid: CommonGrid | None = None
    ref: xr.DataArray | None = None
    tgt: xr.DataArray | None = None
    window: tuple[int, int] = (0, 0)
    candidates: tuple[tuple[int, int], ...] = ()
    settings: MatchSettings | None = None

    @property
    def first_regions(self) -> list[Any]:
        """The reference and target regions of the first candidate (Dask arrays, or numpy when in memory)."""
        if self.outcome is not None:
            return []
        return [_region(image, *self.candidates[0], self._half, self._margin, self.window)
                for image in (self.ref, self.tgt)]

    @property
    def _half(self) -> tuple[int, int]:
        return self.window[0] // 2, self.window[1] // 2

    @property
    def _margin(self) -> int:
        return margin_px(self.settings.max_shift)

    def finish(self, first_regions: Sequence[np.ndarray]) -> ShiftResult:
        """The shift, from the computed :attr:`first_regions`; the other candidate positions are read (one at a
        time) only when the first one has too little valid data."""
        if self.outcome is not None:
            return self.outcome
        first: ShiftResult | None = None
        for n, (row, col) in enumerate(self.candidates):
            regions = first_regions if n == 0 else dask.compute(
                *(_region(image, row, col, self._half, self._margin, self.window) for image in (self.ref, self.tgt)))
            match = match_window(np.asarray(regions[0]), np.asarray(regions[1]), self.window, self.settings)
            result = to_result(match, self.grid, row, col, self.window)
            if match.success or "valid data" not in match.status:
                return result
            first = first or result
        return first


def plan_global_window(pair: tuple[CommonGrid, xr.DataArray, xr.DataArray] | None, *,
                       window_size: int | tuple[int, int] = 256, max_shift: float = 5,
                       position: tuple[float, float] | None = None) -> GlobalWindowPlan:
    """:func:`calculate_shift` up to the reading of pixels, on a pair from :func:`prepare_pair` (the other
    parameters as there)."""
    if pair is None:
        return GlobalWindowPlan(ShiftResult.failed("no overlap"))
    grid, ref, tgt = pair
    settings = MatchSettings(max_shift=float(max_shift))
    margin = margin_px(max_shift)
    rows, cols = grid.geobox.shape
    req_rows, req_cols = window_shape(window_size)
    window = (min(req_rows, (rows - 2 * margin) // 2 * 2), min(req_cols, (cols - 2 * margin) // 2 * 2))
    if min(window) < _MIN_WINDOW:
        return GlobalWindowPlan(ShiftResult.failed(f"overlap smaller than the matching window ({rows} x {cols} px)"))
    half = (window[0] // 2, window[1] // 2)
    reach = (half[0] + margin, half[1] + margin)
    if position is not None:
        col_f, row_f = ~grid.geobox.affine * (float(position[0]), float(position[1]))
        if not (0 <= row_f < rows and 0 <= col_f < cols):
            return GlobalWindowPlan(ShiftResult.failed(f"position {tuple(position)} is outside the overlap",
                                                       window_size=window))
        # as AROSICS does, a window reaching beyond the overlap is moved inwards until it fits
        row = min(max(int(math.floor(row_f)), reach[0]), rows - reach[0])
        col = min(max(int(math.floor(col_f)), reach[1]), cols - reach[1])
        candidates = [(row, col)]
    else:
        candidates = _candidates((rows, cols), reach)
    return GlobalWindowPlan(None, grid, ref, tgt, window, tuple(candidates), settings)


def calculate_shift(reference: xr.DataArray, target: xr.DataArray, *, window_size: int | tuple[int, int] = 256,
                    max_shift: float = 5, position: tuple[float, float] | None = None) -> ShiftResult:
    """The global shift of ``target`` relative to ``reference`` from one matching window.

    Parameters
    ----------
    reference, target
        Georeferenced 2-D images (x/y coordinates and a CRS, rioxarray or odc-geo), Dask-backed or not, on any
        grids; NaN (or the array's declared ``nodata``) marks no data, e.g. clouds masked by the caller. They are
        matched on the common grid (reference CRS, coarser pixel size), only the windows' pixels are read.
    window_size
        Matching window, pixels of the common grid: an int, or (cols, rows).
    max_shift
        Largest accepted shift, common-grid pixels.
    position
        Window centre (x, y) in the reference's CRS (moved inwards when the window would reach beyond the
        overlap); default: the centre of the overlap, or if the window there has too little valid data (clouds,
        no data) the first of eight positions around it that has enough.

    Returns
    -------
    ShiftResult
        AROSICS conventions (see the module doc). Content problems are named outcomes with ``success=False``:
        ``failed:no overlap``, ``failed:target: no valid data in the window``, ``failed:... flat window ...``,
        ``failed:shift exceeds max_shift``, ``failed:overlap smaller than the matching window ...``,
        ``failed:position ... is outside the overlap``.
    """
    plan = plan_global_window(prepare_pair(reference, target), window_size=window_size, max_shift=max_shift,
                              position=position)
    regions = plan.first_regions
    return plan.finish(list(dask.compute(*regions)) if regions else [])
