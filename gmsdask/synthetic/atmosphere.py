"""The synthetic products' atmosphere: 6S, run directly at each product's own geometry and aerosol.

Per band, one 6S run (``gmsdask.atmosphere.sixs``: continental aerosol of the product's ``aot550``, 2 g cm-2
water vapour (``band_atmosphere`` takes another column; the writers use the default), 330 DU ozone, sea level, the band's real spectral response) gives the Lambertian terms at the
product's scene-mean sun and view angles, and

    rho_toa = rho_path + T * rho / (1 - S * rho)

is what the Level-1 writers encode; the Level-2A writer encodes its exact inverse. These are the same physics
the L1C correction inverts, but through direct runs at the exact geometry and AOT, not through its lookup
tables, so a round trip checks the tables, their interpolation and the aerosol retrieval.

6S costs 0.1-0.4 s per run, so runs are cached: first in the packaged file ``data/sixs_runs.json`` (the runs of
the products the tests and demos write; regenerate it with ``freeze_runs``), then in the user cache
(``$GMSDASK_HOME/cache/sixs/<platform>/runs``, see ``gmsdask.atmosphere.lut.default_cache_dir``).
Geometry is keyed at 0.01 degree.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from ..atmosphere.lut import default_cache_dir
from ..atmosphere.sixs import AtmosphereState, SixSResult, cached_run, run_key

__all__ = ["band_atmosphere", "toa_reflectance", "surface_reflectance", "relative_azimuth", "freeze_runs",
           "ANGSTROM_EXPONENT", "WATER_VAPOUR_GCM2", "OZONE_CM_ATM", "PACKAGED_RUNS"]

#: Angstrom exponent of 6S's continental aerosol between 450 and 850 nm (recorded in the truth; 6S uses the
#: full continental model).
ANGSTROM_EXPONENT = 1.3
WATER_VAPOUR_GCM2 = 2.0
OZONE_CM_ATM = 0.33
PACKAGED_RUNS = Path(__file__).parent / "data" / "sixs_runs.json"


@functools.cache
def _packaged() -> dict[str, dict]:
    """The packaged runs by key hash (read-only)."""
    return json.loads(PACKAGED_RUNS.read_text()) if PACKAGED_RUNS.exists() else {}


def relative_azimuth(sun_azimuth_deg: float, view_azimuth_deg: float) -> float:
    """Absolute sun-view azimuth difference folded to 0..180 degrees."""
    difference = abs(sun_azimuth_deg - view_azimuth_deg) % 360.0
    return 360.0 - difference if difference > 180.0 else difference


def band_atmosphere(platform: str, band: str, *, aot550: float, sun_zenith_deg: float, view_zenith_deg: float,
                    relative_azimuth_deg: float, cache_dir: str | Path | None = None,
                    water_vapour_gcm2: float = WATER_VAPOUR_GCM2) -> SixSResult:
    """6S terms of one band at one geometry (degrees) and column water vapour (g cm-2), from the packaged runs,
    the cache, or a 6S run."""
    state = AtmosphereState(float(aot550), float(water_vapour_gcm2), OZONE_CM_ATM, 0.0)
    geometry = {"sun_zenith_deg": round(float(sun_zenith_deg), 2), "view_zenith_deg": round(float(view_zenith_deg), 2),
                "relative_azimuth_deg": round(float(relative_azimuth_deg), 2)}
    digest, key = run_key(platform, band, state, **geometry)
    packaged = _packaged().get(digest)
    if packaged is not None and packaged["key"] == key:
        return SixSResult(**packaged["result"])
    return cached_run(platform, band, state, **geometry,
                      cache_dir=cache_dir if cache_dir is not None else default_cache_dir())


def toa_reflectance(surface_reflectance: np.ndarray | float, terms: SixSResult) -> np.ndarray:
    """Top-of-atmosphere reflectance of a Lambertian surface (same shape and float type as the input)."""
    rho = np.asarray(surface_reflectance)
    rho = rho if np.issubdtype(rho.dtype, np.floating) else rho.astype(np.float64)
    dtype = rho.dtype.type
    coupled = rho * dtype(terms.transmittance) / (dtype(1.0) - dtype(terms.spherical_albedo) * rho)
    return coupled + dtype(terms.path_reflectance)


def surface_reflectance(toa_reflectance: np.ndarray | float, terms: SixSResult) -> np.ndarray:
    """The exact inverse of ``toa_reflectance``."""
    rho_toa = np.asarray(toa_reflectance)
    rho_toa = rho_toa if np.issubdtype(rho_toa.dtype, np.floating) else rho_toa.astype(np.float64)
    dtype = rho_toa.dtype.type
    y = (rho_toa - dtype(terms.path_reflectance)) / dtype(terms.transmittance)
    return y / (dtype(1.0) + dtype(terms.spherical_albedo) * y)


def freeze_runs(cache_dir: str | Path, output: str | Path = PACKAGED_RUNS) -> int:
    """Merge every cached single run under ``cache_dir`` (and the packaged ones) into ``output``; the count."""
    runs = dict(_packaged()) if Path(output) == PACKAGED_RUNS else {}
    for path in sorted(Path(cache_dir).glob("sixs/*/runs/*.json")):
        stored = json.loads(path.read_text())
        runs[path.stem] = stored
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(json.dumps(runs, sort_keys=True, separators=(",", ":")))
    return len(runs)
