"""Class shares of a mask Dataset: the small numbers L1C records for the catalogue (cloud cover ...)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from ..algorithms.fmask_qa import CLASS_NAMES, NODATA

__all__ = ["class_cover_pct"]


def class_cover_pct(masks: xr.Dataset) -> dict[str, float]:
    """Percent of the valid (not no-data) pixels in each class of ``masks.fmask``, e.g.
    ``{"clear_land": 55.1, "cloud": 30.2, "cloud_shadow": 9.8, "snow_ice": 0.0, "water": 4.9}``.

    This computes the mask (one pass over its graph; call it on the written result, or accept that cost).
    A scene without any valid pixel gives 0 for every class.
    """
    data = masks["fmask"].data
    counts = (da.bincount(data.ravel(), minlength=len(CLASS_NAMES)) if isinstance(data, da.Array)
              else np.bincount(np.asarray(data).ravel(), minlength=len(CLASS_NAMES)))
    counts = np.asarray(counts.compute() if isinstance(counts, da.Array) else counts)[:len(CLASS_NAMES)]
    valid = int(counts.sum() - counts[NODATA])
    return {name: (round(100.0 * float(counts[value]) / valid, 3) if valid else 0.0)
            for value, name in CLASS_NAMES.items() if value != NODATA}
