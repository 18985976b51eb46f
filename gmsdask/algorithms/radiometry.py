"""Radiometric conversions and sun geometry (pure numpy, no xarray, no Dask).

Formulas: ``../shared/reference/FACTS.md`` section 2; solar position after NOAA's solar calculator
(Meeus' low-precision equations, ~0.01 degree from 1950 to 2050).
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

__all__ = [
    "earth_sun_distance_au",
    "solar_position",
    "landsat_toa_reflectance",
    "radiance",
    "brightness_temperature",
    "sentinel2_reflectance",
    "scaled_reflectance",
]


def _as_utc(time: datetime) -> datetime:
    return time.replace(tzinfo=timezone.utc) if time.tzinfo is None else time.astimezone(timezone.utc)


def earth_sun_distance_au(time: datetime) -> float:
    """Earth-Sun distance in astronomical units for any date (no table that ends).

    USNO's approximation ``d = 1.00014 - 0.01671 cos g - 0.00014 cos 2g`` with the Sun's mean anomaly
    ``g = 357.529 + 0.98560028 (JD - 2451545)`` degrees: within ~3e-5 AU of USGS' ephemeris values, where the
    day-of-year cosine often quoted (``1 - 0.01672 cos(0.9856 (doy - 4))``) is off by up to 1e-3 AU.
    """
    julian_day = _as_utc(time).timestamp() / 86400.0 + 2440587.5
    mean_anomaly = np.deg2rad(357.529 + 0.98560028 * (julian_day - 2451545.0))
    return float(1.00014 - 0.01671 * np.cos(mean_anomaly) - 0.00014 * np.cos(2 * mean_anomaly))


def solar_position(latitude_deg: np.ndarray, longitude_deg: np.ndarray,
                   time: datetime) -> tuple[np.ndarray, np.ndarray]:
    """Solar zenith and azimuth angles in degrees (azimuth clockwise from north) at one UTC instant.

    Parameters
    ----------
    latitude_deg, longitude_deg
        Arrays of the same shape, degrees (east positive).
    time
        Acquisition time; naive datetimes are taken as UTC.
    """
    time = _as_utc(time)
    lat = np.deg2rad(np.asarray(latitude_deg, dtype=np.float64))
    lon = np.asarray(longitude_deg, dtype=np.float64)
    julian_day = time.timestamp() / 86400.0 + 2440587.5
    century = (julian_day - 2451545.0) / 36525.0

    mean_longitude = np.deg2rad((280.46646 + century * (36000.76983 + century * 0.0003032)) % 360)
    mean_anomaly = np.deg2rad(357.52911 + century * (35999.05029 - 0.0001537 * century))
    eccentricity = 0.016708634 - century * (0.000042037 + 0.0000001267 * century)
    centre = np.deg2rad(
        np.sin(mean_anomaly) * (1.914602 - century * (0.004817 + 0.000014 * century))
        + np.sin(2 * mean_anomaly) * (0.019993 - 0.000101 * century)
        + np.sin(3 * mean_anomaly) * 0.000289
    )
    true_longitude = mean_longitude + centre
    omega = np.deg2rad(125.04 - 1934.136 * century)
    apparent_longitude = true_longitude - np.deg2rad(0.00569 + 0.00478 * np.sin(omega))
    obliquity = np.deg2rad(
        23 + (26 + (21.448 - century * (46.815 + century * (0.00059 - century * 0.001813))) / 60) / 60
        + 0.00256 * np.cos(omega)
    )
    declination = np.arcsin(np.sin(obliquity) * np.sin(apparent_longitude))

    y = np.tan(obliquity / 2) ** 2
    equation_of_time_min = 4 * np.rad2deg(
        y * np.sin(2 * mean_longitude) - 2 * eccentricity * np.sin(mean_anomaly)
        + 4 * eccentricity * y * np.sin(mean_anomaly) * np.cos(2 * mean_longitude)
        - 0.5 * y * y * np.sin(4 * mean_longitude) - 1.25 * eccentricity ** 2 * np.sin(2 * mean_anomaly)
    )
    minutes = time.hour * 60 + time.minute + (time.second + time.microsecond / 1e6) / 60
    true_solar_time = (minutes + equation_of_time_min + 4 * lon) % 1440
    hour_angle = np.deg2rad(np.where(true_solar_time / 4 < 0, true_solar_time / 4 + 180, true_solar_time / 4 - 180))

    cos_zenith = np.sin(lat) * np.sin(declination) + np.cos(lat) * np.cos(declination) * np.cos(hour_angle)
    zenith = np.arccos(np.clip(cos_zenith, -1.0, 1.0))
    azimuth = np.arctan2(
        np.sin(hour_angle),
        np.cos(hour_angle) * np.sin(lat) - np.tan(declination) * np.cos(lat),
    )
    return np.rad2deg(zenith), (np.rad2deg(azimuth) + 180.0) % 360.0


def _linear(dn: np.ndarray, mult: float, add: float, fill_dn: int | None) -> np.ndarray:
    """``mult * dn + add`` in float32, computed in place (float32 keeps 7 digits: ample for 16-bit DNs)."""
    values = dn.astype(np.float32)
    values *= np.float32(mult)
    values += np.float32(add)
    if fill_dn is not None:
        values[dn == fill_dn] = np.nan
    return values


def landsat_toa_reflectance(dn: np.ndarray, mult: float, add: float, cos_sun_zenith: np.ndarray | float,
                            fill_dn: int | None = 0) -> np.ndarray:
    """Landsat TOA reflectance ``(mult * Q + add) / cos(sun zenith)``; fill DN -> NaN; float32.

    ``cos_sun_zenith`` is a scalar or an array broadcasting to ``dn`` (the cosine, so that per-pixel angle grids
    are interpolated in cosine space and no per-pixel trigonometry is needed).
    """
    values = _linear(dn, mult, add, fill_dn)
    values /= np.asarray(cos_sun_zenith, dtype=np.float32)
    return values


def scaled_reflectance(dn: np.ndarray, mult: float, add: float, fill_dn: int | None = 0) -> np.ndarray:
    """A linear rescaling ``mult * Q + add`` (Level-2 surface reflectance, surface temperature); fill -> NaN."""
    return _linear(dn, mult, add, fill_dn)


def radiance(dn: np.ndarray, mult: float, add: float, fill_dn: int | None = 0) -> np.ndarray:
    """At-sensor spectral radiance ``L = mult * Q + add`` in W m-2 sr-1 um-1; fill -> NaN."""
    return _linear(dn, mult, add, fill_dn)


def brightness_temperature(dn: np.ndarray, radiance_mult: float, radiance_add: float, k1: float, k2: float,
                           fill_dn: int | None = 0) -> np.ndarray:
    """At-sensor brightness temperature in K: ``K2 / ln(K1 / L + 1)``; fill -> NaN; float32."""
    spectral_radiance = _linear(dn, radiance_mult, radiance_add, fill_dn).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (k2 / np.log(k1 / spectral_radiance + 1.0)).astype(np.float32)


def sentinel2_reflectance(dn: np.ndarray, offset: float, quantification: float,
                          fill_dn: int | None = 0) -> np.ndarray:
    """Sentinel-2 reflectance ``(DN + offset) / quantification`` (L1C TOA, L2A BOA); DN 0 -> NaN; float32.

    ``DN + offset`` is integer arithmetic (exact in float32 below 2**24), so ``DN == -offset`` gives exactly 0.
    """
    values = dn.astype(np.float32)
    values += np.float32(offset)
    values /= np.float32(quantification)
    if fill_dn is not None:
        values[dn == fill_dn] = np.nan
    return values
