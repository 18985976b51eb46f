"""Sun-synchronous orbits of Landsat and Sentinel-2: overpass time, ground track, path/row, orbit numbers.

A circular orbit with the published inclination, nodal period and mean local time of the descending node;
the Earth turns under it at one revolution per solar day (the node precesses with the sun). That is
enough to give each synthetic product a consistent overpass time, WRS-2 path/row or Sentinel-2 relative
orbit, swath orientation and view angles. Checked against real products: WRS-2 193/023 is Berlin,
010065 is centred at (-7.2, -80.0) at 15:28 UTC; Sentinel-2 R023/T29UNU at 11:54 UTC and R030/T56JMM at
00:02 UTC follow from one node longitude of relative orbit 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import numpy as np
from pyproj import Transformer

from .parameters import SyntheticParameterError

__all__ = ["OrbitModel", "LANDSAT_ORBIT", "SENTINEL2_ORBIT", "Overpass", "plan_overpass",
           "wrs2_row", "sentinel2_absolute_orbit"]

_EARTH_TURN_DEG_PER_MIN = 360.0 / 1440.0
_KM_PER_DEG = 111.32


@dataclass(frozen=True)
class OrbitModel:
    """A sun-synchronous, descending-node-referenced orbit.

    ``track_count`` ground tracks repeat; spatially adjacent tracks are ``360 / track_count`` degrees of node
    longitude apart. Track ``n``'s node longitude is ``first_node_lon_deg - (n - 1) * node_step_deg``.
    """

    name: str
    inclination_deg: float
    period_min: float
    altitude_km: float
    node_local_time_h: float
    half_swath_km: float
    track_count: int
    first_node_lon_deg: float
    node_step_deg: float

    def track_node_lon(self, track: int) -> float:
        return _wrap180(self.first_node_lon_deg - (track - 1) * self.node_step_deg)

    def nearest_track(self, node_lon_deg: float) -> int:
        tracks = np.arange(1, self.track_count + 1)
        node_lons = self.first_node_lon_deg - (tracks - 1) * self.node_step_deg
        distance = np.abs(_wrap180(node_lons - node_lon_deg))
        return int(tracks[np.argmin(distance)])

    def track_offset(self, lat_deg: float) -> tuple[float, float]:
        """Longitude east of the descending node (deg) and minutes after it where the track is at ``lat``."""
        inc = math.radians(self.inclination_deg)
        ratio = math.sin(math.radians(lat_deg)) / math.sin(inc)
        if abs(ratio) > 1.0:
            raise SyntheticParameterError("location", f"latitude {lat_deg:.2f} is beyond the {self.name} orbit")
        u = math.pi - math.asin(ratio)  # argument of latitude on the descending half
        inertial = math.degrees(math.atan2(math.cos(inc) * math.sin(u), math.cos(u))) - 180.0
        minutes = (math.degrees(u) - 180.0) / 360.0 * self.period_min
        return _wrap180(inertial - _EARTH_TURN_DEG_PER_MIN * minutes), minutes


#: WRS-2: 233 paths, path 1 crosses the equator at 64.6 W, 10:11 mean local time (Landsat 8/9).
LANDSAT_ORBIT = OrbitModel("Landsat WRS-2", 98.2, 98.884, 705.0, 10.0 + 11.0 / 60.0, 92.5,
                           233, -64.6, 360.0 / 233.0)
#: Sentinel-2: 143 orbits in 10 days, descending node at 10:30; relative orbits are numbered in time order,
#: so spatial neighbours are 10 orbits apart (node of R001 fitted to R023/T29UNU and R030/T56JMM).
SENTINEL2_ORBIT = OrbitModel("Sentinel-2", 98.62, 14400.0 / 143.0, 786.0, 10.5, 145.0,
                             143, 169.1, 3600.0 / 143.0)


def _wrap180(angle: float | np.ndarray) -> float | np.ndarray:
    return (np.asarray(angle) + 180.0) % 360.0 - 180.0 if isinstance(angle, np.ndarray) else \
        (angle + 180.0) % 360.0 - 180.0


@dataclass(frozen=True)
class Overpass:
    """One descending pass over a place: when, on which track, and how the swath lies in the UTM zone."""

    orbit: OrbitModel
    time: datetime
    track: int
    node_lon_deg: float
    epsg: int
    track_point_xy: tuple[float, float]
    along_track_xy: tuple[float, float]

    def view_angles(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """View zenith and azimuth (deg; azimuth from the ground towards the sensor) at UTM ``x``, ``y``."""
        ax, ay = self.along_track_xy
        # cross-track coordinate: positive to the right of the direction of motion
        cross_m = (np.asarray(x) - self.track_point_xy[0]) * ay - (np.asarray(y) - self.track_point_xy[1]) * ax
        zenith = np.degrees(np.arctan(np.abs(cross_m) / (self.orbit.altitude_km * 1000.0)))
        to_sensor_azimuth = math.degrees(math.atan2(-ay, ax))  # the left-hand normal of the motion
        azimuth = np.where(cross_m >= 0, to_sensor_azimuth, to_sensor_azimuth + 180.0) % 360.0
        return zenith, azimuth

    def mean_view_angles(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """Mean view zenith and azimuth (deg) over the points ``x``, ``y`` (azimuth: of the mean view vector)."""
        zenith, azimuth = self.view_angles(np.ravel(x), np.ravel(y))
        mean_azimuth = math.degrees(math.atan2(np.mean(np.sin(np.radians(azimuth)) * zenith),
                                               np.mean(np.cos(np.radians(azimuth)) * zenith))) % 360.0
        return float(np.mean(zenith)), mean_azimuth

    def cross_track_km(self, x: float, y: float) -> float:
        ax, ay = self.along_track_xy
        return ((x - self.track_point_xy[0]) * ay - (y - self.track_point_xy[1]) * ax) / 1000.0

    @property
    def heading_deg(self) -> float:
        """Direction of motion in the UTM grid, degrees clockwise from grid north."""
        return math.degrees(math.atan2(*self.along_track_xy)) % 360.0


def plan_overpass(orbit: OrbitModel, epsg: int, x: float, y: float, when: date | datetime) -> Overpass:
    """The pass of ``orbit`` over UTM point ``(x, y)``.

    ``when`` a date: the nearest ground track at the orbit's local time on that date (a real satellite
    is over a given place only every few days; the synthetic one comes when asked). ``when`` a datetime
    (UTC): the track the satellite is on at that time, which must see the place.
    """
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    lon, lat = to_lonlat.transform(x, y)
    lon_offset, minutes_after_node = orbit.track_offset(lat)
    if isinstance(when, datetime):
        when = when.astimezone(timezone.utc) if when.tzinfo else when.replace(tzinfo=timezone.utc)
        node_utc_h = (when.hour + when.minute / 60 + when.second / 3600) - minutes_after_node / 60.0
        node_lon = _wrap180(15.0 * (orbit.node_local_time_h - node_utc_h))
        track = orbit.nearest_track(node_lon)
        overpass_time = when
    else:
        track = orbit.nearest_track(lon - lon_offset)
        node_lon = orbit.track_node_lon(track)
        hours = (orbit.node_local_time_h - node_lon / 15.0 + minutes_after_node / 60.0) % 24.0
        overpass_time = datetime.combine(when, time(0, tzinfo=timezone.utc)) + \
            timedelta(microseconds=round(hours * 3.6e9 / 1e3) * 1e3)
    overpass = _overpass_geometry(orbit, epsg, lat, node_lon, lon_offset, track, overpass_time, to_lonlat)
    cross_km = overpass.cross_track_km(x, y)
    if abs(cross_km) > orbit.half_swath_km:
        raise SyntheticParameterError(
            "acquisition_time", f"at {overpass_time.isoformat()} the {orbit.name} swath is {abs(cross_km):.0f} km "
            f"from the scene centre (half swath {orbit.half_swath_km:.0f} km); pass a date to get the overpass time")
    return overpass


def _overpass_geometry(orbit: OrbitModel, epsg: int, lat: float, node_lon: float, lon_offset: float, track: int,
                       when: datetime, to_lonlat: Transformer) -> Overpass:
    to_utm = Transformer.from_crs(4326, epsg, always_xy=True)
    step = 0.2  # degrees of latitude either side of the scene
    points = []
    for dlat in (step, 0.0, -step):  # north to south: the direction of a descending pass
        track_lon = node_lon + orbit.track_offset(lat + dlat)[0]
        points.append(to_utm.transform(track_lon, lat + dlat))
    (xn, yn), (xc, yc), (xs, ys) = points
    length = math.hypot(xs - xn, ys - yn)
    return Overpass(orbit, when.replace(microsecond=(when.microsecond // 1000) * 1000), track, float(node_lon),
                    epsg, (xc, yc), ((xs - xn) / length, (ys - yn) / length))


def wrs2_row(lat_deg: float) -> int:
    """WRS-2 row of the descending pass at ``lat_deg`` (row 60 on the equator, 248 rows per orbit)."""
    ratio = math.sin(math.radians(lat_deg)) / math.sin(math.radians(LANDSAT_ORBIT.inclination_deg))
    arc = math.degrees(math.asin(max(-1.0, min(1.0, ratio))))
    return int(round(60.0 - arc / (360.0 / 248.0)))


#: A real (time, absolute orbit) per platform and the platform's absolute-to-relative orbit offset:
#: relative = (absolute + offset) mod 143. S2A and S2B from real products; S2C plausible, not ESA's.
_SENTINEL2_ORBIT_REFERENCE = {
    "SENTINEL_2A": (datetime(2022, 10, 5, 11, 54, 11, tzinfo=timezone.utc), 38058, 3),
    "SENTINEL_2B": (datetime(2018, 6, 17, 0, 11, 9, tzinfo=timezone.utc), 6677, -26),
    "SENTINEL_2C": (datetime(2025, 3, 1, 10, 0, 0, tzinfo=timezone.utc), 2700, 0),
}


def sentinel2_absolute_orbit(platform: str, when: datetime, relative_orbit: int) -> int:
    """The absolute orbit of ``platform`` nearest ``when`` that flies relative orbit ``relative_orbit``."""
    ref_time, ref_orbit, offset = _SENTINEL2_ORBIT_REFERENCE[platform]
    estimate = ref_orbit + (when - ref_time).total_seconds() / 60.0 / SENTINEL2_ORBIT.period_min
    base = int(math.floor(estimate))
    candidates = [a for a in range(base - 143, base + 144) if (a + offset - relative_orbit) % 143 == 0]
    return min(candidates, key=lambda a: abs(a - estimate))
