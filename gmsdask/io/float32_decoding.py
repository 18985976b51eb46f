"""Scaled integers (CF ``scale_factor``, ``add_offset``, ``_FillValue``) decoded straight to float32.

gmsdask stores reflectance and angles as int16 with a float32 ``scale_factor`` (level products and cubes). Zarr v3
keeps attributes as JSON, so the scale factor comes back as a Python float, and xarray's CF decoding then (by its
rules, rightly for a float64 factor) decodes int16 to float64, which the readers cast to float32: a float64
temporary and an extra pass per chunk. Measured on a level product's 2048² blocks (zstd, one thread): 25 ms per
block read and decoded that way, 18 ms in float32. Reading the L2B product back was ~50 s of the worker time of
a full Landsat scene's job (2026-11-29).

Here the factor is taken as the float32 it was written as before xarray decodes (its own CF decoding, lazily per
chunk), so the product is computed in float32: at most one float32 unit in the last place from the float64
route (none on the measured blocks), and the same integers when encoded again.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["decode_float32"]


def decode_float32(dataset: xr.Dataset) -> xr.Dataset:
    """``dataset``, opened with ``mask_and_scale=False``, masked and scaled by xarray's CF decoding, with the
    ``scale_factor`` of 16-bit integer variables taken as float32 (their decoded dtype); variables with an
    ``add_offset`` of another type (brightness temperature's exact 273.15 K) decode as float64 and are cast to
    float32. Coordinates, times and variables without CF scaling come back as they went in."""
    raw = dataset.copy()
    for var in raw.variables.values():  # a shallow copy's variables have attrs of their own
        if "scale_factor" in var.attrs and np.dtype(var.dtype).itemsize <= 2:
            attrs = var.attrs
            attrs["scale_factor"] = np.float32(attrs["scale_factor"])
            # xarray decodes in float32 only when the offset is float32 too: an offset of 0 is, 273.15 is not
            if "add_offset" in attrs and float(np.float32(attrs["add_offset"])) == float(attrs["add_offset"]):
                attrs["add_offset"] = np.float32(attrs["add_offset"])
    decoded = xr.decode_cf(raw, concat_characters=False, mask_and_scale=True, decode_times=False,
                           decode_coords=False, decode_timedelta=False)
    for name, var in decoded.data_vars.items():
        if "scale_factor" in var.encoding and var.dtype != np.float32:
            decoded[name] = var.astype(np.float32).assign_attrs(var.attrs)
            decoded[name].encoding = dict(var.encoding)
    return decoded
