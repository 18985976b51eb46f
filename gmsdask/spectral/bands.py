"""Which bands of a sensor take part in spectral homogenization, and whose responses stand in for a sensor."""

from __future__ import annotations

from ..errors import ConfigError
from ..sensors import SENSORS, get_sensor

__all__ = ["surface_reflectance_bands", "model_platform", "central_wavelengths_nm", "common_names"]

# Sentinel-2 B09 measures water vapour and B10 cirrus: atmosphere, not surface, so no surface reflectance.
_NOT_SURFACE = {"B09"}

# Platforms without their own fitted models: the responses (and models) of a sibling instrument stand in.
# MSI-C: pyrsr has no measured MSI-C responses yet (sensors.py uses MSI-B's); TM on Landsat-4 and -5 were
# built to one specification.
_STAND_INS = {"SENTINEL_2C": "SENTINEL_2B", "LANDSAT_4": "LANDSAT_5"}


def _known(platform: str, key: str) -> str:
    if platform not in SENSORS:
        raise ConfigError(key, f"unknown platform {platform!r}; supported: {', '.join(SENSORS)}")
    return platform


def surface_reflectance_bands(platform: str) -> list[str]:
    """Surface-reflectance bands in provider order: Sentinel-2 B01-B08, B8A, B11, B12; Landsat-8/9 B1-B7;
    TM/ETM+ B1-B5, B7."""
    sensor = get_sensor(_known(platform, "platform"))
    return [b.name for b in sensor.bands if b.kind == "reflective" and b.name not in _NOT_SURFACE]


def model_platform(platform: str) -> str:
    """The platform whose spectral responses and fitted models are used for ``platform``."""
    return _STAND_INS.get(_known(platform, "platform"), platform)


def central_wavelengths_nm(platform: str, bands: list[str]) -> list[float]:
    """Response-weighted centre wavelengths of ``bands``, nm."""
    sensor = get_sensor(platform)
    return [sensor.central_wavelength_nm(band) for band in bands]


def common_names(platform: str, bands: list[str]) -> list[str]:
    """STAC ``eo:common_name`` of ``bands``."""
    sensor = get_sensor(platform)
    return [sensor.band(band).common_name for band in bands]
