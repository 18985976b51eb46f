"""The training spectra of the spectral homogenization: real airborne spectra plus physically simulated ones.

Every spectrum is surface reflectance (0-1) on ``WAVELENGTH_NM`` (400-2500 nm, 1 nm) and carries a
category and a split:

``aviris``
    The real AVIRIS cube of ``../shared/data/hyperspectral`` (50 x 50 pixels, 194 bands, int16 x 1e-4).
    Its spectrometer overlaps are sorted, the water-vapour gaps interpolated (no multispectral band the
    homogenization uses lies in them). Image lines 40-49 are held back.
``canopy``
    PROSAIL (PROSPECT-D + 4SAIL, the ``prosail`` package) canopies with random leaf biochemistry, LAI
    0.05-7, leaf angles and sun/view geometry, over the PROSAIL dry/wet soil pair or over the synthetic
    landscape's soil and stubble spectra.
``soil``
    PROSAIL soils and the synthetic landscape's soil/stubble spectra, scaled in brightness and tilted
    (a simplified stand-in for soil variety: organic matter darkens, iron oxides redden).
``water``
    A simplified water model: a clear-water spectrum plus suspended sediment (a soil spectrum seen through
    0.1-3 m of water, attenuated with pure-water absorption) plus a phytoplankton green peak and red dip.
``urban``
    Linear mixtures of asphalt, roof, concrete, canopy and soil fractions (Dirichlet-distributed).
``landscape``
    The nine materials of ``gmsdask.synthetic.spectra`` (scaled 0.8-1.2) and pairwise mixtures, so that
    synthetic products are inside the training domain.

Simulated spectra are drawn independently; every fifth one (index % 5 == 4 within a category) is held
back. Everything follows from ``seed``: the library is reproducible, bit for bit on one machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ProductError
from ..sensors import spectral_response
from ..synthetic.spectra import WAVELENGTH_NM as _MATERIAL_WAVELENGTH_NM
from ..synthetic.spectra import MATERIALS

__all__ = ["WAVELENGTH_NM", "SpectralLibrary", "read_envi_spectra", "build_library", "band_values",
           "DEFAULT_COUNTS", "LIBRARY_SEED"]

#: The wavelengths of every library spectrum, nm.
WAVELENGTH_NM = np.arange(400.0, 2501.0, 1.0)

#: How many spectra each simulated category gets by default.
DEFAULT_COUNTS = {"canopy": 2000, "soil": 500, "water": 500, "urban": 500, "landscape": 500}
LIBRARY_SEED = 20261128
_HELD_BACK_AVIRIS_LINES = slice(40, None)

# Pure-water absorption coefficient, 1/m (approximate anchors after Pope & Fry 1997 and Kou et al. 1993).
_WATER_ABSORPTION = ((400, 0.007), (450, 0.009), (500, 0.026), (550, 0.064), (600, 0.24), (650, 0.35),
                     (700, 0.65), (750, 2.6), (800, 2.0), (850, 4.3), (900, 6.8), (950, 39.0), (1000, 36.0),
                     (1100, 20.0), (1200, 100.0), (1400, 1500.0), (2500, 5000.0))
_CONCRETE = ((400, 0.20), (500, 0.26), (600, 0.30), (800, 0.33), (1200, 0.36), (1600, 0.37), (2000, 0.33),
             (2200, 0.32), (2500, 0.28))


@dataclass(frozen=True)
class SpectralLibrary:
    """Spectra ``(n, wavelength)`` on ``WAVELENGTH_NM``, their ``category`` names and ``held_back`` flags."""

    reflectance: np.ndarray
    category: np.ndarray
    held_back: np.ndarray

    def subset(self, rows: np.ndarray) -> "SpectralLibrary":
        return SpectralLibrary(self.reflectance[rows], self.category[rows], self.held_back[rows])


def _header_list(header: str, key: str) -> list[str]:
    match = re.search(rf"^{key}\s*=\s*\{{([^}}]*)\}}", header, re.M | re.I)
    return [] if match is None else [item.strip() for item in match.group(1).split(",") if item.strip()]


def read_envi_spectra(path: str | Path, scale: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Wavelengths (nm, sorted) and spectra ``(lines, samples, bands)`` of an ENVI reflectance cube.

    ``scale`` converts the stored integers to reflectance (AVIRIS: 1e-4). Bands at duplicate wavelengths
    (spectrometer overlaps) are sorted in, not dropped.
    """
    import rasterio

    path = Path(path)
    header_path = path.with_suffix(".hdr")
    if not header_path.exists():
        raise ProductError(path, "the ENVI header (.hdr) is missing")
    header = header_path.read_text()
    wavelength = np.array([float(v) for v in _header_list(header, "wavelength")])
    units = re.search(r"^wavelength units\s*=\s*(\S+)", header, re.M | re.I)
    if wavelength.size == 0:
        raise ProductError(header_path, "the header lists no band wavelengths")
    if (units and units.group(1).lower().startswith("micro")) or wavelength.max() < 100:
        wavelength = wavelength * 1000.0
    with rasterio.open(path) as src:
        cube = src.read().astype(np.float64) * scale
    if cube.shape[0] != wavelength.size:
        raise ProductError(path, f"{cube.shape[0]} bands but {wavelength.size} wavelengths in the header")
    order = np.argsort(wavelength, kind="stable")
    return wavelength[order], np.moveaxis(cube[order], 0, -1)


def _resample(wavelength: np.ndarray, spectra: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(WAVELENGTH_NM, wavelength, s) for s in spectra.reshape(-1, spectra.shape[-1])])


def _aviris(path: Path) -> tuple[np.ndarray, np.ndarray]:
    wavelength, cube = read_envi_spectra(path)
    held_back = np.zeros(cube.shape[:2], dtype=bool)
    held_back[_HELD_BACK_AVIRIS_LINES] = True
    spectra = _resample(wavelength, cube)
    usable = np.all(np.isfinite(spectra), axis=1) & (spectra.mean(axis=1) > 0.005)
    return np.clip(spectra[usable], 0.0, 1.0), held_back.ravel()[usable]


def _prosail_soils() -> tuple[np.ndarray, np.ndarray]:
    import prosail

    soil = prosail.spectral_lib.soil  # dry and wet soil, 400-2500 nm at 1 nm
    return np.asarray(soil.rsoil1), np.asarray(soil.rsoil2)


def _landscape(name: str) -> np.ndarray:
    material = next(m for m in MATERIALS if m.name == name)
    return np.interp(WAVELENGTH_NM, _MATERIAL_WAVELENGTH_NM, material.spectrum())


def _soil_background(rng: np.random.Generator) -> np.ndarray:
    """A soil spectrum: PROSAIL's dry/wet pair (brightness, moisture) or a landscape soil/stubble, tilted."""
    dry, wet = _prosail_soils()
    if rng.random() < 0.6:
        psoil = rng.uniform(0.0, 1.0)
        base = rng.uniform(0.5, 1.6) * (psoil * dry + (1 - psoil) * wet)
    else:
        base = rng.uniform(0.5, 1.4) * _landscape(rng.choice(["bare_soil", "dry_vegetation"]))
    tilt = 1.0 + rng.uniform(-0.25, 0.25) * (WAVELENGTH_NM - 1000.0) / 1500.0
    return np.clip(base * tilt, 0.005, 0.9)


def _canopies(rng: np.random.Generator, count: int) -> np.ndarray:
    import prosail

    out = np.empty((count, WAVELENGTH_NM.size))
    for i in range(count):
        cab = rng.uniform(5, 80)
        out[i] = prosail.run_prosail(
            n=rng.uniform(1.1, 2.3), cab=cab, car=cab * rng.uniform(0.15, 0.3), cbrown=rng.uniform(0, 1) ** 3,
            cw=rng.uniform(0.002, 0.04), cm=rng.uniform(0.002, 0.015), lai=rng.uniform(0.05, 7.0),
            lidfa=rng.uniform(25, 70), hspot=rng.uniform(0.01, 0.3), tts=rng.uniform(15, 65),
            tto=rng.uniform(0, 12), psi=rng.uniform(0, 180), ant=rng.uniform(0, 3), prospect_version="D",
            typelidf=2, rsoil0=_soil_background(rng), factor="SDR")
    return np.clip(out, 0.0, 1.0)


def _soils(rng: np.random.Generator, count: int) -> np.ndarray:
    return np.stack([_soil_background(rng) for _ in range(count)])


def _waters(rng: np.random.Generator, count: int) -> np.ndarray:
    nm, absorption = np.array(_WATER_ABSORPTION).T
    water_absorption = np.exp(np.interp(WAVELENGTH_NM, nm, np.log(absorption)))
    clear = _landscape("water")
    out = np.empty((count, WAVELENGTH_NM.size))
    for i in range(count):
        depth = rng.uniform(0.1, 3.0)  # optical path of light scattered back by sediment, m
        sediment = rng.uniform(0, 0.25) ** 1.5 * _soil_background(rng) * np.exp(-2 * depth * water_absorption)
        chlorophyll = rng.uniform(0, 1) ** 3 * (
            0.02 * np.exp(-0.5 * ((WAVELENGTH_NM - 565) / 25) ** 2)
            - 0.008 * np.exp(-0.5 * ((WAVELENGTH_NM - 675) / 12) ** 2)
            + 0.012 * np.exp(-0.5 * ((WAVELENGTH_NM - 705) / 12) ** 2))
        out[i] = rng.uniform(0.3, 1.2) * clear + sediment + chlorophyll
    return np.clip(out, 0.0, 1.0)


def _urban(rng: np.random.Generator, count: int, canopies: np.ndarray) -> np.ndarray:
    nm, concrete = np.array(_CONCRETE).T
    surfaces = [_landscape("asphalt"), _landscape("roof"), np.interp(WAVELENGTH_NM, nm, concrete)]
    out = np.empty((count, WAVELENGTH_NM.size))
    for i in range(count):
        fraction = rng.dirichlet([1.0, 1.0, 1.0, 0.5, 0.3])
        members = [s * rng.uniform(0.6, 1.4) for s in surfaces]
        members += [canopies[rng.integers(len(canopies))], _soil_background(rng)]
        out[i] = fraction @ np.stack(members)
    return np.clip(out, 0.0, 1.0)


def _landscape_mixtures(rng: np.random.Generator, count: int) -> np.ndarray:
    spectra = np.stack([_landscape(m.name) for m in MATERIALS])
    out = np.empty((count, WAVELENGTH_NM.size))
    for i in range(count):
        if i < 2 * len(MATERIALS) or rng.random() < 0.4:
            out[i] = rng.uniform(0.8, 1.2) * spectra[i % len(MATERIALS)]
        else:
            a, b = rng.choice(len(MATERIALS), size=2, replace=False)
            share = rng.uniform(0, 1)
            out[i] = share * spectra[a] + (1 - share) * spectra[b]
    return out


def build_library(aviris_path: str | Path, *, seed: int = LIBRARY_SEED,
                  counts: dict[str, int] | None = None) -> SpectralLibrary:
    """All training spectra: the AVIRIS cube at ``aviris_path`` plus the simulated categories.

    ``counts`` overrides the number of simulated spectra per category (``DEFAULT_COUNTS``); each
    category draws from its own generator (seeded from ``seed`` and the category), so a smaller count
    reproduces the first spectra of the full library.
    """
    counts = {**DEFAULT_COUNTS, **(counts or {})}
    aviris, aviris_held_back = _aviris(Path(aviris_path))
    blocks = [aviris]
    categories = [np.full(len(aviris), "aviris")]
    held_back = [aviris_held_back]

    def generator(name: str) -> np.random.Generator:
        return np.random.default_rng([seed, sum(map(ord, name))])

    canopies = _canopies(generator("canopy"), counts["canopy"])
    simulated = {
        "canopy": canopies,
        "soil": _soils(generator("soil"), counts["soil"]),
        "water": _waters(generator("water"), counts["water"]),
        "urban": _urban(generator("urban"), counts["urban"], canopies if len(canopies) else aviris),
        "landscape": _landscape_mixtures(generator("landscape"), counts["landscape"]),
    }
    for name, spectra in simulated.items():
        blocks.append(spectra)
        categories.append(np.full(len(spectra), name))
        held_back.append(np.arange(len(spectra)) % 5 == 4)
    return SpectralLibrary(np.concatenate(blocks).astype(np.float64), np.concatenate(categories),
                           np.concatenate(held_back))


def band_values(library: SpectralLibrary | np.ndarray, platform: str, bands: list[str]) -> np.ndarray:
    """``(n, len(bands))`` band reflectance of the library spectra through ``platform``'s real responses."""
    spectra = library.reflectance if isinstance(library, SpectralLibrary) else np.asarray(library)
    return np.stack([spectral_response(platform, band).band_average(WAVELENGTH_NM, spectra) for band in bands],
                    axis=-1)
