"""A smooth local shift field from valid tie points, on a coarse grid (a view for users; the pipeline stores the
field of :func:`gmsdask.coregistration.local.local_field` in the scene's ``l1b`` group, with the same fit).

The field is in L2A's convention (the displacement of the target's content, metres, x east and y north: the
negative of AROSICS's map correction), sampled at the centres of ``spacing_px`` x ``spacing_px`` cells of the
target's grid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from odc.geo.geobox import GeoBox

from ..algorithms.local_field import fit_local_field

__all__ = ["shift_field"]


def shift_field(points: pd.DataFrame, geobox: GeoBox, *, spacing_px: int = 200,
                smoothing: float = 0.01) -> xr.Dataset:
    """The content displacement ``dx_m`` (east), ``dy_m`` (north) in metres on a coarse grid over ``geobox``.

    ``points`` is a tie-point table (:func:`gmsdask.coregistration.tie_points`); only rows with ``OUTLIER``
    False are used, by their target pixel (``X_IM``, ``Y_IM``) and their correction of the target's map origin
    (``X_SHIFT_M``, ``Y_SHIFT_M``, target CRS). ``geobox`` is the grid of the target band the points were
    measured on (``CoregResult.target_band``); the field's x/y are map coordinates in its CRS, so it serves every
    resolution group of the scene. With fewer than three valid points the field is constant (their mean, or
    zero).
    """
    valid = points[~points["OUTLIER"].astype(bool)]
    point_x = geobox.affine.c + (valid["X_IM"].to_numpy() + 0.5) * geobox.affine.a
    point_y = geobox.affine.f + (valid["Y_IM"].to_numpy() + 0.5) * geobox.affine.e
    rows = np.arange(spacing_px / 2, geobox.shape[0], spacing_px)
    cols = np.arange(spacing_px / 2, geobox.shape[1], spacing_px)
    x = geobox.affine.c + cols * geobox.affine.a  # cell centres, map coordinates
    y = geobox.affine.f + rows * geobox.affine.e
    grid_x, grid_y = np.meshgrid(x, y)
    values = np.column_stack([-valid["X_SHIFT_M"].to_numpy(), -valid["Y_SHIFT_M"].to_numpy()])
    field = fit_local_field(point_x, point_y, values, grid_x, grid_y, smoothing=smoothing)
    dx, dy = field[..., 0], field[..., 1]
    attrs = {"units": "m", "convention": "displacement of the target's content (L2A l1b_shift_m), x east, y north"}
    return xr.Dataset(
        {"dx_m": (("y", "x"), dx.astype(np.float32), attrs), "dy_m": (("y", "x"), dy.astype(np.float32), attrs)},
        coords={"x": x, "y": y}, attrs={"valid_points": int(len(valid)), "spacing_px": int(spacing_px)})
