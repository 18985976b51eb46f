"""Lazy spectral homogenization of a scene's band variables to the virtual sensor (the L2B step).

One ``xr.apply_ufunc`` over the source bands computes, per chunk, every target band and its expected error
together (the cluster assignment is done once per pixel); the result is split into one
variable per band. Nothing is computed here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from ..errors import ProductError
from ..sensors import get_sensor
from .bands import surface_reflectance_bands
from .homogenizer import SpectralHomogenizer

__all__ = ["homogenize_dataset", "ERROR_PREFIX"]

#: Name prefix of the accuracy layers: ``spechomo_error_B04``.
ERROR_PREFIX = "spechomo_error_"


#: Pixels predicted at a time within a chunk. The stacked spectra and the prediction's two pixel-major outputs
#: (the compiled prediction has no other temporaries since 2026-12-01; the numpy one had several) would be
#: several times a chunk's input; strips keep them near 10 MB, so a worker holds the chunk's input and output and
#: little more whatever the chunk size (an 1830 x 1830 px chunk of 11 bands otherwise took ~1 GB beyond its own
#: data, issue 13's memory figure).
_STRIP_PIXELS = 1 << 16


def _apply(*bands: np.ndarray, homogenizer: SpectralHomogenizer) -> tuple[np.ndarray, ...]:
    """Every target band, then every band's error, each an array of the chunk's shape, from one chunk of each
    source band. One array per band rather than one array of all of them with the bands last: that array (370 MB
    for a 2046 px chunk of 11 bands) was faulted in page by page, then each band was gathered out of it with a
    stride of 22 values by a task of its own while the whole array was held (the full Landsat job: 296 -> 273 s
    of task time, peak worker memory 3.4 -> 2.9 GiB)."""
    n_target = len(homogenizer.target_bands)
    out = tuple(np.empty(bands[0].shape, dtype=np.float32) for _ in range(2 * n_target))
    # strips of whole rows: the source bands are stacked one strip at a time, never a whole chunk
    rows = max(1, _STRIP_PIXELS // max(1, int(np.prod(bands[0].shape[1:]))))
    for start in range(0, bands[0].shape[0], rows):
        strip = slice(start, start + rows)
        spectra = np.stack([band[strip] for band in bands], axis=-1)
        for values, targets in zip(homogenizer.predict_with_error(spectra), (out[:n_target], out[n_target:])):
            for i, target in enumerate(targets):
                target[strip] = values[..., i]
    return out


def homogenize_dataset(ds: xr.Dataset, *, source_platform: str, virtual_sensor: str = "SENTINEL_2A",
                       target_bands: Sequence[str] | None = None, method: str = "LR", n_clusters: int = 50,
                       estimate_accuracy: bool = True) -> xr.Dataset:
    """The scene's surface reflectance predicted for the virtual sensor's bands (lazy).

    Parameters
    ----------
    ds
        One grid (e.g. L2A's ``r30m`` group): a float32 variable per band of ``source_platform`` named as the
        provider names it (reflectance 0-1, NaN = no data). All the platform's surface-reflectance bands must
        be present (``gmsdask.spectral.bands.surface_reflectance_bands``).
    source_platform
        ``ds``'s platform (root attr ``platform``), e.g. ``"LANDSAT_9"``.
    virtual_sensor, target_bands, method, n_clusters
        Config options ``virtual_sensor_name``, ``target_bands`` (None = all the virtual sensor's
        surface-reflectance bands), ``spechomo_method``, ``spechomo_n_clusters``.
    estimate_accuracy
        Config option ``spechomo_estimate_accuracy``: add ``spechomo_error_<band>`` (float32, reflectance).

    Returns
    -------
    The dataset with the source sensor's band variables (all of them, thermal, pan and cirrus too) replaced
    by the virtual sensor's (named as it names them,
    float32, attrs ``common_name``, ``central_wavelength_nm``, ``units``, ``long_name``,
    ``spechomo_method``, ``spechomo_source_platform``), the accuracy layers, and every other variable
    (masks, QA layers) and the dataset attrs unchanged, plus attrs ``spechomo_method``,
    ``virtual_sensor_name`` and ``spechomo_source_platform``. A pixel with no data in any source band has
    no data (NaN) in every target band under ``LR``/``QR``/``LI``.
    """
    homogenizer = SpectralHomogenizer(source_platform, virtual_sensor, method, target_bands=target_bands,
                                      n_clusters=n_clusters)
    source_bands = surface_reflectance_bands(source_platform)
    missing = [band for band in source_bands if band not in ds.data_vars]
    if missing:
        scene = ds.attrs.get("product_id") or ds.attrs.get("product_path") or "the scene"
        raise ProductError(scene, f"spectral homogenization of {source_platform} needs bands "
                                  f"{', '.join(missing)}, which the dataset lacks")
    n_target = len(homogenizer.target_bands)
    combined = xr.apply_ufunc(
        _apply, *[ds[band].astype(np.float32) for band in source_bands], kwargs={"homogenizer": homogenizer},
        output_core_dims=[[]] * (2 * n_target), dask="parallelized", output_dtypes=[np.float32] * (2 * n_target),
    )

    # Every band of the source sensor goes, thermal, pan and cirrus too: the virtual sensor has no such bands,
    # and their names collide with its own (Landsat's thermal B11 versus Sentinel-2's SWIR B11).
    all_source = set(get_sensor(source_platform).band_names)
    out = ds.drop_vars([v for v in ds.data_vars if v in all_source or str(v).startswith(ERROR_PREFIX)])
    common = {"spechomo_method": homogenizer.method, "spechomo_source_platform": source_platform}
    for i, band in enumerate(homogenizer.target_bands):
        attrs = {"common_name": homogenizer.target_common_names[i],
                 "central_wavelength_nm": round(float(homogenizer.target_wavelength_nm[i]), 2),
                 "units": "1", "long_name": f"surface reflectance in {virtual_sensor} band {band}", **common}
        out[band] = combined[i].assign_attrs(attrs)
        if estimate_accuracy:
            out[f"{ERROR_PREFIX}{band}"] = combined[n_target + i].assign_attrs(
                units="1", long_name=f"expected error (RMSE) of the homogenized {virtual_sensor} band {band}",
                band=band, **common)
    return out.assign_attrs(spechomo_method=homogenizer.method, virtual_sensor_name=virtual_sensor,
                            spechomo_source_platform=source_platform)
