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

Lazy (Dask) variables of that kind are decoded per block by one compiled loop
(:func:`gmsdask.algorithms.scaled_integers.decode_scaled_to_float32`) instead of xarray's chain of coders: the
same float32 values, ~5x less time per block. xarray still decodes the variable's metadata (attributes,
encoding), so the variables look exactly as xarray's decoding leaves them.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

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
    # taken before xarray decodes: its coders move the CF attributes into the encoding as they go
    one_pass = {name: cf for name, var in raw.data_vars.items() if (cf := _one_pass_attrs(var))}
    decoded = xr.decode_cf(raw, concat_characters=False, mask_and_scale=True, decode_times=False,
                           decode_coords=False, decode_timedelta=False)
    for name, var in decoded.data_vars.items():
        if name in one_pass and var.dtype == np.float32:
            stored, cf = raw[name].data, one_pass[name]
            decoded[name] = var.copy(data=stored.map_blocks(
                _decode_block, **cf, dtype=np.float32, name=f"decode-float32-{tokenize(stored.name, *cf.values())}"))
        elif "scale_factor" in var.encoding and var.dtype != np.float32:
            decoded[name] = var.astype(np.float32).assign_attrs(var.attrs)
            decoded[name].encoding = dict(var.encoding)
    return decoded


def _one_pass_attrs(stored: xr.DataArray) -> dict[str, object] | None:
    """The arguments of :func:`_decode_block` for a lazy small-integer variable whose CF attributes it covers
    exactly (float32 factor and offset, no ``missing_value`` or ``_Unsigned``), else None."""
    attrs = stored.attrs
    covered = (isinstance(stored.data, da.Array) and np.issubdtype(stored.dtype, np.integer)
               and np.dtype(stored.dtype).itemsize <= 2 and isinstance(attrs.get("scale_factor"), np.float32)
               and isinstance(attrs.get("add_offset", np.float32(0)), np.float32)
               and not {"missing_value", "_Unsigned"} & set(attrs))
    if not covered:
        return None
    return {"scale_factor": attrs["scale_factor"], "add_offset": attrs.get("add_offset", np.float32(0)),
            "fill_value": attrs.get("_FillValue")}


def _decode_block(stored: np.ndarray, *, scale_factor: float, add_offset: float, fill_value: int | None
                  ) -> np.ndarray:
    # imported here: numba's import (~0.7 s) is paid by the workers that decode, not by ``import gmsdask``
    from ..algorithms.scaled_integers import decode_scaled_to_float32
    return decode_scaled_to_float32(stored, scale_factor=scale_factor, add_offset=add_offset, fill_value=fill_value)
