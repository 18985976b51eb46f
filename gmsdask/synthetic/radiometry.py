"""From physical values to the products' digital numbers, with each provider's calibration and quantization.

DN 0 is fill in both families; the largest DN is "saturated". Values that would quantize outside the valid
range are clipped to it (so a synthetic product has no saturated pixels unless asked to).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Quantization", "SENTINEL2_REFLECTANCE", "LANDSAT_REFLECTANCE", "landsat_reflectance_quantization",
           "planck_radiance", "brightness_temperature", "LandsatThermal"]


@dataclass(frozen=True)
class Quantization:
    """A linear code: ``value = dn * scale + offset``; DN 0 is fill and ``dn_max`` saturated."""

    scale: float
    offset: float
    dn_min: int = 1
    dn_max: int = 65534

    def encode(self, value: np.ndarray, nodata: np.ndarray | None = None) -> np.ndarray:
        """uint16 DN of ``value`` (NaN and ``nodata`` pixels become 0)."""
        dn = np.rint((np.asarray(value, dtype=np.float64) - self.offset) / self.scale)
        invalid = ~np.isfinite(dn)
        if nodata is not None:
            invalid |= nodata
        np.clip(dn, self.dn_min, self.dn_max, out=dn, where=~invalid)
        dn[invalid] = 0
        return dn.astype(np.uint16)

    def decode(self, dn: np.ndarray) -> np.ndarray:
        """Values of ``dn`` (float64; fill -> NaN)."""
        dn = np.asarray(dn)
        return np.where(dn == 0, np.nan, dn * self.scale + self.offset)

    @property
    def step(self) -> float:
        """The quantization step: the largest rounding error is half of it."""
        return abs(self.scale)


#: Sentinel-2 L1C/L2A from processing baseline 04.00: DN = round(rho * 10000) + 1000.
SENTINEL2_REFLECTANCE = Quantization(scale=1e-4, offset=-0.1)
#: Landsat Collection 2 Level-1: rho' = 2.0e-5 * DN - 0.1 (rho' = rho * sin(sun elevation)).
LANDSAT_REFLECTANCE = Quantization(scale=2.0e-5, offset=-0.1, dn_max=65535)


def landsat_reflectance_quantization(sun_elevation_deg: float) -> Quantization:
    """The code of Landsat *sun-corrected* TOA reflectance rho: DN = (rho * sin(elev) + 0.1) / 2e-5."""
    sin_elevation = math.sin(math.radians(sun_elevation_deg))
    base = LANDSAT_REFLECTANCE
    return Quantization(scale=base.scale / sin_elevation, offset=base.offset / sin_elevation, dn_min=base.dn_min,
                        dn_max=base.dn_max)


def planck_radiance(temperature_k: np.ndarray, k1: float, k2: float) -> np.ndarray:
    """Band radiance (W m-2 sr-1 um-1) of a black body, from the band's thermal constants K1, K2."""
    return k1 / np.expm1(k2 / np.asarray(temperature_k, dtype=np.float64))


def brightness_temperature(radiance: np.ndarray, k1: float, k2: float) -> np.ndarray:
    """T = K2 / ln(K1 / L + 1), K."""
    return k2 / np.log(k1 / np.asarray(radiance, dtype=np.float64) + 1.0)


@dataclass(frozen=True)
class LandsatThermal:
    """A TIRS band's constants: radiance = mult * DN + add; T = K2 / ln(K1 / radiance + 1)."""

    k1: float
    k2: float
    radiance_mult: float
    radiance_add: float

    def encode(self, temperature_k: np.ndarray, nodata: np.ndarray | None = None) -> np.ndarray:
        radiance = planck_radiance(temperature_k, self.k1, self.k2)
        return Quantization(self.radiance_mult, self.radiance_add, dn_max=65535).encode(radiance, nodata)

    def decode(self, dn: np.ndarray) -> np.ndarray:
        radiance = Quantization(self.radiance_mult, self.radiance_add).decode(dn)
        return brightness_temperature(radiance, self.k1, self.k2)
