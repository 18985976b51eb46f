"""Sentinel-2 sun and view angle grids of MTD_TL (5 km) as the scene's ``angles`` group."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

import numpy as np
import xarray as xr
from rasterio.crs import CRS

from ...errors import MetadataError
from .xml import XmlDoc

log = logging.getLogger("gmsdask.io.sentinel2")


def _angle_values(element: ET.Element | None, doc: XmlDoc) -> np.ndarray:
    """A ``Values_List`` grid in degrees (rows north to south; ``NaN`` strings become NaN)."""
    if element is None:
        raise MetadataError(doc.name, "an angle grid lacks its Zenith or Azimuth element")
    try:
        return np.array([[float(v) for v in (row.text or "").split()] for row in element.iter("VALUES")],
                        dtype=np.float64)
    except ValueError as err:
        raise MetadataError(doc.name, f"invalid angle grid ({err})") from None


def _view_vectors(zenith_deg: np.ndarray, azimuth_deg: np.ndarray) -> np.ndarray:
    """Unit viewing vectors ``(east, north, up)`` stacked on the first axis."""
    zenith, azimuth = np.deg2rad(zenith_deg), np.deg2rad(azimuth_deg)
    return np.stack([np.sin(zenith) * np.sin(azimuth), np.sin(zenith) * np.cos(azimuth), np.cos(zenith)])


def _nanmean(stack: np.ndarray) -> np.ndarray:
    """Mean over the first axis ignoring NaN; NaN where every value is NaN (without numpy's warning)."""
    count = np.sum(~np.isnan(stack), axis=0)
    total = np.nansum(stack, axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _mean_view_angles(tile: XmlDoc) -> tuple[np.ndarray, np.ndarray] | None:
    """Viewing zenith and azimuth (degrees), averaged over detectors and bands; None if the tile has none.

    Per band, each detector's grid has values only where that detector sees (NaN elsewhere, small overlaps), so
    the NaN-mean of the detectors merges them; the bands are then NaN-averaged. The means are taken of unit
    viewing vectors, not of angles: near nadir, neighbouring detectors look from opposite sides (azimuths ~180
    degrees apart) and an average of azimuths would be meaningless.
    """
    vectors_by_band: dict[str, list[np.ndarray]] = {}
    for grids in tile.root.iter("Viewing_Incidence_Angles_Grids"):
        vectors = _view_vectors(_angle_values(grids.find("Zenith"), tile),
                                _angle_values(grids.find("Azimuth"), tile))
        vectors_by_band.setdefault(grids.get("bandId", ""), []).append(vectors)
    if not vectors_by_band:
        return None
    try:
        mean = _nanmean(np.stack([_nanmean(np.stack(vectors)) for vectors in vectors_by_band.values()]))
    except ValueError as err:
        raise MetadataError(tile.name, f"viewing angle grids differ in shape ({err})") from None
    zenith = np.rad2deg(np.arctan2(np.hypot(mean[0], mean[1]), mean[2]))
    azimuth = np.rad2deg(np.arctan2(mean[0], mean[1])) % 360.0
    return zenith, azimuth


def angles_dataset(tile: XmlDoc, crs: CRS) -> xr.Dataset | None:
    """Sun and mean viewing angle grids (degrees, float32) on their own ``x``/``y`` in the tile CRS.

    The values are samples at the grid nodes, the first node at the tile's upper-left corner (ULX, ULY): on the
    real products the nodes with a value for a detector are exactly those inside its footprint, which a
    half-step (cell-centre) registration contradicts. 23 nodes at 5000 m span the 109.8 km tile.
    """
    sun = tile.first("Sun_Angles_Grid")
    if sun is None:
        log.warning("%s: no Sun_Angles_Grid; the scene has no angles group", tile.name)
        return None
    sun_zenith = _angle_values(sun.find("Zenith"), tile)
    sun_azimuth = _angle_values(sun.find("Azimuth"), tile)
    col_step = tile.number("COL_STEP", within="Sun_Angles_Grid")
    row_step = tile.number("ROW_STEP", within="Sun_Angles_Grid")
    x = tile.number("ULX") + np.arange(sun_zenith.shape[1]) * col_step
    y = tile.number("ULY") - np.arange(sun_zenith.shape[0]) * row_step
    variables = {"sun_zenith": sun_zenith, "sun_azimuth": sun_azimuth}
    view = _mean_view_angles(tile)
    if view is not None and view[0].shape == sun_zenith.shape:
        variables |= {"view_zenith": view[0], "view_azimuth": view[1]}
    elif view is not None:
        log.warning("%s: viewing angle grids %s differ from the sun grid %s; left out",
                    tile.name, view[0].shape, sun_zenith.shape)
    dataset = xr.Dataset(
        {name: (("y", "x"), values.astype(np.float32), {"units": "degree", "long_name": name.replace("_", " ")})
         for name, values in variables.items()},
        coords={"x": ("x", x, {"units": "m", "axis": "X"}), "y": ("y", y, {"units": "m", "axis": "Y"})},
        attrs={"description": "angle grids of the tile metadata, sampled at the nodes (first node at ULX, ULY); "
                              "viewing angles: mean viewing direction over detectors and bands"},
    )
    return dataset.rio.write_crs(crs)
