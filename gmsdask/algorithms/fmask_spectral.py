"""Per-pixel spectral tests of Fmask (Zhu & Woodcock 2012; Zhu et al. 2015; Qiu et al. 2019, "Fmask 4").

Pure numpy on TOA reflectance (unitless, 0..~1.2) and brightness temperature (K); NaN marks no data. Every
function here looks at one pixel at a time except :func:`cloud_displacement_index`, which uses a square
window (its half width is :func:`cdi_radius_px`), so callers that work per chunk need that overlap.

Tests (Zhu & Woodcock 2012, equations 1-7, with the Fmask 3.3 cirrus test and the Fmask 4 NDBI):

- basic: ``SWIR2 > 0.03``, ``BT < 27 C``, ``NDSI < 0.8``, ``NDVI < 0.8``
- whiteness: ``sum(|visible - mean| / mean) < 0.7``
- haze-optimized transformation: ``blue - 0.5 red - 0.08 > 0``
- ``NIR / SWIR1 > 0.75``
- potential cloud pixel = all of the above, or ``cirrus > 0.01`` (OLI B9, MSI B10)
- water: ``(NDVI < 0.01 and NIR < 0.11) or (0 < NDVI < 0.1 and NIR < 0.05)``
- snow/ice: ``NDSI > 0.15``, ``NIR > 0.11``, ``green > 0.1``, ``BT < 3.8 C`` (without thermal: no BT test)

Written here rather than taken from ``python-fmask``/``Fmask 4``: those read whole scenes from files; gmsdask
needs the same rules on Dask chunks of its own scene model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "CELSIUS_0_K",
    "FmaskInputs",
    "SpectralFeatures",
    "cdi_radius_px",
    "cloud_displacement_index",
    "normalized_difference",
    "spectral_features",
]

CELSIUS_0_K = 273.15
_BASIC_SWIR2 = 0.03
_BASIC_BT_K = CELSIUS_0_K + 27.0
_BASIC_NDSI = 0.8
_BASIC_NDVI = 0.8
_WHITENESS_MAX = 0.7
_HOT_OFFSET = 0.08
_NIR_SWIR1_MIN = 0.75
_CIRRUS_MIN = 0.01
_SNOW_NDSI = 0.15
_SNOW_NIR = 0.11
_SNOW_GREEN = 0.1
_SNOW_BT_K = CELSIUS_0_K + 3.8
#: Frantz et al. (2018) compute the CDI's variances in a 7 x 7 window of 20 m pixels.
_CDI_WINDOW_M = 140.0


@dataclass(frozen=True)
class FmaskInputs:
    """The bands Fmask needs, all on one grid (float32, NaN = no data).

    ``cirrus`` (OLI B9, MSI B10), ``bt`` (brightness temperature, K) and the Sentinel-2 bands of the cloud
    displacement index (``red_edge3`` B07, ``nir_broad`` B08, ``nir`` is B8A there) are ``None`` when the
    sensor has none. ``saturated_visible`` is True where a visible band is saturated (Fmask then keeps
    NDVI/NDSI from counting against cloud).
    """

    blue: np.ndarray
    green: np.ndarray
    red: np.ndarray
    nir: np.ndarray
    swir1: np.ndarray
    swir2: np.ndarray
    cirrus: np.ndarray | None = None
    bt: np.ndarray | None = None
    red_edge3: np.ndarray | None = None
    nir_broad: np.ndarray | None = None
    saturated_visible: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.nir.shape


@dataclass(frozen=True)
class SpectralFeatures:
    """Per-pixel results of the spectral tests (boolean masks are False where ``valid`` is False)."""

    valid: np.ndarray
    potential_cloud: np.ndarray
    water: np.ndarray
    snow: np.ndarray
    ndvi: np.ndarray
    ndsi: np.ndarray
    ndbi: np.ndarray
    whiteness: np.ndarray
    hot: np.ndarray
    variability_probability: np.ndarray
    cirrus_probability: np.ndarray
    swir1: np.ndarray
    swir2: np.ndarray
    nir: np.ndarray
    bt: np.ndarray | None

    @property
    def clear(self) -> np.ndarray:
        """Valid pixels that failed the potential-cloud tests."""
        return self.valid & ~self.potential_cloud

    @property
    def clear_land(self) -> np.ndarray:
        return self.clear & ~self.water

    @property
    def clear_water(self) -> np.ndarray:
        """Clear-sky water (Zhu & Woodcock 2012, eq. 7: SWIR2 < 0.03)."""
        return self.clear & self.water & (self.swir2 < _BASIC_SWIR2)


def normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a - b) / (a + b)``; 0 where ``a + b`` is 0 (float32)."""
    total = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        nd = np.where(total != 0, (a - b) / np.where(total != 0, total, 1), 0)
    return nd.astype(np.float32, copy=False)


def _whiteness(blue: np.ndarray, green: np.ndarray, red: np.ndarray) -> np.ndarray:
    mean = (blue + green + red) / np.float32(3)
    with np.errstate(divide="ignore", invalid="ignore"):
        white = (np.abs(blue - mean) + np.abs(green - mean) + np.abs(red - mean)) / mean
    # a dark or negative visible mean cannot be a white cloud
    return np.where(mean > 0, white, np.float32(np.inf)).astype(np.float32)


def spectral_features(bands: FmaskInputs) -> SpectralFeatures:
    """All per-pixel Fmask tests of one block of pixels."""
    b = bands
    required = (b.blue, b.green, b.red, b.nir, b.swir1, b.swir2)
    valid = np.logical_and.reduce([np.isfinite(a) for a in required])
    if b.bt is not None:
        valid &= np.isfinite(b.bt)
    ndvi = normalized_difference(b.nir, b.red)
    ndsi = normalized_difference(b.green, b.swir1)
    ndbi = normalized_difference(b.swir1, b.nir)
    whiteness = _whiteness(b.blue, b.green, b.red)
    hot = (b.blue - np.float32(0.5) * b.red - np.float32(_HOT_OFFSET)).astype(np.float32)
    with np.errstate(invalid="ignore"):
        basic = (b.swir2 > _BASIC_SWIR2) & (ndsi < _BASIC_NDSI) & (ndvi < _BASIC_NDVI)
        if b.bt is not None:
            basic &= b.bt < _BASIC_BT_K
        nir_swir = b.nir > _NIR_SWIR1_MIN * b.swir1  # NIR / SWIR1 > 0.75 without dividing by ~0
        potential = basic & (whiteness < _WHITENESS_MAX) & (hot > 0) & nir_swir
        cirrus_probability = np.zeros(b.shape, dtype=np.float32)
        if b.cirrus is not None:
            potential |= b.cirrus > _CIRRUS_MIN
            # Fmask 3.3: cirrus probability = cirrus reflectance / 0.04 (not capped)
            cirrus_probability = np.clip(np.nan_to_num(b.cirrus / np.float32(0.04)), 0, None).astype(np.float32)
        water = ((ndvi < 0.01) & (b.nir < 0.11)) | ((ndvi > 0) & (ndvi < 0.1) & (b.nir < 0.05))
        snow = (ndsi > _SNOW_NDSI) & (b.nir > _SNOW_NIR) & (b.green > _SNOW_GREEN)
        if b.bt is not None:
            snow &= b.bt < _SNOW_BT_K
    variability = _variability_probability(ndvi, ndsi, ndbi, whiteness, b.saturated_visible)
    return SpectralFeatures(
        valid=valid, potential_cloud=potential & valid, water=water & valid, snow=snow & valid,
        ndvi=ndvi, ndsi=ndsi, ndbi=ndbi, whiteness=whiteness, hot=hot, variability_probability=variability,
        cirrus_probability=cirrus_probability, swir1=b.swir1, swir2=b.swir2, nir=b.nir, bt=b.bt)


def _variability_probability(ndvi: np.ndarray, ndsi: np.ndarray, ndbi: np.ndarray, whiteness: np.ndarray,
                             saturated_visible: np.ndarray | None) -> np.ndarray:
    """Zhu & Woodcock 2012 eq. 15 with Fmask 4's NDBI: ``1 - max(|NDVI|, |NDSI|, |NDBI|, whiteness)``."""
    if saturated_visible is not None:
        # a saturated visible band makes NDSI too low and NDVI too high over bright clouds
        ndsi = np.where(saturated_visible & (ndsi < 0), 0, ndsi)
        ndvi = np.where(saturated_visible & (ndvi > 0), 0, ndvi)
    spread = np.maximum.reduce([np.abs(ndvi), np.abs(ndsi), np.abs(ndbi), np.minimum(whiteness, 1)])
    return (1 - spread).astype(np.float32)


def cdi_radius_px(pixel_m: float) -> int:
    """Half width (pixels) of the CDI window: 7 x 7 pixels of 20 m, at least 3 x 3 pixels."""
    return max(1, round(_CDI_WINDOW_M / 2 / pixel_m))


def _local_variance(values: np.ndarray, size: int) -> np.ndarray:
    mean = ndimage.uniform_filter(values, size=size, mode="reflect")
    square = ndimage.uniform_filter(values * values, size=size, mode="reflect")
    return np.maximum(square - mean * mean, 0)


def cloud_displacement_index(red_edge3: np.ndarray, nir_broad: np.ndarray, nir_narrow: np.ndarray,
                             pixel_m: float) -> np.ndarray:
    """Frantz et al. (2018) cloud displacement index of Sentinel-2 (float32, -1..1, NaN where undefined).

    ``CDI = (V(B08/B8A) - V(B07/B8A)) / (V(B08/B8A) + V(B07/B8A))`` with ``V`` the variance in a window of
    ``2 * cdi_radius_px(pixel_m) + 1`` pixels. The parallax between the MSI's detectors makes clouds (high
    above ground) show structure in the B08/B8A ratio, so clouds have CDI near -1, bright ground near 0..1.
    Windows that reach no-data pixels read them as the window mean (NaN becomes the ratio 1).
    """
    size = 2 * cdi_radius_px(pixel_m) + 1
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio8 = np.nan_to_num(nir_broad / nir_narrow, nan=1.0, posinf=1.0, neginf=1.0).astype(np.float64)
        ratio7 = np.nan_to_num(red_edge3 / nir_narrow, nan=1.0, posinf=1.0, neginf=1.0).astype(np.float64)
        v8 = _local_variance(ratio8, size)
        v7 = _local_variance(ratio7, size)
        total = v8 + v7
        cdi = np.where(total > 1e-12, (v8 - v7) / np.where(total > 1e-12, total, 1), np.nan)
    return cdi.astype(np.float32)
