"""Surface materials of the synthetic landscape: reflectance spectra 350-2600 nm and their band values.

The spectra are hand-written typical curves (piecewise linear through anchor points read off library
spectra), not measurements. What they resemble is named per material; the features that matter for
multispectral bands are kept: the chlorophyll well and red edge of green vegetation, the liquid-water
absorptions at 1450 and 1940 nm, the cellulose/lignin dip of dry vegetation at 2100 nm, the rising
brown-soil continuum, dark flat asphalt, and water that is dark beyond 700 nm. Band values are the
spectra integrated with each sensor's real spectral response, so Landsat and Sentinel-2 see the same
ground through their own bands.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..sensors import get_sensor, spectral_response

__all__ = ["Material", "MATERIALS", "MATERIAL_NAMES", "WAVELENGTH_NM", "CLOUD_SPECTRUM", "material_spectra",
           "band_reflectance", "cloud_band_reflectance", "reflective_bands"]

#: The wavelengths all spectra are sampled at, nm (1 nm, like the response functions).
WAVELENGTH_NM = np.arange(350.0, 2601.0, 1.0)


@dataclass(frozen=True)
class Material:
    """A surface material: land-cover ``code`` (1-based), ``name``, anchor points of its spectrum, and its
    typical summer midday surface temperature (K) for the thermal bands."""

    code: int
    name: str
    resembles: str
    anchors: tuple[tuple[float, float], ...]
    surface_temperature_k: float

    def spectrum(self) -> np.ndarray:
        nm, reflectance = np.array(self.anchors, dtype=float).T
        return np.interp(WAVELENGTH_NM, nm, reflectance)


MATERIALS: tuple[Material, ...] = (
    Material(1, "water", "USGS splib07 lake water with some suspended matter",
             ((350, 0.05), (450, 0.06), (520, 0.065), (570, 0.06), (620, 0.04), (680, 0.03), (710, 0.02),
              (760, 0.01), (820, 0.006), (900, 0.004), (1000, 0.003), (2600, 0.002)), 290.0),
    Material(2, "bare_soil", "USGS splib07 brown to dark brown loam",
             ((350, 0.05), (400, 0.06), (500, 0.10), (600, 0.16), (700, 0.21), (800, 0.25), (1000, 0.29),
              (1300, 0.33), (1400, 0.31), (1450, 0.28), (1550, 0.35), (1700, 0.37), (1850, 0.33),
              (1940, 0.26), (2050, 0.32), (2200, 0.31), (2300, 0.29), (2500, 0.26), (2600, 0.25)), 306.0),
    Material(3, "cropland", "green cereal canopy at full cover (ECOSTRESS/ASTER green grass and crop spectra)",
             ((350, 0.03), (450, 0.035), (500, 0.045), (550, 0.10), (600, 0.06), (650, 0.04), (675, 0.033),
              (690, 0.05), (705, 0.12), (720, 0.26), (740, 0.40), (760, 0.46), (800, 0.48), (900, 0.49),
              (1000, 0.48), (1100, 0.46), (1200, 0.41), (1300, 0.42), (1400, 0.27), (1450, 0.18),
              (1550, 0.26), (1650, 0.30), (1800, 0.26), (1900, 0.10), (1950, 0.07), (2050, 0.12),
              (2200, 0.18), (2300, 0.14), (2500, 0.07), (2600, 0.06)), 296.0),
    Material(4, "grassland", "pasture / meadow, mixed green and senescent grass",
             ((350, 0.04), (450, 0.045), (500, 0.055), (550, 0.10), (600, 0.075), (650, 0.06), (675, 0.055),
              (690, 0.07), (705, 0.13), (720, 0.22), (740, 0.32), (760, 0.37), (800, 0.39), (900, 0.40),
              (1000, 0.40), (1100, 0.39), (1200, 0.36), (1300, 0.37), (1400, 0.27), (1450, 0.21),
              (1550, 0.28), (1650, 0.31), (1800, 0.28), (1900, 0.13), (1950, 0.10), (2050, 0.15),
              (2200, 0.21), (2300, 0.18), (2500, 0.10), (2600, 0.09)), 298.0),
    Material(5, "dry_vegetation", "USGS splib07 dry grass / cereal stubble (cellulose-lignin 2100 nm dip)",
             ((350, 0.06), (400, 0.07), (500, 0.12), (600, 0.20), (700, 0.27), (800, 0.32), (1000, 0.36),
              (1200, 0.39), (1450, 0.33), (1650, 0.42), (1800, 0.40), (1940, 0.27), (2000, 0.30),
              (2100, 0.27), (2200, 0.32), (2300, 0.29), (2500, 0.24), (2600, 0.23)), 303.0),
    Material(6, "broadleaf_forest", "deciduous broadleaf canopy (e.g. beech/oak stands)",
             ((350, 0.015), (450, 0.018), (500, 0.021), (520, 0.04), (550, 0.075), (600, 0.05), (650, 0.045),
              (675, 0.04), (690, 0.05), (705, 0.10), (720, 0.21), (740, 0.32), (760, 0.37), (800, 0.39), (900, 0.40),
              (1000, 0.39), (1100, 0.37), (1200, 0.32), (1300, 0.33), (1400, 0.20), (1450, 0.13),
              (1550, 0.18), (1650, 0.21), (1800, 0.18), (1900, 0.06), (1950, 0.045), (2050, 0.07),
              (2200, 0.10), (2300, 0.08), (2500, 0.04), (2600, 0.035)), 294.0),
    Material(7, "coniferous_forest", "needleleaf canopy (e.g. pine/spruce stands): dark, shadowed crowns",
             ((350, 0.01), (450, 0.011), (500, 0.013), (520, 0.025), (550, 0.045), (600, 0.031), (650, 0.028),
              (675, 0.025), (690, 0.03), (705, 0.07), (720, 0.14), (740, 0.21), (760, 0.24), (800, 0.25), (900, 0.26),
              (1000, 0.25), (1100, 0.24), (1200, 0.21), (1300, 0.21), (1400, 0.12), (1450, 0.08),
              (1550, 0.11), (1650, 0.13), (1800, 0.11), (1900, 0.04), (1950, 0.03), (2050, 0.045),
              (2200, 0.06), (2300, 0.05), (2500, 0.025), (2600, 0.02)), 293.0),
    Material(8, "asphalt", "ECOSTRESS aged asphalt road surface",
             ((350, 0.04), (400, 0.05), (500, 0.06), (700, 0.08), (1000, 0.10), (1600, 0.12), (2200, 0.13),
              (2600, 0.13)), 312.0),
    Material(9, "roof", "urban roofs: mix of red clay tiles and concrete (ECOSTRESS construction materials)",
             ((350, 0.08), (450, 0.10), (550, 0.14), (600, 0.20), (650, 0.25), (700, 0.28), (800, 0.31),
              (1000, 0.34), (1300, 0.37), (1600, 0.39), (2000, 0.36), (2200, 0.35), (2600, 0.33)), 310.0),
)

#: Land-cover codes of the truth's class map (0 = no data).
MATERIAL_NAMES: dict[int, str] = {m.code: m.name for m in MATERIALS}

#: Top-of-cloud reflectance: bright and flat in the VNIR, lower in the SWIR where cloud droplets absorb.
CLOUD_SPECTRUM = np.interp(WAVELENGTH_NM, [350, 1000, 1300, 1600, 2200, 2600], [0.78, 0.76, 0.70, 0.55, 0.36, 0.30])


def material_spectra() -> np.ndarray:
    """``(material, wavelength)`` reflectance of all materials on ``WAVELENGTH_NM``."""
    return np.stack([m.spectrum() for m in MATERIALS])


def reflective_bands(platform: str) -> list[str]:
    """The platform's bands that measure reflected sunlight (all but the thermal ones)."""
    return [b.name for b in get_sensor(platform).bands if b.kind != "thermal"]


@functools.lru_cache(maxsize=None)
def _band_table(platform: str) -> dict[str, np.ndarray]:
    spectra = material_spectra()
    return {band: spectral_response(platform, band).band_average(WAVELENGTH_NM, spectra).astype(np.float32)
            for band in reflective_bands(platform)}


def band_reflectance(platform: str, band: str) -> np.ndarray:
    """Reflectance of each material (in ``MATERIALS`` order) in ``band`` of ``platform``."""
    return _band_table(platform)[band].copy()


def cloud_band_reflectance(platform: str, band: str) -> float:
    """Top-of-cloud reflectance in ``band`` of ``platform``."""
    return float(spectral_response(platform, band).band_average(WAVELENGTH_NM, CLOUD_SPECTRUM))
