"""Local co-registration for L2A (``coreg_local``): the filtered tie-point table and its smooth field, as the
scene's small ``l1b`` group.

From :class:`CoregResult` (tie points on the ``coreg_grid_res`` grid, already through AROSICS's three filter
levels: reliability, SSIM, RANSAC), a fourth level drops points departing from a robust quadratic surface of
their shifts (:func:`gmsdask.algorithms.local_field.quadratic_outliers`, ``REASON`` ``"field"``); a smoothed
thin-plate spline through the remaining points gives the content displacement and the reliability on a coarse
grid over the target's band (:func:`gmsdask.algorithms.local_field.fit_local_field`). With fewer than
``min_points`` valid points (or a failed match) there is no field: the status says ``fallback:global (...)`` and
L2A applies the global shift. Everything here is one small eager step on the table (no pixels).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from odc.geo.geobox import GeoBox
from pyproj import CRS

from ..algorithms.local_field import fit_local_field, quadratic_outliers

__all__ = ["FIELD_STATUS_LOCAL", "LocalField", "local_field", "REASON_CODES"]

#: ``coreg_field_status`` of a scene whose L2A warps with its local field.
FIELD_STATUS_LOCAL = "local"
#: ``REASON`` of the tie-point table as stored in the ``l1b`` group (``tie_point_reason``, int8).
REASON_CODES = {"": 0, "failed": 1, "reliability": 2, "ssim": 3, "ransac": 4, "field": 5}


@dataclass(frozen=True)
class LocalField:
    """Outcome of the local step: ``status`` (``"local"`` or ``"fallback:global (<why>)"``), the tie-point table
    with the field-level outliers marked, the ``l1b`` group (table + field) and its statistics (JSON-able)."""

    status: str
    points: pd.DataFrame
    group: xr.Dataset
    stats: dict[str, Any]

    @property
    def is_local(self) -> bool:
        return self.status == FIELD_STATUS_LOCAL


def _field_outliers(points: pd.DataFrame) -> pd.DataFrame:
    """The table with points departing from the robust quadratic surface of the valid shifts marked ``field``."""
    out = points.copy()
    valid = np.flatnonzero(~out["OUTLIER"].to_numpy(dtype=bool))
    if valid.size:
        rows = out.iloc[valid]
        flagged = quadratic_outliers(rows["X_IM"].to_numpy(), rows["Y_IM"].to_numpy(),
                                     rows["X_SHIFT_PX"].to_numpy(), rows["Y_SHIFT_PX"].to_numpy())
        idx = out.index[valid[flagged]]
        out.loc[idx, "REASON"] = "field"
        out.loc[idx, "OUTLIER"] = True
    return out


def _stats(points: pd.DataFrame, status: str) -> dict[str, Any]:
    valid = points[~points["OUTLIER"].astype(bool)]
    def stat(column: str, how: str) -> float | None:
        if len(valid) < (2 if how == "std" else 1):
            return None
        return round(float(getattr(valid[column], how)()), 4)
    reasons = Counter(str(r).split(":")[0] for r in points["REASON"] if r)
    return {"coreg_field_status": status, "tie_points_total": int(len(points)), "tie_points_valid": int(len(valid)),
            **{f"tie_points_outliers_{k}": int(reasons.get(k, 0)) for k in REASON_CODES if k},
            "tie_points_x_shift_m_mean": stat("X_SHIFT_M", "mean"),
            "tie_points_y_shift_m_mean": stat("Y_SHIFT_M", "mean"),
            "tie_points_x_shift_m_std": stat("X_SHIFT_M", "std"), "tie_points_y_shift_m_std": stat("Y_SHIFT_M", "std"),
            "tie_points_reliability_mean": stat("RELIABILITY", "mean")}


def _table_variables(points: pd.DataFrame) -> dict[str, tuple[str, np.ndarray, dict[str, str]]]:
    columns = {"X_IM": "px", "Y_IM": "px", "X_MAP": "m", "Y_MAP": "m", "X_SHIFT_PX": "px", "Y_SHIFT_PX": "px",
               "X_SHIFT_M": "m", "Y_SHIFT_M": "m", "RELIABILITY": "percent", "SSIM_BEFORE": "1", "SSIM_AFTER": "1"}
    out = {f"tie_point_{name.lower()}": ("tie_point", points[name].to_numpy(dtype=np.float64), {"units": unit})
           for name, unit in columns.items()}
    codes = np.array([REASON_CODES[str(r).split(":")[0]] for r in points["REASON"]], dtype=np.int8)
    out["tie_point_reason"] = ("tie_point", codes, {
        "flag_values": list(REASON_CODES.values()), "flag_meanings": "valid failed reliability ssim ransac field",
        "long_name": "why a tie point is an outlier (AROSICS's levels, then the local field's)"})
    return out


def local_field(points: pd.DataFrame, geobox: GeoBox, *, spacing_px: int, min_points: int = 10,
                smoothing: float = 0.01, match_status: str = "success") -> LocalField:
    """The ``l1b`` group of a scene co-registered in local mode.

    ``points``: the tie-point table (:func:`gmsdask.coregistration.tie_points`, ``CoregResult.points``);
    ``match_status``: the scene's match status (no field unless ``"success"``).
    ``geobox``: the grid of the target band the points were measured on (``CoregResult.target_band``); the field's
    nodes lie every ``spacing_px`` of its pixels (and on its edges), in its CRS. Field convention: L2A's, the
    content displacement ``dx`` east, ``dy`` north in metres (``-X_SHIFT_M``, ``-Y_SHIFT_M`` of the table).
    The group holds the table (dim ``tie_point``: AROSICS's columns as ``tie_point_<column>`` and
    ``tie_point_reason``) and, when local, ``field_dx_m``, ``field_dy_m``, ``field_reliability`` on
    (``field_y``, ``field_x``); attrs ``field_crs``, ``coreg_field_status`` and the statistics.
    """
    points = _field_outliers(points) if len(points) else points
    valid = points[~points["OUTLIER"].astype(bool)]
    if match_status != "success":
        status = f"fallback:global (the match failed: {match_status})"
    elif len(valid) < min_points:
        status = f"fallback:global ({len(valid)} valid tie points < {min_points})"
    else:
        status = FIELD_STATUS_LOCAL
    stats = _stats(points, status)
    variables: dict[str, Any] = _table_variables(points)
    coords: dict[str, Any] = {}
    if status == FIELD_STATUS_LOCAL:
        a = geobox.affine
        ny, nx = geobox.shape.yx
        cols = np.linspace(0.0, nx, max(2, math.ceil(nx / spacing_px) + 1))
        rows = np.linspace(0.0, ny, max(2, math.ceil(ny / spacing_px) + 1))
        x, y = a.c + cols * a.a, a.f + rows * a.e
        point_x = a.c + (valid["X_IM"].to_numpy() + 0.5) * a.a
        point_y = a.f + (valid["Y_IM"].to_numpy() + 0.5) * a.e
        grid_x, grid_y = np.meshgrid(x, y)
        values = np.column_stack([-valid["X_SHIFT_M"].to_numpy(), -valid["Y_SHIFT_M"].to_numpy(),
                                  valid["RELIABILITY"].to_numpy()])
        field = fit_local_field(point_x, point_y, values, grid_x, grid_y, smoothing=smoothing)
        field[..., 2] = np.clip(field[..., 2], 0.0, 100.0)
        units = {"field_dx_m": "m", "field_dy_m": "m", "field_reliability": "percent"}
        for k, name in enumerate(units):
            variables[name] = (("field_y", "field_x"), field[..., k], {"units": units[name]})
        coords = {"field_x": ("field_x", x, {"units": "m"}), "field_y": ("field_y", y, {"units": "m"})}
        for k, axis in enumerate(("dx", "dy")):
            stats[f"field_{axis}_m_min"] = round(float(field[..., k].min()), 3)
            stats[f"field_{axis}_m_max"] = round(float(field[..., k].max()), 3)
    epsg = CRS.from_user_input(str(geobox.crs)).to_epsg()
    attrs = {"field_crs": f"EPSG:{epsg}" if epsg else CRS.from_user_input(str(geobox.crs)).to_wkt(),
             "field_spacing_px": int(spacing_px), "field_smoothing": float(smoothing),
             "field_convention": "content displacement (L2A coreg_shift_m): dx east, dy north, metres",
             **{k: v for k, v in stats.items() if v is not None}}
    return LocalField(status, points, xr.Dataset(variables, coords=coords, attrs=attrs), stats)
