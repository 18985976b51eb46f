"""BRDF normalization to nadir view (NBAR) by the c-factor method of NASA HLS (Roy et al. 2016), and the
view geometry it needs where a product has no view-angle grid.

The surface's directional reflectance is modelled with the RossThick-LiSparse-Reciprocal kernels
(Lucht et al. 2000; b/r = 1, h/b = 2) and HLS's global per-band kernel weights (FACTS.md section 5). A
pixel's nadir BRDF-adjusted reflectance is its observed reflectance times

    c = (f_iso + f_geo K_geo(sza_n, 0, 0) + f_vol K_vol(sza_n, 0, 0))
        / (f_iso + f_geo K_geo(sza, vza, raa) + f_vol K_vol(sza, vza, raa))

i.e. the model's ratio between nadir view at the normalized solar zenith ``sza_n`` (HLS's latitude
polynomial) and the observed geometry. Angles are degrees. ``relative_azimuth_deg`` is the view azimuth
minus the sun azimuth, both as seen from the pixel (the direction towards the sensor and towards the
sun, as Sentinel-2's ``MTD_TL`` grids and Landsat's ``ANG.txt`` give them): 0 puts the sensor on the
sun's side (backscatter, the hotspot), 180 opposite it. Kernels are symmetric in its sign.

Why not a library: no maintained Python package exposes these two kernels without a MODIS-product
dependency; they are twenty lines of closed-form trigonometry.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["HLS_BRDF_COEFFICIENTS", "ross_thick", "li_sparse_r", "normalized_solar_zenith",
           "brdf_coefficients", "brdf_model", "c_factor", "view_vector", "view_angles_from_vector",
           "ground_track_azimuth", "view_angles_from_track"]

#: HLS v2 global kernel weights (f_iso, f_geo, f_vol) per STAC common name (Roy et al. 2016, 2017).
HLS_BRDF_COEFFICIENTS: Mapping[str, tuple[float, float, float]] = {
    "blue": (0.0774, 0.0079, 0.0372),
    "green": (0.1306, 0.0178, 0.0580),
    "red": (0.1690, 0.0227, 0.0574),
    "nir": (0.3093, 0.0330, 0.1535),
    "swir16": (0.3430, 0.0453, 0.1154),
    "swir22": (0.2658, 0.0387, 0.0639),
}
_RED_NM, _NIR_NM = 655.0, 865.0  # OLI red and NIR centres: the ends of the red-edge interpolation


def _relative_azimuth_cos_sin(relative_azimuth_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    phi = np.deg2rad(relative_azimuth_deg)
    return np.cos(phi), np.sin(phi)


def ross_thick(sun_zenith_deg, view_zenith_deg, relative_azimuth_deg) -> np.ndarray:
    """RossThick volumetric-scattering kernel (0 at nadir view and overhead sun)."""
    ts, tv = np.deg2rad(sun_zenith_deg), np.deg2rad(view_zenith_deg)
    cos_phi, _ = _relative_azimuth_cos_sin(relative_azimuth_deg)
    cos_xi = np.clip(np.cos(ts) * np.cos(tv) + np.sin(ts) * np.sin(tv) * cos_phi, -1.0, 1.0)
    xi = np.arccos(cos_xi)
    return ((np.pi / 2 - xi) * cos_xi + np.sin(xi)) / (np.cos(ts) + np.cos(tv)) - np.pi / 4


def li_sparse_r(sun_zenith_deg, view_zenith_deg, relative_azimuth_deg, *, b_r: float = 1.0,
                h_b: float = 2.0) -> np.ndarray:
    """LiSparse-Reciprocal geometric-optical kernel (crown shape ``b_r`` = b/r, crown height ``h_b`` = h/b)."""
    ts = np.arctan(b_r * np.tan(np.deg2rad(sun_zenith_deg)))
    tv = np.arctan(b_r * np.tan(np.deg2rad(view_zenith_deg)))
    cos_phi, sin_phi = _relative_azimuth_cos_sin(relative_azimuth_deg)
    tan_s, tan_v = np.tan(ts), np.tan(tv)
    sec_s, sec_v = 1.0 / np.cos(ts), 1.0 / np.cos(tv)
    cos_xi = np.cos(ts) * np.cos(tv) + np.sin(ts) * np.sin(tv) * cos_phi
    d2 = np.maximum(tan_s ** 2 + tan_v ** 2 - 2.0 * tan_s * tan_v * cos_phi, 0.0)
    cos_t = np.clip(h_b * np.sqrt(d2 + (tan_s * tan_v * sin_phi) ** 2) / (sec_s + sec_v), -1.0, 1.0)
    t = np.arccos(cos_t)
    overlap = (t - np.sin(t) * cos_t) * (sec_s + sec_v) / np.pi
    return overlap - sec_s - sec_v + 0.5 * (1.0 + cos_xi) * sec_s * sec_v


def normalized_solar_zenith(latitude_deg) -> np.ndarray:
    """HLS's normalized solar zenith (degrees) for a latitude (degrees, north positive)."""
    lat = np.asarray(latitude_deg, dtype=np.float64)
    coefficients = (31.0076, -0.1272, 0.01187, 2.40e-5, -9.48e-7, -1.95e-9, 6.15e-11)
    return sum(c * lat ** power for power, c in enumerate(coefficients))


def brdf_coefficients(common_name: str, central_wavelength_nm: float) -> tuple[float, float, float] | None:
    """HLS kernel weights for a band: its own, blue's for coastal, NIR's for ``nir08``/``nir09``, and for
    the red-edge bands linear interpolation in wavelength between red and NIR. None for bands HLS does not
    normalize (cirrus, thermal, pan)."""
    if common_name in HLS_BRDF_COEFFICIENTS:
        return HLS_BRDF_COEFFICIENTS[common_name]
    if common_name == "coastal":
        return HLS_BRDF_COEFFICIENTS["blue"]
    if common_name in ("nir08", "nir09"):
        return HLS_BRDF_COEFFICIENTS["nir"]
    if common_name.startswith("rededge"):
        share = float(np.clip((central_wavelength_nm - _RED_NM) / (_NIR_NM - _RED_NM), 0.0, 1.0))
        red, nir = np.array(HLS_BRDF_COEFFICIENTS["red"]), np.array(HLS_BRDF_COEFFICIENTS["nir"])
        return tuple(float(v) for v in (1 - share) * red + share * nir)
    return None


def brdf_model(coefficients: tuple[float, float, float], k_geo, k_vol) -> np.ndarray:
    """Kernel-driven reflectance ``f_iso + f_geo K_geo + f_vol K_vol``."""
    f_iso, f_geo, f_vol = coefficients
    return f_iso + f_geo * np.asarray(k_geo) + f_vol * np.asarray(k_vol)


def c_factor(coefficients: tuple[float, float, float], sun_zenith_deg, view_zenith_deg, relative_azimuth_deg,
             normalized_sun_zenith_deg) -> np.ndarray:
    """The factor that takes reflectance at the observed geometry to nadir view at the normalized sun zenith."""
    observed = brdf_model(coefficients, li_sparse_r(sun_zenith_deg, view_zenith_deg, relative_azimuth_deg),
                          ross_thick(sun_zenith_deg, view_zenith_deg, relative_azimuth_deg))
    nadir = brdf_model(coefficients, li_sparse_r(normalized_sun_zenith_deg, 0.0, 0.0),
                       ross_thick(normalized_sun_zenith_deg, 0.0, 0.0))
    return nadir / observed


# --- the view geometry NBAR needs --------------------------------------------------------------------------------
_EARTH_ROTATION_RAD_S = 7.2921159e-5
_EARTH_RADIUS_M = 6371000.0


def view_vector(view_zenith_deg, view_azimuth_deg) -> tuple[np.ndarray, np.ndarray]:
    """East and north components of ``tan(view zenith)`` towards the sensor: the sensor's horizontal offset
    per metre of altitude. Unlike the angles it varies smoothly across nadir, where the azimuth flips by 180
    degrees, so it is what coarse view grids are interpolated in."""
    t = np.tan(np.deg2rad(view_zenith_deg))
    azimuth = np.deg2rad(view_azimuth_deg)
    return t * np.sin(azimuth), t * np.cos(azimuth)


def view_angles_from_vector(east, north) -> tuple[np.ndarray, np.ndarray]:
    """View zenith and azimuth (degrees, azimuth 0-360) from ``view_vector`` components."""
    zenith = np.rad2deg(np.arctan(np.hypot(east, north)))
    return zenith, np.rad2deg(np.arctan2(east, north)) % 360.0


def ground_track_azimuth(latitude_deg: float, *, inclination_deg: float = 98.2, altitude_m: float = 705e3,
                         descending: bool = True) -> float:
    """Azimuth (degrees clockwise from north) of a circular orbit's ground track at a latitude.

    Inertial heading from the inclination (sin a = cos i / cos lat), then the Earth's rotation under the
    satellite. Landsat 4-9 (705 km, 98.2 deg) descend over the day side: about 192 deg at the equator.
    """
    lat = np.deg2rad(latitude_deg)
    sin_heading = np.clip(np.cos(np.deg2rad(inclination_deg)) / np.cos(lat), -1.0, 1.0)
    heading = np.arcsin(sin_heading)  # ascending heading, east of north
    if descending:
        heading = np.pi - heading
    radius = _EARTH_RADIUS_M + altitude_m
    ground_speed = np.sqrt(3.986004418e14 / radius) * _EARTH_RADIUS_M / radius
    east = ground_speed * np.sin(heading) - _EARTH_ROTATION_RAD_S * _EARTH_RADIUS_M * np.cos(lat)
    north = ground_speed * np.cos(heading)
    return float(np.rad2deg(np.arctan2(east, north)) % 360.0)


def view_angles_from_track(x, y, track_x: float, track_y: float, track_azimuth_deg: float, *,
                           altitude_m: float = 705e3) -> tuple[np.ndarray, np.ndarray]:
    """View zenith and azimuth (degrees) of pixels at map coordinates ``x``, ``y`` (metres) seen from a
    satellite whose nadir track passes through (``track_x``, ``track_y``) with ``track_azimuth_deg``.

    Spherical Earth (radius 6371 km): a pixel at cross-track ground distance ``d`` is seen at the look angle
    ``atan(R sin g / (R + altitude - R cos g))`` from the satellite, ``g = d / R``, and its view zenith is that
    angle plus ``g`` (the local vertical turns with the Earth's curvature: +0.8 degree at Landsat's 92.5 km
    half-swath, 8.3 degrees at the edge against the flat 7.5); the sensor lies perpendicular to the track.
    Map north is taken as true north (UTM grid convergence, at most ~3 degrees, turns the azimuth by as much
    and the zenith not at all).
    """
    heading = np.deg2rad(track_azimuth_deg)
    along_east, along_north = np.sin(heading), np.cos(heading)
    dx, dy = np.asarray(x, dtype=np.float64) - track_x, np.asarray(y, dtype=np.float64) - track_y
    # signed distance to the right of the track; the sensor lies the other way
    right = dx * along_north - dy * along_east
    central = np.abs(right) / _EARTH_RADIUS_M
    look = np.arctan2(_EARTH_RADIUS_M * np.sin(central),
                      _EARTH_RADIUS_M + altitude_m - _EARTH_RADIUS_M * np.cos(central))
    # the azimuth takes one value on each side of the track (perpendicular to it, towards the sensor), so it is
    # not computed per pixel; at the track itself (zenith 0) it is the right side's
    towards_left = float(np.rad2deg(np.arctan2(-along_north, along_east)) % 360.0)
    azimuth = np.where(right >= 0, towards_left, (towards_left + 180.0) % 360.0)
    return np.rad2deg(look + central), azimuth
