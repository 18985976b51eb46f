"""Lazy BRDF normalization (NBAR, HLS c-factor) of a scene's reflectance bands.

HLS normalizes before its bandpass adjustment, so in L2B this runs on the source sensor's bands, before
``homogenize_dataset``. The kernels are computed once per chunk and shared by every band's c-factor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from ..algorithms.brdf import brdf_coefficients, li_sparse_r, normalized_solar_zenith, ross_thick
from ..errors import ProductError
from ..sensors import get_sensor
from .bands import surface_reflectance_bands

__all__ = ["nbar_dataset", "ANGLE_NAMES"]

#: The angle variables ``nbar_dataset`` needs (degrees, on the bands' grid).
ANGLE_NAMES = ("sun_zenith", "sun_azimuth", "view_zenith", "view_azimuth")


# The kernels come back as one array each (geometric, volumetric), not stacked on a last axis that each of them
# would then be gathered out of with a stride (as for L2B's bands, gmsdask.spectral.dataset).
def _kernels(sun_zenith, sun_azimuth, view_zenith, view_azimuth) -> tuple[np.ndarray, np.ndarray]:
    relative_azimuth = view_azimuth - sun_azimuth
    return (np.ascontiguousarray(li_sparse_r(sun_zenith, view_zenith, relative_azimuth), dtype=np.float32),
            np.ascontiguousarray(ross_thick(sun_zenith, view_zenith, relative_azimuth), dtype=np.float32))


def _nadir_kernels(latitude) -> tuple[np.ndarray, np.ndarray]:
    zenith = normalized_solar_zenith(latitude)
    return (np.asarray(li_sparse_r(zenith, 0.0, 0.0), dtype=np.float32),
            np.asarray(ross_thick(zenith, 0.0, 0.0), dtype=np.float32))


def nbar_dataset(ds: xr.Dataset, angles: xr.Dataset, *, platform: str, latitude: float | xr.DataArray,
                 bands: Sequence[str] | None = None) -> xr.Dataset:
    """Reflectance bands of ``ds`` adjusted to nadir view and HLS's normalized solar zenith (lazy).

    Parameters
    ----------
    ds
        One grid of ``platform``'s bands (reflectance 0-1, NaN = no data), e.g. L2A's ``r30m`` group.
    angles
        ``sun_zenith``, ``sun_azimuth``, ``view_zenith``, ``view_azimuth`` (degrees; azimuths clockwise from
        north, from the pixel towards the sun and the sensor) on exactly ``ds``'s grid, e.g. the scene's
        ``angles`` group interpolated to it. A pixel with a NaN angle gets NaN reflectance: fill the angle
        grids (e.g. nearest-node extrapolation) before calling where the product's grids have gaps.
    platform
        The scene's platform (root attr ``platform``).
    latitude
        Degrees north: the scene centre's (float) or per pixel (a DataArray on ``ds``'s grid); it sets the
        normalized solar zenith (HLS's latitude polynomial).
    bands
        Bands to normalize; default the platform's surface-reflectance bands present in ``ds``. Bands HLS
        has no BRDF coefficients for (cirrus, thermal, pan) are refused.

    Returns
    -------
    ``ds`` with the bands replaced by NBAR (float32; attrs gain ``brdf_normalized=True``) and dataset attrs
    ``brdf_normalized=True``, ``brdf_method="HLS c-factor (Roy et al. 2016)"`` and, for a scalar latitude,
    ``brdf_normalized_sun_zenith_deg``.
    """
    scene = ds.attrs.get("product_id") or ds.attrs.get("product_path") or f"the {platform} scene"
    missing = [name for name in ANGLE_NAMES if name not in angles.data_vars]
    if missing:
        raise ProductError(scene, f"BRDF normalization needs the angles {', '.join(missing)}")
    try:
        angle_arrays = xr.align(*(angles[name] for name in ANGLE_NAMES), ds, join="exact")[:4]
    except ValueError as err:
        raise ProductError(scene, f"the angle grids are not on the bands' grid: {err}") from None
    sensor = get_sensor(platform)
    names = list(bands) if bands is not None else [b for b in surface_reflectance_bands(platform) if b in ds]
    coefficients = {}
    for band in names:
        if band not in ds.data_vars:
            raise ProductError(scene, f"band {band} to be BRDF-normalized is not in the dataset")
        found = brdf_coefficients(sensor.band(band).common_name, sensor.central_wavelength_nm(band))
        if found is None:
            raise ProductError(scene, f"band {band} ({sensor.band(band).common_name}) has no HLS BRDF coefficients")
        coefficients[band] = found

    two = {"output_core_dims": [[], []], "dask": "parallelized", "output_dtypes": [np.float32, np.float32]}
    observed_geo, observed_vol = xr.apply_ufunc(_kernels, *angle_arrays, **two)
    if isinstance(latitude, xr.DataArray):
        nadir_geo, nadir_vol = xr.apply_ufunc(_nadir_kernels, latitude, **two)
        extra = {}
    else:
        nadir_geo, nadir_vol = (float(v) for v in _nadir_kernels(float(latitude)))
        extra = {"brdf_normalized_sun_zenith_deg": round(float(normalized_solar_zenith(float(latitude))), 3)}

    out = ds.copy()
    for band, (f_iso, f_geo, f_vol) in coefficients.items():
        c = (f_iso + f_geo * nadir_geo + f_vol * nadir_vol) / (f_iso + f_geo * observed_geo + f_vol * observed_vol)
        out[band] = (ds[band] * c).astype(np.float32).assign_attrs({**ds[band].attrs, "brdf_normalized": True})
    return out.assign_attrs(brdf_normalized=True, brdf_method="HLS c-factor (Roy et al. 2016)", **extra)
