"""What atmospheric correction needs to know about a scene besides its bands: geometry per cell, surface
elevation, water vapour, ozone.

- Geometry: the ``angles`` group's grids interpolated (bilinearly, NaN nodes filled from the nearest node with a
  value) at the aerosol cells' centres; the view angles in their vector form (``brdf.view_vector``), which is
  smooth across nadir where the view azimuth flips by 180 degrees. Sentinel-2's view angles come from
  ``MTD_TL``, Landsat's from the ``ANG.txt`` coefficients (0 to ~9 degrees across the swath), but these
  enter only with ``cell_geometry(..., ang_view_angles=True)``: by default Landsat is corrected as seen from
  nadir, as is a product without view angles. At Landsat's swath edges (8.5 degrees) that misses the path
  reflectance by up to +-6-9 % where the view lies in the sun's azimuth plane (6S, AOT 0.2, sun zenith
  30-60 degrees: blue +0.006 / -0.005), < 1 % across it; transmittance by < 0.2 %.
- Elevation: the mean of a DEM raster (``path_dem``, any CRS rasterio reads) over the scene's bounds, read at
  reduced resolution; sea level without a DEM.
- Water vapour: for Sentinel-2 with B09 and B8A, the column that makes 6S's B09/B8A TOA ratio match the scene's
  mean ratio over bright land (the 945 nm band sits in a water vapour absorption band, B8A next to it is
  nearly free of it; the surface reflectance is taken as equal in both). Otherwise the default.
- Ozone: a fixed climatological column, ``DEFAULT_OZONE_CM_ATM`` (its effect, mostly on green and red, is
  < 0.3 % of the reflectance for +-50 DU).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..algorithms.brdf import view_angles_from_vector, view_vector
from ..algorithms.interpolation import bilinear_from_grid, filled_from_nearest
from .aerosol import CellGrid
from .sixs import AtmosphereState, cached_run

__all__ = ["cell_geometry", "mean_elevation_m", "retrieve_water_vapour", "DEFAULT_WATER_VAPOUR_GCM2",
           "DEFAULT_OZONE_CM_ATM", "WATER_VAPOUR_STEP_GCM2", "WaterVapour"]

DEFAULT_WATER_VAPOUR_GCM2 = 2.0
DEFAULT_OZONE_CM_ATM = 0.33
#: Retrieved water vapour is rounded to this step, so that scenes share lookup tables.
WATER_VAPOUR_STEP_GCM2 = 0.5
_WATER_VAPOUR_NODES = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)


def _filled(values: np.ndarray) -> np.ndarray:
    """NaN nodes take the value of the nearest node that has one; a grid without any value is 0 (nadir view)."""
    values = filled_from_nearest(values)
    return np.nan_to_num(values, nan=0.0) if not np.isfinite(values).any() else values


def cell_geometry(scene: xr.DataTree, cells: CellGrid, *, ang_view_angles: bool = False
                  ) -> tuple[dict[str, np.ndarray], str]:
    """Sun zenith, view zenith and relative azimuth (degrees) at the cell centres, and a note on the source.

    ``ang_view_angles``: whether Landsat view angles from ``ANG.txt`` coefficients (the angles group's
    ``view_angles_source`` says so) enter the geometry. Off by default, so Landsat is corrected as seen from
    nadir: its 0-9 degree view zenith, with the relative azimuth spanning 0-180 degrees across the nadir track,
    brackets ~200-400 lattice nodes per scene that the nadir view does not need (~8 6S runs, ~5 s CPU each),
    for a path-reflectance change of up to +-6-9 % at the swath edges (in and against the sun's azimuth; < 1 %
    across it). Sentinel-2's view angles always enter.
    """
    shape = cells.shape
    if "angles" in scene.children and "sun_zenith" in scene["angles"].ds:
        angles = scene["angles"].ds
        gy, gx = angles["y"].values, angles["x"].values
        from_ang = str(angles.attrs.get("view_angles_source", "")).startswith("ANG.txt")

        def at_cells(name: str) -> np.ndarray:
            return bilinear_from_grid(gy, gx, _filled(angles[name].values.astype(np.float64)), cells.y, cells.x
                                      ).astype(np.float64)

        sun_zenith, sun_azimuth = at_cells("sun_zenith"), at_cells("sun_azimuth")
        if "view_zenith" in angles and "view_azimuth" in angles and (ang_view_angles or not from_ang):
            east, north = view_vector(angles["view_zenith"].values.astype(np.float64),
                                      angles["view_azimuth"].values.astype(np.float64))
            view_zenith, view_azimuth = view_angles_from_vector(
                bilinear_from_grid(gy, gx, _filled(east), cells.y, cells.x),
                bilinear_from_grid(gy, gx, _filled(north), cells.y, cells.x))
            note = f"angles group (sun; view: {angles.attrs.get('view_angles_source', 'product angle grids')})"
        else:
            view_zenith, view_azimuth = np.zeros(shape), np.zeros(shape)
            note = ("angles group (sun); view: nadir assumed" if not from_ang else
                    "angles group (sun); view: nadir assumed (ANG.txt view angles not used for 6S)")
    else:
        sun_zenith = np.full(shape, 90.0 - float(scene.attrs["sun_elevation_deg"]))
        sun_azimuth = np.full(shape, float(scene.attrs.get("sun_azimuth_deg", 0.0)))
        view_zenith, view_azimuth = np.zeros(shape), np.zeros(shape)
        note = "scene-centre sun elevation; view: nadir assumed"
    difference = np.abs(sun_azimuth - view_azimuth) % 360.0
    relative = np.where(difference > 180.0, 360.0 - difference, difference)
    relative = np.where(view_zenith > 0.0, relative, 0.0)
    return {"sun_zenith": sun_zenith, "view_zenith": view_zenith, "relative_azimuth": relative}, note


def mean_elevation_m(path_dem: str, bounds: tuple[float, float, float, float], crs: object) -> float:
    """Mean of the DEM over ``bounds`` (left, bottom, right, top in ``crs``), metres; 0 for an empty path.

    Raises ``ValueError`` naming the DEM when it has no valid value over the scene.
    """
    if not path_dem:
        return 0.0
    import rasterio
    from rasterio.warp import transform_bounds
    from rasterio.windows import from_bounds

    with rasterio.open(path_dem) as dem:
        left, bottom, right, top = transform_bounds(crs, dem.crs, *bounds, densify_pts=21)
        window = from_bounds(left, bottom, right, top, dem.transform).round_offsets().round_lengths()
        scale = max(1.0, max(window.width, window.height) / 512.0)
        shape = (max(1, int(window.height / scale)), max(1, int(window.width / scale)))
        data = dem.read(1, window=window, out_shape=shape, boundless=True, masked=True).astype(np.float64)
    valid = data.compressed() if np.ma.isMaskedArray(data) else data.ravel()
    valid = valid[np.isfinite(valid) & (valid > -500.0)]
    if valid.size == 0:
        raise ValueError(f"DEM {path_dem} has no valid elevation over the scene")
    return float(valid.mean())


@dataclass(frozen=True)
class WaterVapour:
    """Column water vapour (g cm-2) and where it came from (``"B09/B8A ratio"`` or ``"default"``)."""

    value_gcm2: float
    source: str
    retrieved_gcm2: float | None = None


def retrieve_water_vapour(platform: str, b09_toa: float, b8a_toa: float, *, geometry: dict[str, float],
                          aot550: float, ozone_cm_atm: float, elevation_km: float, cache_dir: str | Path
                          ) -> WaterVapour:
    """Water vapour from the scene-mean B09 and B8A TOA reflectance over bright land, rounded to
    ``WATER_VAPOUR_STEP_GCM2`` (the tables are keyed by it). ``geometry``: scene-mean angles (degrees).

    6S runs at the ``_WATER_VAPOUR_NODES`` (one per node and band at AOT ``aot550`` and the geometry rounded
    to 1 degree, cached in ``cache_dir``; 16 runs of < 0.2 s: B09 and B8A are narrow); the ratio is
    interpolated between them.
    """
    geometry = {name: float(round(value)) for name, value in geometry.items()}
    ratios = []
    for wv in _WATER_VAPOUR_NODES:
        state = AtmosphereState(aot550, wv, ozone_cm_atm, elevation_km)
        run = {band: cached_run(platform, band, state, sun_zenith_deg=geometry["sun_zenith"],
                                view_zenith_deg=geometry["view_zenith"],
                                relative_azimuth_deg=geometry["relative_azimuth"], cache_dir=cache_dir)
               for band in ("B09", "B8A")}
        surface = (b8a_toa - run["B8A"].path_reflectance) / run["B8A"].transmittance
        surface = surface / (1.0 + run["B8A"].spherical_albedo * surface)
        b09 = run["B09"].path_reflectance + run["B09"].transmittance * surface / (
            1.0 - run["B09"].spherical_albedo * surface)
        ratios.append(b09 / b8a_toa)
    measured = b09_toa / b8a_toa
    order = np.argsort(ratios)  # the ratio falls as water vapour rises
    value = float(np.interp(measured, np.asarray(ratios)[order], np.asarray(_WATER_VAPOUR_NODES)[order]))
    rounded = max(WATER_VAPOUR_STEP_GCM2, round(value / WATER_VAPOUR_STEP_GCM2) * WATER_VAPOUR_STEP_GCM2)
    return WaterVapour(rounded, "B09/B8A ratio", value)
