"""Indices from a dataset of harmonized bands, lazily, optionally masked by a cloud mask.

Bands are found by STAC common name (see :mod:`gmsdask.indices.registry`): first a variable whose
``common_name`` attribute matches, then a variable named like the band of the dataset's virtual sensor with
that common name (attribute ``virtual_sensor_name``, default ``SENTINEL_2A``: ``nir`` -> ``B08``), then a variable
named like the common name itself. There is no substitution (``nir08``/B8A does not stand in for ``nir``/B08):
an index whose band is missing raises :class:`IndexBandMissingError`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..errors import GmsdaskError, ProcessingError
from ..sensors import get_sensor
from .registry import IndexSpec, get_index

__all__ = ["IndexBandMissingError", "find_band", "compute_index", "apply_cloud_mask", "DEFAULT_VIRTUAL_SENSOR"]

DEFAULT_VIRTUAL_SENSOR = "SENTINEL_2A"


class IndexBandMissingError(ProcessingError):
    """An index cannot be computed because the dataset lacks one of its bands."""

    def __init__(self, scene: str, index: str, band: str, available: list[str], band_name: str | None = None) -> None:
        self.index = index
        self.band = band
        named = f"{band!r} ({band_name})" if band_name else repr(band)
        super().__init__(scene, "INDICES", f"index {index} needs band {named}, which is missing "
                                           f"(bands present: {', '.join(available) or 'none'})")


def _sensor_band_name(ds: xr.Dataset, common_name: str) -> str | None:
    platform = str(ds.attrs.get("virtual_sensor_name") or DEFAULT_VIRTUAL_SENSOR)
    try:
        sensor = get_sensor(platform)
    except GmsdaskError:
        sensor = get_sensor(DEFAULT_VIRTUAL_SENSOR)
    return next((band.name for band in sensor.bands if band.common_name == common_name), None)


def find_band(ds: xr.Dataset, common_name: str) -> str | None:
    """The name of the variable holding band ``common_name`` in ``ds``, or None (lookup order: module doc)."""
    floats = {name: var for name, var in ds.data_vars.items() if np.issubdtype(var.dtype, np.floating)}
    for name, var in floats.items():
        if var.attrs.get("common_name") == common_name:
            return str(name)
    for candidate in (_sensor_band_name(ds, common_name), common_name):
        if candidate is not None and candidate in floats and floats[candidate].attrs.get("common_name",
                                                                                          common_name) == common_name:
            return candidate
    return None


def _evaluate(spec: IndexSpec, *arrays: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        values = np.asarray(spec.formula(dict(zip(spec.bands, (a.astype(np.float64) for a in arrays)))))
    low, high = spec.valid_range
    return np.where((values >= low) & (values <= high), values, np.nan).astype(np.float32)


def compute_index(ds: xr.Dataset, name: str, *, cloud_mask: xr.DataArray | None = None,
                  scene: str = "") -> xr.DataArray:
    """Index ``name`` of the reflectance bands in ``ds`` (lazy if they are), float32, NaN = no data.

    Parameters
    ----------
    ds
        Bands as float reflectance with NaN for no data, on one grid (any dims; ``(y, x)`` or ``(time, y, x)``).
    name
        A registry name (``NDVI`` ...); unknown names raise ``ConfigError``.
    cloud_mask
        Optional uint8 mask on the same grid: the index is kept where it is 0 and is NaN where it is 1 or the
        fill value 255 (no mask inputs: nothing is known to be clear).
    scene
        Names the scene in errors.

    Raises
    ------
    IndexBandMissingError
        A band of the formula is missing; the message names the index and the band.
    """
    spec = get_index(name)
    names = []
    for common_name in spec.bands:
        found = find_band(ds, common_name)
        if found is None:
            available = sorted(f"{n}({v.attrs.get('common_name', '?')})" for n, v in ds.data_vars.items()
                               if np.issubdtype(v.dtype, np.floating))
            raise IndexBandMissingError(scene or str(ds.attrs.get("product_id", "dataset")), spec.name,
                                        common_name, available, _sensor_band_name(ds, common_name))
        names.append(found)
    index = xr.apply_ufunc(lambda *arrays: _evaluate(spec, *arrays), *(ds[n] for n in names),
                           dask="parallelized", output_dtypes=[np.float32], keep_attrs=False)
    index = index.rename(spec.name).assign_attrs(long_name=spec.long_name, formula=spec.formula.text,
                                                 units="1",
                                                 # not CF valid_min/valid_max: CF reads those in packed units
                                                 index_valid_range=list(spec.valid_range))
    return index if cloud_mask is None else apply_cloud_mask(index, cloud_mask)


def apply_cloud_mask(index: xr.DataArray, cloud_mask: xr.DataArray) -> xr.DataArray:
    """``index`` where ``cloud_mask`` is 0 (clear), NaN elsewhere (1 masked, 255 unknown); attrs kept."""
    return index.where(cloud_mask == 0).astype(np.float32).assign_attrs(index.attrs)
