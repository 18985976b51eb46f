"""Local co-registration: a grid of tie points, each a matching window, computed as Dask tasks.

Both images are brought onto their common grid (lazily) and the grid points are grouped in blocks of k x k.
One task per block matches its points from the pixels their windows reach (half a window plus the iteration
margin around each point), read from the images' blocks under them (:mod:`gmsdask.io.block_windows`): a graph
of a few tasks per block, neither one task per point nor the whole image in one task. The table then gets
AROSICS's column names and its three-level outlier filter (:mod:`gmsdask.algorithms.tie_point_filter`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
from dask.utils import apply

from ..algorithms.phase_correlation import FAILURE_REASONS, MatchSettings, margin_px, match_window, single_threaded_blas
from ..algorithms.tie_point_filter import FilterSettings, outlier_reasons
from ..algorithms.warp import assemble_window
from ..io.block_windows import window_blocks
from .grid import CommonGrid
from .shift import prepare_pair, window_shape

__all__ = ["TIE_POINT_COLUMNS", "TiePointPlan", "tie_points", "plan_tie_points", "point_positions"]

#: Columns of the tie-point table (AROSICS's names, plus ``REASON``: why a point is an outlier, "" if valid).
TIE_POINT_COLUMNS = ["POINT_ID", "X_IM", "Y_IM", "X_MAP", "Y_MAP", "X_SHIFT_PX", "Y_SHIFT_PX", "X_SHIFT_M",
                     "Y_SHIFT_M", "ABS_SHIFT", "RELIABILITY", "SSIM_BEFORE", "SSIM_AFTER", "SSIM_IMPROVED",
                     "OUTLIER", "REASON"]

# Grid points per block side: 36 windows (~0.3 s of work) per task keep the ~1 ms task overhead negligible and
# still give a few dozen tasks for a tile's grid.
_POINTS_PER_BLOCK_SIDE = 6
# Failure codes stored in the block results ("" = matched).
_REASONS = ("", *FAILURE_REASONS)
# Per-point output fields of a block task, in this order.
_FIELDS = ("row", "col", "centre_valid", "dx", "dy", "reliability", "ssim_before", "ssim_after", "reason")


def point_positions(n: int, offset: float, grid_res: int, reach: int) -> np.ndarray:
    """Common-grid indices along one axis of the points whose target pixel index is a multiple of ``grid_res``
    and whose window (``reach`` px either side) fits in ``n`` pixels. ``offset``: target pixel index of
    common-grid pixel 0 along that axis (the grids coincide up to this offset when the target is on the common
    grid; otherwise points sit at multiples of ``grid_res`` of the common grid)."""
    first = math.ceil((reach + offset) / grid_res) * grid_res - offset
    last = n - reach
    if first > last:
        return np.zeros(0, dtype=int)
    return np.round(np.arange(first, last + 1e-9, grid_res)).astype(int)


def _point_blocks(positions: np.ndarray, k: int) -> list[np.ndarray]:
    """The points along one axis in groups of k consecutive ones (one block of tasks' worth)."""
    return [positions[i:i + k] for i in range(0, len(positions), k)]


def _match_block(ref: list[np.ndarray], ref_layout: tuple, tgt: list[np.ndarray], tgt_layout: tuple, *,
                 rows: np.ndarray, cols: np.ndarray, origin: tuple[int, int], window: tuple[int, int],
                 settings: MatchSettings, capacity: int) -> np.ndarray:
    """Match every point of one block of ``rows`` x ``cols`` common-grid points, from the blocks of both images
    under the block's windows (stitched by their ``(n_block_cols, inner_rows, inner_cols)`` layouts into
    windows whose first pixel is common-grid pixel ``origin``); returns (1, 1, capacity, len(_FIELDS))
    float64, unused rows NaN."""
    ref_image = assemble_window(ref, *ref_layout)
    tgt_image = assemble_window(tgt, *tgt_layout)
    margin = margin_px(settings.max_shift)
    half = (window[0] // 2, window[1] // 2)
    out = np.full((1, 1, capacity, len(_FIELDS)), np.nan)
    i = 0
    for row in rows:
        for col in cols:
            r0 = row - half[0] - margin - origin[0]
            c0 = col - half[1] - margin - origin[1]
            sl = (slice(r0, r0 + window[0] + 2 * margin), slice(c0, c0 + window[1] + 2 * margin))
            ref_region, tgt_region = ref_image[sl], tgt_image[sl]
            centre = (half[0] + margin, half[1] + margin)
            valid = np.isfinite(ref_region[centre]) and np.isfinite(tgt_region[centre])
            m = match_window(ref_region, tgt_region, window, settings) if valid else None
            reason = m.status.removeprefix("failed:") if m is not None and not m.success else ""
            out[0, 0, i] = (row, col, float(valid),
                            m.x_shift_px if m else np.nan, m.y_shift_px if m else np.nan,
                            m.reliability if m else np.nan, m.ssim_before if m else np.nan,
                            m.ssim_after if m else np.nan, _REASONS.index(reason))
            i += 1
    return out


def _grid_offset(grid: CommonGrid) -> tuple[float, float]:
    """Target pixel index (row, col) of common-grid pixel [0, 0], when the grids share a pixel size and CRS."""
    col, row = grid.target_image_xy(np.array([0]), np.array([0]))
    return float(row[0]), float(col[0])


def _point_graph(ref: xr.DataArray, tgt: xr.DataArray, grid: CommonGrid, grid_res: int,
                 window: tuple[int, int], settings: MatchSettings) -> da.Array | None:
    margin = margin_px(settings.max_shift)
    depth = (window[0] // 2 + margin, window[1] // 2 + margin)  # a window's reach from its centre
    shape = grid.geobox.shape
    offset = _grid_offset(grid) if grid.is_target_grid else (0.0, 0.0)
    rows = point_positions(shape[0], offset[0], grid_res, depth[0])
    cols = point_positions(shape[1], offset[1], grid_res, depth[1])
    if rows.size == 0 or cols.size == 0:
        return None
    k = _POINTS_PER_BLOCK_SIDE
    rows_by_block, cols_by_block = _point_blocks(rows, k), _point_blocks(cols, k)
    images = [image.data if isinstance(image.data, da.Array) else da.from_array(np.asarray(image.data))
              for image in (ref, tgt)]
    name = f"coreg-tie-points-{tokenize(*(image.name for image in images), grid_res, window, settings)}"
    layer: dict = {}
    for bi, block_rows in enumerate(rows_by_block):
        # the pixels the block's windows reach: from the first point's window to the last one's
        pixel_rows = slice(int(block_rows[0] - depth[0]), int(block_rows[-1] - depth[0] + window[0] + 2 * margin))
        for bj, block_cols in enumerate(cols_by_block):
            pixel_cols = slice(int(block_cols[0] - depth[1]),
                               int(block_cols[-1] - depth[1] + window[1] + 2 * margin))
            reads = []
            for which, image in zip(("reference", "target"), images):
                keys, *layout = window_blocks(image, pixel_rows, pixel_cols, layer, (f"{name}-{which}", bi, bj))
                reads += [keys, tuple(layout)]
            layer[(name, bi, bj, 0, 0)] = (apply, _match_block, reads, {
                "rows": block_rows, "cols": block_cols, "origin": (pixel_rows.start, pixel_cols.start),
                "window": window, "settings": settings, "capacity": k * k})
    graph = HighLevelGraph.from_collections(name, layer, dependencies=images)
    return da.Array(graph, name, chunks=((1,) * len(rows_by_block), (1,) * len(cols_by_block), (k * k,),
                                         (len(_FIELDS),)), dtype=np.float64)


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=object if name == "REASON" else bool if name in (
        "OUTLIER", "SSIM_IMPROVED") else float) for name in TIE_POINT_COLUMNS})


def tie_points(reference: xr.DataArray, target: xr.DataArray, *, grid_res: int = 100,
               window_size: int | tuple[int, int] = 256, max_shift: float = 5,
               min_reliability: float = 60) -> pd.DataFrame:
    """Tie points on a regular grid of the target, one matching window each (AROSICS's ``CoRegPoints_grid``).

    Parameters
    ----------
    reference, target
        Georeferenced 2-D images as for :func:`gmsdask.coregistration.calculate_shift` (NaN = no data).
    grid_res
        Spacing of the points, target pixels (common-grid pixels when the target is resampled).
    window_size, max_shift
        As for ``calculate_shift``.
    min_reliability
        Points below this reliability (percent) are outliers (first filter level).

    Returns
    -------
    pandas.DataFrame
        One row per grid point whose window fits the overlap and whose centre pixel has data in both images,
        with :data:`TIE_POINT_COLUMNS`: ``X_IM``/``Y_IM`` target pixel (column, row); ``X_MAP``/``Y_MAP``
        reference-CRS coordinates of that pixel's centre; shifts in AROSICS's convention (target pixels and
        map-origin metres); ``ABS_SHIFT`` metres; ``RELIABILITY`` percent; ``OUTLIER`` and its ``REASON``
        (``"failed:<why>"`` for a window that could not be matched, ``"reliability"``, ``"ssim"`` or
        ``"ransac"`` for a filtered one). The computation runs on the current Dask scheduler.
    """
    plan = plan_tie_points(prepare_pair(reference, target), grid_res=grid_res, window_size=window_size,
                           max_shift=max_shift)
    if plan.graph is None:
        return plan.table(None, min_reliability)
    with single_threaded_blas():  # process-wide, so it covers the scheduler's threads too
        (values,) = dask.compute(plan.graph)  # a few tasks per block of k x k points, on the current scheduler
    return plan.table(values, min_reliability)


@dataclass(frozen=True)
class TiePointPlan:
    """The tie points of a pair, planned but not matched: ``graph`` (a Dask array, None when no point fits the
    overlap) computes the matches, which a caller may compute together with other work (under
    :func:`gmsdask.algorithms.phase_correlation.single_threaded_blas`) and hand to :meth:`table`."""

    graph: da.Array | None
    grid: CommonGrid | None

    def table(self, values: np.ndarray | None, min_reliability: float = 60) -> pd.DataFrame:
        """The tie-point table of :func:`tie_points` from the computed ``graph``."""
        if values is None or self.grid is None:
            return _empty_table()
        return _table(values.reshape(-1, len(_FIELDS)), self.grid, min_reliability)


def plan_tie_points(pair: tuple[CommonGrid, xr.DataArray, xr.DataArray] | None, *, grid_res: int = 100,
                    window_size: int | tuple[int, int] = 256, max_shift: float = 5) -> TiePointPlan:
    """:func:`tie_points` up to the matching, on a pair from :func:`~gmsdask.coregistration.shift.prepare_pair`
    (the other parameters as there)."""
    if pair is None:
        return TiePointPlan(None, None)
    grid, ref, tgt = pair
    settings = MatchSettings(max_shift=float(max_shift))
    return TiePointPlan(_point_graph(ref, tgt, grid, int(grid_res), window_shape(window_size), settings), grid)


def _table(values: np.ndarray, grid: CommonGrid, min_reliability: float) -> pd.DataFrame:
    values = values[np.isfinite(values[:, 0]) & (values[:, 2] == 1.0)]  # drop padding and points without data
    if values.size == 0:
        return _empty_table()
    rows, cols = values[:, 0].astype(int), values[:, 1].astype(int)
    x_im, y_im = grid.target_image_xy(rows, cols)
    x_map, y_map = grid.map_xy(rows, cols)
    x_px, y_px, x_m, y_m = grid.target_correction(rows, cols, values[:, 3], values[:, 4])
    table = pd.DataFrame({
        "X_IM": np.round(x_im, 6), "Y_IM": np.round(y_im, 6), "X_MAP": x_map, "Y_MAP": y_map,
        "X_SHIFT_PX": x_px, "Y_SHIFT_PX": y_px, "X_SHIFT_M": x_m, "Y_SHIFT_M": y_m,
        "RELIABILITY": values[:, 5], "SSIM_BEFORE": values[:, 6], "SSIM_AFTER": values[:, 7],
    })
    table["ABS_SHIFT"] = np.hypot(table["X_SHIFT_M"], table["Y_SHIFT_M"])
    table["SSIM_IMPROVED"] = table["SSIM_AFTER"] >= table["SSIM_BEFORE"]
    failure = np.array([_REASONS[int(code)] for code in values[:, 8]], dtype=object)
    matched = failure == ""
    filtered = outlier_reasons(
        table["X_IM"].to_numpy(), table["Y_IM"].to_numpy(), table["X_SHIFT_PX"].to_numpy(),
        table["Y_SHIFT_PX"].to_numpy(), table["RELIABILITY"].to_numpy(), table["SSIM_BEFORE"].to_numpy(),
        table["SSIM_AFTER"].to_numpy(), matched, FilterSettings(min_reliability=float(min_reliability)))
    table["REASON"] = np.where(matched, filtered, np.array([f"failed:{why}" for why in failure], dtype=object))
    table["OUTLIER"] = table["REASON"] != ""
    table = table.sort_values(["Y_IM", "X_IM"], kind="stable").reset_index(drop=True)
    table.insert(0, "POINT_ID", np.arange(len(table)))
    return table[TIE_POINT_COLUMNS]
