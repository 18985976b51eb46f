"""Per-pixel sun and view angles for NBAR, lazily on a band grid, from a scene's coarse ``angles`` group.

The grids' nodes are interpolated bilinearly per chunk: the view angles in their horizontal vector form
(``gmsdask.algorithms.brdf.view_vector``), which is smooth across nadir where the azimuth flips by 180
degrees, and the sun azimuth as a unit vector (no wrap at north). Grid nodes without a value (outside every
detector) take their nearest valid node's, so the swath edge is not lost.

Sentinel-2: the ``MTD_TL`` grids (5 km nodes).

Landsat: the reader evaluates the USGS ``ANG.txt`` angle coefficients of the red band on its 5 km solar-angle
nodes (``gmsdask.io.landsat_ang``; every real Collection 1/2 product has them, OLI and TM/ETM+). Across the
swath the view zenith runs from ~0 at the nadir track to 8.6-9.3 degrees at the scene corners: the
sensor's +-7.5 degree look angle plus the Earth's curvature (0.8 degree over 92 km). Products without the
coefficients (no ``ANG.txt``, or the synthetic products' ANG files) get an approximation from the scene
geometry: the nadir track runs through the footprint's centre (WRS-2 scene centres lie on it) with the
ground-track azimuth of Landsat's descending 705 km, 98.2 deg orbit at that latitude
(``ground_track_azimuth``), and the view zenith is the look angle to the cross-track distance on a spherical
Earth plus the curvature term above (``brdf.view_angles_from_track``). On the real scenes it stays within
0.2-0.6 degree (mean 0.06-0.17) of the ANG model; flat (without the curvature term) it was 1.0-1.1 off.

The result's attr ``view_angles_source`` says which way the view angles came: the angles group's own
``view_angles_source`` attr (``"ANG.txt coefficients (...)"`` for Landsat), ``"product angle grids"``
(Sentinel-2), or ``"approximated: ..."``.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from ..algorithms.brdf import (ground_track_azimuth, view_angles_from_track, view_angles_from_vector,
                               view_vector)
from ..algorithms.interpolation import bilinear_from_grid, filled_from_nearest
from ..errors import ProductError

__all__ = ["angles_on_grid", "footprint_centre"]


def footprint_centre(footprint_wkt: str, epsg: int) -> tuple[float, float, float]:
    """Centre of a lon/lat footprint polygon: its latitude (degrees) and its map coordinates in ``epsg`` (m)."""
    from pyproj import Transformer
    from shapely import wkt

    centre = wkt.loads(footprint_wkt).centroid
    x, y = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(centre.x, centre.y)
    return float(centre.y), float(x), float(y)


# The block functions return one array per angle (and apply_ufunc as many outputs): one array with the angles on
# a last axis was faulted in whole, each angle was then gathered out of it with a stride by a task of its own, and
# the whole array stayed in memory until the last angle was taken (as for L2B's bands, gmsdask.spectral.dataset).
def _interpolate_block(y: np.ndarray, x: np.ndarray, *, grid_y: np.ndarray, grid_x: np.ndarray,
                       nodes: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """The angles of ``nodes`` (degrees, float32: sun zenith and azimuth, then view zenith and azimuth where the
    nodes have view vectors) at every pixel of one block, one array each."""
    y, x = np.asarray(y)[:, 0], np.asarray(x)[0, :]

    def at(name: str) -> np.ndarray:
        return bilinear_from_grid(grid_y, grid_x, nodes[name], y, x).astype(np.float64)

    angles = [at("sun_zenith"), np.rad2deg(np.arctan2(at("sun_east"), at("sun_north"))) % 360.0]
    if "view_east" in nodes:
        angles += view_angles_from_vector(at("view_east"), at("view_north"))
    return tuple(angle.astype(np.float32) for angle in angles)


def _track_block(y: np.ndarray, x: np.ndarray, *, track: tuple[float, float, float]) -> tuple[np.ndarray, ...]:
    zenith, azimuth = view_angles_from_track(x, y, *track)
    return np.ascontiguousarray(zenith, dtype=np.float32), np.ascontiguousarray(azimuth, dtype=np.float32)


def _pixel_coordinates(y: np.ndarray, x: np.ndarray, chunks: dict | None) -> tuple[xr.DataArray, xr.DataArray]:
    """2-D ``y`` and ``x`` of every pixel, lazily in ``chunks`` (None: numpy): broadcast from the 1-D
    coordinates, so a graph holds two coordinate vectors, not two full float64 images (xr.broadcast put 54 MB
    into the graph of a 1830 px tile, and 214 MB at 3660 px)."""
    shape = (y.size, x.size)
    if chunks is None:
        values_y, values_x = np.broadcast_to(y[:, None], shape), np.broadcast_to(x[None, :], shape)
    else:
        column = da.from_array(y[:, None], chunks=(chunks["y"], 1))
        row = da.from_array(x[None, :], chunks=(1, chunks["x"]))
        values_y = da.broadcast_to(column, shape, chunks=(chunks["y"], chunks["x"]))
        values_x = da.broadcast_to(row, shape, chunks=(chunks["y"], chunks["x"]))
    coords = {"y": y, "x": x}
    return (xr.DataArray(values_y, dims=("y", "x"), coords=coords),
            xr.DataArray(values_x, dims=("y", "x"), coords=coords))


def angles_on_grid(angles: xr.Dataset, like: xr.Dataset, *, footprint_wkt: str = "", epsg: int = 0,
                   scene: str = "the scene") -> xr.Dataset:
    """``sun_zenith``, ``sun_azimuth``, ``view_zenith``, ``view_azimuth`` (degrees, float32) on ``like``'s grid.

    Parameters
    ----------
    angles
        The scene's coarse ``angles`` group (nodes on ``x``/``y`` in the scene CRS, same CRS as ``like``).
    like
        The band grid (``x``, ``y`` pixel centres; chunks are followed).
    footprint_wkt, epsg
        Root attrs ``footprint`` and ``epsg``: needed when ``angles`` has no view angles (a Landsat product
        without ANG coefficients), for the approximation from the nadir track through the footprint's centre.
    scene
        Name used in error messages.

    The result's attr ``view_angles_source`` says which way the view angles came.
    """
    for name in ("sun_zenith", "sun_azimuth"):
        if name not in angles.data_vars:
            raise ProductError(scene, f"the angles group has no {name}")
    grid_y, grid_x = angles["y"].values, angles["x"].values  # coarse nodes: a small, explicit eager read
    sun_azimuth = np.deg2rad(filled_from_nearest(angles["sun_azimuth"].values))
    nodes = {"sun_zenith": filled_from_nearest(angles["sun_zenith"].values),
             "sun_east": np.sin(sun_azimuth), "sun_north": np.cos(sun_azimuth)}
    has_view = {"view_zenith", "view_azimuth"} <= set(angles.data_vars)
    if has_view:  # without them the view angles come from the scene geometry below, not from nodes
        east, north = view_vector(angles["view_zenith"].values, angles["view_azimuth"].values)
        nodes |= {"view_east": filled_from_nearest(east), "view_north": filled_from_nearest(north)}

    template = like[next(iter(like.data_vars))] if like.data_vars else None
    chunks = dict(zip(template.dims, template.chunks)) if template is not None and template.chunks else None
    yy, xx = _pixel_coordinates(like["y"].values, like["x"].values, chunks)
    names = ["sun_zenith", "sun_azimuth", *(("view_zenith", "view_azimuth") if has_view else ())]
    interpolated = xr.apply_ufunc(
        _interpolate_block, yy, xx, kwargs={"grid_y": grid_y, "grid_x": grid_x, "nodes": nodes},
        output_core_dims=[[]] * len(names), dask="parallelized", output_dtypes=[np.float32] * len(names))
    out = xr.Dataset({name: angle.assign_attrs(units="degree") for name, angle in zip(names, interpolated)})
    source = str(angles.attrs.get("view_angles_source", "product angle grids"))
    if not has_view:
        if not footprint_wkt or not epsg:
            raise ProductError(scene, "the angles group has no view angles and no footprint/epsg was given to "
                                      "approximate them from the scene geometry")
        latitude, centre_x, centre_y = footprint_centre(footprint_wkt, epsg)
        track = (centre_x, centre_y, ground_track_azimuth(latitude))
        zenith, azimuth = xr.apply_ufunc(_track_block, yy, xx, kwargs={"track": track}, output_core_dims=[[], []],
                                         dask="parallelized", output_dtypes=[np.float32, np.float32])
        out["view_zenith"] = zenith.assign_attrs(units="degree")
        out["view_azimuth"] = azimuth.assign_attrs(units="degree")
        source = (f"approximated: nadir track through the footprint centre, azimuth {track[2]:.1f} deg, "
                  f"705 km altitude")
    return out.assign_attrs(view_angles_source=source)
