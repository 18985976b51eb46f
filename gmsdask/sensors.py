"""Registry of the supported sensors and their bands.

Central wavelengths and FWHMs are computed from the real relative spectral response functions shipped by
the ``pyrsr`` package (the response functions GeoMultiSens itself used), not typed in.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import GmsdaskError

__all__ = ["Band", "Sensor", "SENSORS", "get_sensor", "spectral_response", "SpectralResponse"]


@dataclass(frozen=True)
class Band:
    """One band of a sensor.

    Attributes
    ----------
    name
        The provider's band name (``B02``, ``B8A``, ``B1``, ``B6_VCID_1``).
    common_name
        STAC ``eo:common_name`` (``""`` where STAC defines none).
    native_gsd_m
        The instrument's ground sampling distance, metres.
    product_gsd_m
        The pixel size of the grid the Level-1 product delivers the band on, metres
        (Landsat thermal bands: 30 m although sensed at 60-120 m).
    kind
        ``reflective``, ``thermal``, ``pan`` or ``cirrus``.
    srf_name
        The band's file name in ``pyrsr``'s data folder (``band_8A``).
    """

    name: str
    common_name: str
    native_gsd_m: float
    product_gsd_m: float
    kind: str = "reflective"
    srf_name: str = ""

    @property
    def group(self) -> str:
        """Name of the resolution group the band belongs to in a scene tree (``r10m``)."""
        return f"r{int(self.product_gsd_m)}m"


@dataclass(frozen=True)
class Sensor:
    """A platform/instrument pair and its bands in the provider's order."""

    platform: str
    sensor: str
    bands: tuple[Band, ...]
    srf_satellite: str
    srf_instrument: str
    fill_dn: int = 0
    saturated_dn: int = 65535
    notes: str = ""
    _by_name: dict[str, Band] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {band.name: band for band in self.bands})

    @property
    def band_names(self) -> list[str]:
        return [band.name for band in self.bands]

    def band(self, name: str) -> Band:
        try:
            return self._by_name[name]
        except KeyError:
            raise GmsdaskError(f"{self.platform} {self.sensor} has no band {name!r}; "
                               f"bands: {', '.join(self.band_names)}") from None

    def central_wavelength_nm(self, band: str) -> float:
        return spectral_response(self.platform, band).central_wavelength_nm

    def fwhm_nm(self, band: str) -> float:
        return spectral_response(self.platform, band).fwhm_nm


def _landsat_oli_tirs(platform: str, satellite: str) -> Sensor:
    return Sensor(
        platform=platform,
        sensor="OLI_TIRS",
        srf_satellite=satellite,
        srf_instrument="OLI_TIRS",
        bands=(
            Band("B1", "coastal", 30, 30, srf_name="band_1"),
            Band("B2", "blue", 30, 30, srf_name="band_2"),
            Band("B3", "green", 30, 30, srf_name="band_3"),
            Band("B4", "red", 30, 30, srf_name="band_4"),
            Band("B5", "nir08", 30, 30, srf_name="band_5"),
            Band("B6", "swir16", 30, 30, srf_name="band_6"),
            Band("B7", "swir22", 30, 30, srf_name="band_7"),
            Band("B8", "pan", 15, 15, kind="pan", srf_name="band_8"),
            Band("B9", "cirrus", 30, 30, kind="cirrus", srf_name="band_9"),
            Band("B10", "lwir11", 100, 30, kind="thermal", srf_name="band_10"),
            Band("B11", "lwir12", 100, 30, kind="thermal", srf_name="band_11"),
        ),
    )


def _landsat_tm(platform: str, satellite: str) -> Sensor:
    return Sensor(
        platform=platform,
        sensor="TM",
        srf_satellite=satellite,
        srf_instrument="TM",
        saturated_dn=255,
        bands=(
            Band("B1", "blue", 30, 30, srf_name="band_1"),
            Band("B2", "green", 30, 30, srf_name="band_2"),
            Band("B3", "red", 30, 30, srf_name="band_3"),
            Band("B4", "nir08", 30, 30, srf_name="band_4"),
            Band("B5", "swir16", 30, 30, srf_name="band_5"),
            Band("B6", "lwir", 120, 30, kind="thermal", srf_name="band_6"),
            Band("B7", "swir22", 30, 30, srf_name="band_7"),
        ),
    )


def _sentinel2_msi(platform: str, satellite: str, notes: str = "") -> Sensor:
    return Sensor(
        platform=platform,
        sensor="MSI",
        srf_satellite=satellite,
        srf_instrument="MSI",
        notes=notes,
        bands=(
            Band("B01", "coastal", 60, 60, srf_name="band_1"),
            Band("B02", "blue", 10, 10, srf_name="band_2"),
            Band("B03", "green", 10, 10, srf_name="band_3"),
            Band("B04", "red", 10, 10, srf_name="band_4"),
            Band("B05", "rededge071", 20, 20, srf_name="band_5"),
            Band("B06", "rededge075", 20, 20, srf_name="band_6"),
            Band("B07", "rededge078", 20, 20, srf_name="band_7"),
            Band("B08", "nir", 10, 10, srf_name="band_8"),
            Band("B8A", "nir08", 20, 20, srf_name="band_8A"),
            Band("B09", "nir09", 60, 60, srf_name="band_9"),
            Band("B10", "cirrus", 60, 60, kind="cirrus", srf_name="band_10"),
            Band("B11", "swir16", 20, 20, srf_name="band_11"),
            Band("B12", "swir22", 20, 20, srf_name="band_12"),
        ),
    )


_ETM = Sensor(
    platform="LANDSAT_7",
    sensor="ETM",
    srf_satellite="Landsat-7",
    srf_instrument="ETM+",
    saturated_dn=255,
    bands=(
        Band("B1", "blue", 30, 30, srf_name="band_1"),
        Band("B2", "green", 30, 30, srf_name="band_2"),
        Band("B3", "red", 30, 30, srf_name="band_3"),
        Band("B4", "nir08", 30, 30, srf_name="band_4"),
        Band("B5", "swir16", 30, 30, srf_name="band_5"),
        Band("B6_VCID_1", "lwir", 60, 30, kind="thermal", srf_name="band_6L"),
        Band("B6_VCID_2", "lwir", 60, 30, kind="thermal", srf_name="band_6H"),
        Band("B7", "swir22", 30, 30, srf_name="band_7"),
        Band("B8", "pan", 15, 15, kind="pan", srf_name="band_8"),
    ),
)

#: Every supported platform, keyed by the homogenized ``platform`` attribute.
SENSORS: dict[str, Sensor] = {
    "LANDSAT_4": _landsat_tm("LANDSAT_4", "Landsat-4"),
    "LANDSAT_5": _landsat_tm("LANDSAT_5", "Landsat-5"),
    "LANDSAT_7": _ETM,
    "LANDSAT_8": _landsat_oli_tirs("LANDSAT_8", "Landsat-8"),
    "LANDSAT_9": _landsat_oli_tirs("LANDSAT_9", "Landsat-9"),
    "SENTINEL_2A": _sentinel2_msi("SENTINEL_2A", "Sentinel-2A"),
    "SENTINEL_2B": _sentinel2_msi("SENTINEL_2B", "Sentinel-2B"),
    # pyrsr has no Sentinel-2C response functions yet; MSI-C was built to the same specification and its
    # spectral responses are within 1-2 nm of MSI-B, whose functions stand in until a measured set is shipped.
    "SENTINEL_2C": _sentinel2_msi("SENTINEL_2C", "Sentinel-2B",
                                  notes="spectral responses of Sentinel-2B MSI stand in for MSI-C"),
}


def get_sensor(platform: str) -> Sensor:
    """The sensor of a platform such as ``"LANDSAT_8"`` or ``"SENTINEL_2A"``."""
    try:
        return SENSORS[platform]
    except KeyError:
        raise GmsdaskError(f"unknown platform {platform!r}; supported: {', '.join(SENSORS)}") from None


@dataclass(frozen=True)
class SpectralResponse:
    """A band's relative spectral response on a 1 nm grid, and what it implies."""

    wavelength_nm: np.ndarray
    response: np.ndarray

    @property
    def central_wavelength_nm(self) -> float:
        """Response-weighted mean wavelength, nm."""
        return float(np.sum(self.wavelength_nm * self.response) / np.sum(self.response))

    @property
    def fwhm_nm(self) -> float:
        """Full width at half of the maximum response, nm (outermost half-maximum crossings)."""
        half = self.response.max() / 2.0
        above = np.flatnonzero(self.response >= half)
        first, last = above[0], above[-1]
        wl, rsp = self.wavelength_nm, self.response

        def crossing(i_below: int, i_above: int) -> float:
            if i_below < 0 or i_below >= len(wl):
                return float(wl[i_above])
            fraction = (half - rsp[i_below]) / (rsp[i_above] - rsp[i_below])
            return float(wl[i_below] + fraction * (wl[i_above] - wl[i_below]))

        return crossing(last + 1, last) - crossing(first - 1, first)

    def band_average(self, wavelength_nm: np.ndarray, spectra: np.ndarray) -> np.ndarray:
        """Band values of spectra sampled at ``wavelength_nm`` (nm, last axis of ``spectra``).

        The response is sampled at the spectra's wavelengths, so they should be finely spaced (<= 10 nm).
        """
        weights = np.interp(np.asarray(wavelength_nm, dtype=float), self.wavelength_nm, self.response,
                            left=0.0, right=0.0)
        if weights.sum() <= 0:
            raise GmsdaskError("the spectra do not cover this band's spectral response")
        return np.asarray(spectra, dtype=float) @ (weights / weights.sum())


@functools.lru_cache(maxsize=None)
def spectral_response(platform: str, band: str) -> SpectralResponse:
    """The relative spectral response of one band, from ``pyrsr``'s data files (cached, read-only)."""
    import pyrsr

    sensor = get_sensor(platform)
    srf_file = Path(pyrsr.__path__[0]) / "data" / sensor.srf_satellite / sensor.srf_instrument / \
        sensor.band(band).srf_name
    table = np.loadtxt(srf_file, skiprows=1)
    wavelength, response = table[:, 0], np.clip(table[:, 1], 0, None)
    if wavelength.max() < 100:  # pyrsr stores some sensors in micrometres
        wavelength = wavelength * 1000.0
    grid = np.arange(np.ceil(wavelength.min()), np.floor(wavelength.max()) + 1.0)
    return SpectralResponse(grid, np.interp(grid, wavelength, response))
