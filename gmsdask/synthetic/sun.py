"""Where the sun is: solar zenith and azimuth for a time and place, and the Earth-Sun distance.

NOAA's "general solar position" series (Spencer 1971 Fourier fits for declination and the equation of
time); accurate to ~0.1 degree, which is what the products' metadata carry.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np

__all__ = ["solar_angles", "earth_sun_distance_au", "day_of_year"]


def day_of_year(time: datetime) -> int:
    return time.timetuple().tm_yday


def earth_sun_distance_au(time: datetime) -> float:
    """Earth-Sun distance in astronomical units for the day of ``time`` (no table, any year)."""
    return 1.0 - 0.01672 * math.cos(math.radians(0.9856 * (day_of_year(time) - 4)))


def solar_angles(time: datetime, lat_deg: np.ndarray | float, lon_deg: np.ndarray | float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Solar zenith and azimuth (degrees; azimuth clockwise from true north) at ``time`` (UTC)."""
    time = time.astimezone(timezone.utc)
    lat = np.radians(np.asarray(lat_deg, dtype=float))
    lon = np.asarray(lon_deg, dtype=float)
    hours = time.hour + time.minute / 60.0 + (time.second + time.microsecond * 1e-6) / 3600.0
    gamma = 2.0 * math.pi / 365.0 * (day_of_year(time) - 1 + (hours - 12.0) / 24.0)
    eq_time_min = 229.18 * (0.000075 + 0.001868 * math.cos(gamma) - 0.032077 * math.sin(gamma)
                            - 0.014615 * math.cos(2 * gamma) - 0.040849 * math.sin(2 * gamma))
    declination = (0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma)
                   - 0.006758 * math.cos(2 * gamma) + 0.000907 * math.sin(2 * gamma)
                   - 0.002697 * math.cos(3 * gamma) + 0.00148 * math.sin(3 * gamma))
    true_solar_time_min = hours * 60.0 + eq_time_min + 4.0 * lon
    hour_angle = np.radians(true_solar_time_min / 4.0 - 180.0)
    cos_zenith = (np.sin(lat) * math.sin(declination)
                  + np.cos(lat) * math.cos(declination) * np.cos(hour_angle))
    zenith = np.degrees(np.arccos(np.clip(cos_zenith, -1.0, 1.0)))
    # atan2 form of the azimuth measured from south, turned to "clockwise from north"
    azimuth = np.degrees(np.arctan2(np.sin(hour_angle),
                                    np.cos(hour_angle) * np.sin(lat) - math.tan(declination) * np.cos(lat)))
    azimuth = np.mod(azimuth + 180.0, 360.0)
    return zenith, azimuth
