"""Spectral homogenization without a trained model: nearest band, linear interpolation, HLS bandpass.

These are the baselines a trained homogenization has to beat, and the fallbacks where no model exists.
All functions take reflectance arrays ``(..., n_source_bands)`` (0-1, NaN = no data) and return
``(..., n_target_bands)`` float32. Wavelengths are band centres in nm (response-weighted means, as
``gmsdask.sensors`` computes them).

The bandpass coefficients are the NASA HLS v2 linear adjustments of Sentinel-2 MSI to Landsat-8 OLI
(FACTS.md section 5; sen2like inverts them for OLI -> MSI). They are keyed by STAC ``eo:common_name``
so that band names of different sensors meet on the quantity they measure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["HLS_MSI_TO_OLI", "nearest_band_indices", "nearest_band", "interpolation_weights",
           "linear_interpolation", "linear_adjustment"]

#: HLS v2 bandpass adjustment OLI = slope * MSI + offset, per MSI platform and common name (reflectance 0-1).
HLS_MSI_TO_OLI: Mapping[str, Mapping[str, tuple[float, float]]] = {
    "SENTINEL_2A": {
        "coastal": (0.9959, -0.0002), "blue": (0.9778, -0.004), "green": (1.0053, -0.0009),
        "red": (0.9765, 0.0009), "nir08": (0.9983, -0.0001), "swir16": (0.9987, -0.0011),
        "swir22": (1.003, -0.0012),
    },
    "SENTINEL_2B": {
        "coastal": (0.9959, -0.0002), "blue": (0.9778, -0.004), "green": (1.0075, -0.0008),
        "red": (0.9761, 0.001), "nir08": (0.9966, 0.000), "swir16": (1.000, -0.0003),
        "swir22": (0.9867, 0.0004),
    },
}


def nearest_band_indices(source_wavelength_nm: Sequence[float],
                         target_wavelength_nm: Sequence[float]) -> np.ndarray:
    """For each target band, the index of the source band whose centre wavelength is closest (ties: first)."""
    source = np.asarray(source_wavelength_nm, dtype=float)
    target = np.asarray(target_wavelength_nm, dtype=float)
    return np.argmin(np.abs(target[:, None] - source[None, :]), axis=1)


def nearest_band(reflectance: np.ndarray, source_wavelength_nm: Sequence[float],
                 target_wavelength_nm: Sequence[float]) -> np.ndarray:
    """Method ``none``: each target band is the nearest source band, unadjusted."""
    index = nearest_band_indices(source_wavelength_nm, target_wavelength_nm)
    return np.asarray(reflectance, dtype=np.float32)[..., index]


def interpolation_weights(source_wavelength_nm: Sequence[float],
                          target_wavelength_nm: Sequence[float]) -> np.ndarray:
    """``(n_source, n_target)`` weights of linear interpolation between the bracketing source band centres.

    Targets outside the source range take the outermost source band (no extrapolation: a straight line
    through two visible bands says nothing about the SWIR).
    """
    source = np.asarray(source_wavelength_nm, dtype=float)
    target = np.asarray(target_wavelength_nm, dtype=float)
    order = np.argsort(source)
    weights = np.zeros((source.size, target.size))
    for j, wavelength in enumerate(target):
        position = np.interp(wavelength, source[order], np.arange(source.size, dtype=float))
        low = int(np.floor(position))
        high = min(low + 1, source.size - 1)
        fraction = position - low
        weights[order[low], j] += 1.0 - fraction
        weights[order[high], j] += fraction
    return weights


def linear_interpolation(reflectance: np.ndarray, source_wavelength_nm: Sequence[float],
                         target_wavelength_nm: Sequence[float]) -> np.ndarray:
    """Method ``LI``: target bands linearly interpolated across the source band centre wavelengths."""
    weights = interpolation_weights(source_wavelength_nm, target_wavelength_nm).astype(np.float32)
    return np.asarray(reflectance, dtype=np.float32) @ weights


def linear_adjustment(reflectance: np.ndarray, source_index: Sequence[int], slope: Sequence[float],
                      offset: Sequence[float]) -> np.ndarray:
    """Per target band ``slope * source[..., source_index] + offset``; a negative index gives NaN (no mapping)."""
    x = np.asarray(reflectance, dtype=np.float32)
    index = np.asarray(source_index, dtype=int)
    out = x[..., np.where(index >= 0, index, 0)] * np.asarray(slope, dtype=np.float32) \
        + np.asarray(offset, dtype=np.float32)
    out[..., index < 0] = np.nan
    return out
