"""A known, per-material BRDF for synthetic products (writer option ``brdf=True``).

Each material of the landscape reflects with the RossThick-LiSparse-Reciprocal kernel model (the kernels of
``gmsdask.algorithms.brdf``; b/r = 1, h/b = 2), with its own kernel weights per spectral region, written as
ratios to the isotropic weight, ``r_vol = f_vol / f_iso`` and ``r_geo = f_geo / f_iso``:

* green vegetation is dominated by volume scattering, strongest in the NIR (multiple scattering in the canopy),
  forests add geometric-optical shadowing, strongest in the visible where the shaded crowns are dark;
* bare soil, dry vegetation and built surfaces are dominated by shadowing (geometric kernel), with a
  moderate volume term; water (without sun glint) is nearly isotropic.

The values are plausible class averages in the ranges of the MODIS MCD43 BRDF parameters per land cover
(Schaaf et al. 2002, Remote Sens. Environ. 83: 135-148; the archetypal MCD43 BRDF shapes of Jiao et al. 2014,
Remote Sens. Environ. 142: 25-37; the volume/geometric ratios of Bréon & Vermote 2012, Remote Sens. Environ.
125: 1-9), rounded; they are deliberately not HLS's global weights (Roy et al. 2016), which NBAR uses, so a
test of NBAR on these products is not the model checked against itself.

A material's reflectance table value (``spectra.band_reflectance``) is its reflectance at nadir view and
HLS's normalized solar zenith for the scene's latitude, so the nadir-normalized truth (the ``nbar`` truth
kind) is exactly what the same product without BRDF shows, and the directional reflectance is

    rho(sza, vza, raa) = rho_table * (1 + r_vol K_vol + r_geo K_geo) / (1 + r_vol K_vol_n + r_geo K_geo_n)

with ``K_n`` the kernels at (normalized sun zenith, nadir view). Mixed pixels mix their materials' directional
reflectances by area.

Angles are the product's own per pixel: view zenith and azimuth from the overpass geometry the writer also
puts in the metadata (Sentinel-2 ``MTD_TL`` grids sample the same function), sun angles from the solar
position at the pixel, evaluated on every 32nd column of a strip's first and last row and interpolated
linearly (the sun moves < 0.01 degree over 32 pixels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pyproj import Transformer

from ..algorithms.brdf import li_sparse_r, normalized_solar_zenith, ross_thick
from ..algorithms.radiometry import solar_position
from ..sensors import get_sensor
from .spectra import MATERIALS

__all__ = ["MATERIAL_BRDF", "SurfaceBRDF", "material_kernel_weights", "brdf_truth_scalars", "BRDF_MODEL"]

#: Kernel weight ratios (r_vol, r_geo) per material at three spectral anchors: visible (<= 665 nm),
#: NIR (865 nm) and SWIR (>= 1610 nm); linear in wavelength between them.
MATERIAL_BRDF: dict[str, dict[str, tuple[float, float]]] = {
    "water": {"vis": (0.05, 0.02), "nir": (0.05, 0.02), "swir": (0.05, 0.02)},
    "bare_soil": {"vis": (0.25, 0.18), "nir": (0.30, 0.16), "swir": (0.25, 0.16)},
    "cropland": {"vis": (0.45, 0.10), "nir": (0.65, 0.08), "swir": (0.45, 0.10)},
    "grassland": {"vis": (0.40, 0.12), "nir": (0.60, 0.09), "swir": (0.40, 0.12)},
    "dry_vegetation": {"vis": (0.30, 0.16), "nir": (0.40, 0.13), "swir": (0.30, 0.15)},
    "broadleaf_forest": {"vis": (0.50, 0.20), "nir": (0.70, 0.12), "swir": (0.50, 0.18)},
    "coniferous_forest": {"vis": (0.40, 0.28), "nir": (0.60, 0.16), "swir": (0.45, 0.24)},
    "asphalt": {"vis": (0.15, 0.15), "nir": (0.15, 0.15), "swir": (0.15, 0.15)},
    "roof": {"vis": (0.15, 0.25), "nir": (0.15, 0.25), "swir": (0.15, 0.25)},
}
_ANCHORS_NM = (665.0, 865.0, 1610.0)
#: A one-line description for the truth JSON.
BRDF_MODEL = ("RossThick-LiSparse-Reciprocal per material (gmsdask.synthetic.brdf.MATERIAL_BRDF, MCD43-like class "
              "averages); material reflectances are nadir reflectances at HLS's normalized solar zenith")
_SUN_STEP = 32


def material_kernel_weights(platform: str, band: str) -> tuple[np.ndarray, np.ndarray]:
    """``(r_vol, r_geo)``: each material's (``MATERIALS`` order) kernel weight ratios in ``band`` of ``platform``,
    by the band's central wavelength."""
    wavelength = get_sensor(platform).central_wavelength_nm(band)
    r_vol, r_geo = [], []
    for material in MATERIALS:
        table = MATERIAL_BRDF[material.name]
        anchors = [table["vis"], table["nir"], table["swir"]]
        r_vol.append(np.interp(wavelength, _ANCHORS_NM, [a[0] for a in anchors]))
        r_geo.append(np.interp(wavelength, _ANCHORS_NM, [a[1] for a in anchors]))
    return np.asarray(r_vol, dtype=np.float64), np.asarray(r_geo, dtype=np.float64)


@dataclass(frozen=True)
class SurfaceBRDF:
    """The per-pixel geometry of one product and the nadir reference its material reflectances refer to.

    ``view_angles(x, y)`` gives view zenith and azimuth (degrees, towards the sensor) at grid coordinates;
    ``to_lonlat`` converts grid coordinates to lon/lat for the sun; ``latitude_deg`` (scene centre) sets the
    normalized solar zenith (HLS's polynomial).
    """

    view_angles: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    to_lonlat: Transformer
    time: datetime
    latitude_deg: float

    @property
    def normalized_sun_zenith_deg(self) -> float:
        return float(normalized_solar_zenith(self.latitude_deg))

    def _sun_angles(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sun zenith and azimuth (rows, cols) from the solar position on a sparse lattice (first/last row,
        every ``_SUN_STEP``-th column and the last one), interpolated linearly."""
        columns = np.unique(np.r_[np.arange(0, x.size, _SUN_STEP), x.size - 1])
        rows = np.unique([0, y.size - 1])
        xs, ys = np.meshgrid(x[columns], y[rows])
        lon, lat = self.to_lonlat.transform(xs, ys)
        zenith, azimuth = solar_position(lat, lon, self.time)
        azimuth = np.rad2deg(np.unwrap(np.deg2rad(azimuth), axis=1))

        def spread(values: np.ndarray) -> np.ndarray:
            across = np.stack([np.interp(np.arange(x.size), columns, row) for row in values])
            if len(rows) == 1:
                return np.repeat(across, y.size, axis=0)
            weight = (np.arange(y.size) / (y.size - 1))[:, None]
            return across[0][None] * (1 - weight) + across[1][None] * weight

        return spread(zenith), spread(azimuth) % 360.0

    def kernels(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(K_vol, K_geo)`` (float32, rows x cols) at the pixel centres ``x`` (columns) and ``y`` (rows),
        grid coordinates in metres."""
        sun_zenith, sun_azimuth = self._sun_angles(np.asarray(x, float), np.asarray(y, float))
        xx, yy = np.meshgrid(x, y)
        view_zenith, view_azimuth = self.view_angles(xx, yy)
        relative = np.asarray(view_azimuth) - sun_azimuth
        return (ross_thick(sun_zenith, view_zenith, relative).astype(np.float32),
                li_sparse_r(sun_zenith, view_zenith, relative).astype(np.float32))

    def directional_tables(self, platform: str, band: str, table: np.ndarray) -> np.ndarray:
        """``(3, material)``: the per-material values whose mix with the pixel's material fractions gives the
        isotropic, volume and geometric parts of the directional reflectance (``table`` the materials' nadir
        reflectances in ``band``)."""
        r_vol, r_geo = material_kernel_weights(platform, band)
        zenith = self.normalized_sun_zenith_deg
        nadir = 1.0 + r_vol * float(ross_thick(zenith, 0.0, 0.0)) + r_geo * float(li_sparse_r(zenith, 0.0, 0.0))
        base = np.asarray(table, dtype=np.float64) / nadir
        return np.stack([base, base * r_vol, base * r_geo]).astype(np.float32)

    def reflectance(self, fractions: np.ndarray, texture: np.ndarray, tables: np.ndarray,
                    kernels: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Directional surface reflectance (rows x cols, float32, clipped to 0-1) of a block whose material
        fractions are ``fractions`` (material, rows, cols), from ``directional_tables``' output."""
        n_materials, rows, cols = fractions.shape
        parts = (tables @ fractions.reshape(n_materials, rows * cols)).reshape(3, rows, cols)
        k_vol, k_geo = kernels
        values = (parts[0] + parts[1] * k_vol + parts[2] * k_geo) * texture
        return np.clip(values, 0.0, 1.0, out=values)



def brdf_truth_scalars(brdf: SurfaceBRDF | None) -> dict[str, object]:
    """The truth JSON's BRDF entries (none for a Lambertian product, whose JSON stays as it was)."""
    if brdf is None:
        return {}
    return {"brdf_model": BRDF_MODEL, "brdf_normalized_sun_zenith_deg": round(brdf.normalized_sun_zenith_deg, 6),
            "brdf_reference_latitude_deg": round(brdf.latitude_deg, 6)}
