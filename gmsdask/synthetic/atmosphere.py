"""A simple, documented atmosphere: surface reflectance <-> top-of-atmosphere reflectance, per wavelength.

The whole model is in ``atmosphere_terms`` so that a later version can swap it for 6S lookup tables; the
writers only call ``toa_reflectance`` (and the L2A writer ``surface_reflectance``, its exact inverse).

For a Lambertian surface of reflectance rho_s (Tanre et al. 1979; the form 6S and SMAC use):

    rho_toa = T_gas * (rho_path + T_down * T_up * rho_s / (1 - S * rho_s))

- Rayleigh optical depth at sea level (Hansen & Travis 1974), lambda in um:
  tau_R = 0.008569 lambda^-4 (1 + 0.0113 lambda^-2 + 0.00013 lambda^-4)
- Aerosol optical depth from the 550 nm value and an Angstrom exponent alpha = 1.3 (continental):
  tau_a = aot550 (lambda / 0.55)^-alpha; single-scattering albedo 0.93, asymmetry 0.65.
- Path reflectance in the single-scattering approximation with azimuth-free effective phase functions
  (Rayleigh 1.0, aerosol 0.2, typical of the 120-160 degree scattering angles of sun-synchronous
  morning orbits): rho_path = (tau_R * 1.0 + omega * tau_a * 0.2) / (4 mu_s mu_v).
- Total (direct + diffuse) transmittance along mu: the two-stream Rayleigh form
  ((2/3 + mu) + (2/3 - mu) exp(-tau_R / mu)) / (4/3 + tau_R), times the aerosol term
  exp(-(1 - omega (1 + g) / 2) tau_a / mu), which keeps the forward-scattered light.
- Spherical albedo S = 0.92 tau_R exp(-tau_R) + 0.33 (1 - g) tau_a.
- Gas transmittance: ozone (Chappuis band around 600 nm) and water vapour (940, 1130, 1380, 1870 nm) as
  Gaussian absorption bands of a mid-latitude summer atmosphere (2 cm water, 330 DU ozone), scaled by the
  air mass 1/mu_s + 1/mu_v (relative to 2). Crude, but it keeps the cirrus bands (1375 nm) dark.

A band is treated at its central wavelength. All angles in degrees; reflectances unitless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["AtmosphereTerms", "atmosphere_terms", "toa_reflectance", "surface_reflectance",
           "rayleigh_optical_depth", "aerosol_optical_depth", "gas_transmittance", "direct_fraction",
           "ANGSTROM_EXPONENT"]

ANGSTROM_EXPONENT = 1.3
_SINGLE_SCATTERING_ALBEDO = 0.93
_ASYMMETRY = 0.65
_RAYLEIGH_PHASE = 1.0
_AEROSOL_PHASE = 0.2
#: (centre nm, width nm, optical depth at air mass 2) of the absorption bands
_GAS_BANDS = ((600.0, 80.0, 0.045), (940.0, 25.0, 0.55), (1130.0, 30.0, 0.8), (1380.0, 45.0, 4.0),
              (1870.0, 60.0, 5.0), (2700.0, 120.0, 6.0))


def rayleigh_optical_depth(wavelength_nm: float) -> float:
    """Rayleigh optical depth of the sea-level atmosphere (Hansen & Travis 1974)."""
    um = wavelength_nm / 1000.0
    return 0.008569 * um ** -4 * (1.0 + 0.0113 * um ** -2 + 0.00013 * um ** -4)


def aerosol_optical_depth(wavelength_nm: float, aot550: float, angstrom: float = ANGSTROM_EXPONENT) -> float:
    """Aerosol optical depth at ``wavelength_nm`` from the 550 nm value (Angstrom law)."""
    return aot550 * (wavelength_nm / 550.0) ** -angstrom


def gas_transmittance(wavelength_nm: float, sun_zenith_deg: float = 0.0, view_zenith_deg: float = 0.0) -> float:
    """Two-way gaseous transmittance (ozone + water vapour) at ``wavelength_nm``."""
    air_mass = 1.0 / math.cos(math.radians(sun_zenith_deg)) + 1.0 / math.cos(math.radians(view_zenith_deg))
    depth = sum(tau * math.exp(-((wavelength_nm - centre) / width) ** 2) for centre, width, tau in _GAS_BANDS)
    return math.exp(-depth * air_mass / 2.0)


@dataclass(frozen=True)
class AtmosphereTerms:
    """The coefficients of the Lambertian model at one wavelength and geometry."""

    path_reflectance: float
    transmittance_down: float
    transmittance_up: float
    spherical_albedo: float
    gas_transmittance: float


def _total_transmittance(mu: float, tau_r: float, tau_a: float) -> float:
    rayleigh = ((2.0 / 3.0 + mu) + (2.0 / 3.0 - mu) * math.exp(-tau_r / mu)) / (4.0 / 3.0 + tau_r)
    aerosol = math.exp(-(1.0 - _SINGLE_SCATTERING_ALBEDO * (1.0 + _ASYMMETRY) / 2.0) * tau_a / mu)
    return rayleigh * aerosol


def atmosphere_terms(*, wavelength_nm: float, aot550: float, sun_zenith_deg: float, view_zenith_deg: float
                     ) -> AtmosphereTerms:
    """Path reflectance, transmittances, spherical albedo and gas transmittance (see the module doc)."""
    tau_r = rayleigh_optical_depth(wavelength_nm)
    tau_a = aerosol_optical_depth(wavelength_nm, aot550)
    mu_s = math.cos(math.radians(sun_zenith_deg))
    mu_v = math.cos(math.radians(view_zenith_deg))
    path = (tau_r * _RAYLEIGH_PHASE + _SINGLE_SCATTERING_ALBEDO * tau_a * _AEROSOL_PHASE) / (4.0 * mu_s * mu_v)
    return AtmosphereTerms(
        path_reflectance=path,
        transmittance_down=_total_transmittance(mu_s, tau_r, tau_a),
        transmittance_up=_total_transmittance(mu_v, tau_r, tau_a),
        spherical_albedo=0.92 * tau_r * math.exp(-tau_r) + 0.33 * (1.0 - _ASYMMETRY) * tau_a,
        gas_transmittance=gas_transmittance(wavelength_nm, sun_zenith_deg, view_zenith_deg),
    )


def toa_reflectance(surface_reflectance: np.ndarray | float, *, wavelength_nm: float, aot550: float,
                    sun_zenith_deg: float, view_zenith_deg: float) -> np.ndarray:
    """Top-of-atmosphere reflectance of a Lambertian surface (same shape and float type as the input)."""
    t = atmosphere_terms(wavelength_nm=wavelength_nm, aot550=aot550, sun_zenith_deg=sun_zenith_deg,
                         view_zenith_deg=view_zenith_deg)
    rho = np.asarray(surface_reflectance)
    rho = rho if np.issubdtype(rho.dtype, np.floating) else rho.astype(np.float64)
    dtype = rho.dtype.type
    coupled = rho * dtype(t.transmittance_down * t.transmittance_up) / (dtype(1.0) - dtype(t.spherical_albedo) * rho)
    return (coupled + dtype(t.path_reflectance)) * dtype(t.gas_transmittance)


def surface_reflectance(toa_reflectance: np.ndarray | float, *, wavelength_nm: float, aot550: float,
                        sun_zenith_deg: float, view_zenith_deg: float) -> np.ndarray:
    """The exact inverse of ``toa_reflectance``."""
    t = atmosphere_terms(wavelength_nm=wavelength_nm, aot550=aot550, sun_zenith_deg=sun_zenith_deg,
                         view_zenith_deg=view_zenith_deg)
    rho_toa = np.asarray(toa_reflectance)
    rho_toa = rho_toa if np.issubdtype(rho_toa.dtype, np.floating) else rho_toa.astype(np.float64)
    dtype = rho_toa.dtype.type
    y = rho_toa / dtype(t.gas_transmittance) - dtype(t.path_reflectance)
    return y / (dtype(t.transmittance_down * t.transmittance_up) + dtype(t.spherical_albedo) * y)


def direct_fraction(*, wavelength_nm: float, aot550: float, sun_zenith_deg: float) -> float:
    """Share of the downward irradiance that is direct sunlight (what a cloud shadow removes)."""
    tau_r = rayleigh_optical_depth(wavelength_nm)
    tau_a = aerosol_optical_depth(wavelength_nm, aot550)
    mu_s = math.cos(math.radians(sun_zenith_deg))
    return min(1.0, math.exp(-(tau_r + tau_a) / mu_s) / _total_transmittance(mu_s, tau_r, tau_a))
