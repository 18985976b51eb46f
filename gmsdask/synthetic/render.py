"""Rendering a block of pixels of one product grid: ground, clouds, shadows, atmosphere.

One ``Scene`` holds everything fixed for a product (landscape, clouds, aerosol, sun and view geometry,
geometric shift); ``Scene.render`` turns rows of a grid into surface and top-of-atmosphere values for a set
of bands. Both the Landsat and the Sentinel-2 writers use it, so the two sensors differ only in their bands,
grids and encodings. With a ``SurfaceBRDF`` (writer option ``brdf=True``) the surface reflectance is the
directional one at each pixel's sun and view angles, and the nadir-normalized one is kept beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..atmosphere.sixs import SixSResult
from .atmosphere import band_atmosphere, relative_azimuth, toa_reflectance
from .brdf import SurfaceBRDF
from .clouds import CLOUD_MASK_OPACITY, CloudField
from .grid import PixelGrid
from .landscape import Landscape
from .spectra import band_reflectance, cloud_band_reflectance

__all__ = ["Geometry", "Scene", "RenderedBlock", "SHADOW_MASK_FRACTION", "THERMAL_FOOTPRINT_M"]

#: Blocked share of direct sunlight from which a pixel counts as cloud shadow in the truth masks.
SHADOW_MASK_FRACTION = CLOUD_MASK_OPACITY
#: TIRS samples the ground at ~100 m; its bands are delivered on the 30 m grid, so they are rendered there
#: with a 100 m pixel footprint.
THERMAL_FOOTPRINT_M = 100.0
#: Share of the column water vapour above a low cloud's top, for the cloud's gaseous transmittance.
_VAPOUR_ABOVE_CLOUD = 0.3
#: Brightness temperature drop through the atmosphere per thermal band, K (a fixed, documented simplification).
_THERMAL_ATMOSPHERE_COOLING_K = {"B10": 1.5, "B11": 2.5}
_LAPSE_RATE_K_PER_M = 0.0065
_AIR_TEMPERATURE_K = 295.0


@dataclass(frozen=True)
class Geometry:
    """Scene-mean sun and view angles, degrees (azimuths clockwise from north; view = towards the sensor)."""

    sun_zenith_deg: float
    sun_azimuth_deg: float
    view_zenith_deg: float
    view_azimuth_deg: float

    @property
    def sun_elevation_deg(self) -> float:
        return 90.0 - self.sun_zenith_deg


@dataclass
class RenderedBlock:
    """Rows ``row_start:row_start + rows`` of one grid. Reflectances are unitless, temperatures in K.

    With a BRDF, ``surface_reflectance`` is the directional reflectance at the pixel's sun and view angles and
    ``nbar`` the reflectance at nadir view and the normalized sun zenith; without, ``nbar`` is empty."""

    row_start: int
    surface_reflectance: dict[str, np.ndarray] = field(default_factory=dict)
    nbar: dict[str, np.ndarray] = field(default_factory=dict)
    toa: dict[str, np.ndarray] = field(default_factory=dict)
    land_cover: np.ndarray | None = None
    cloud_opacity: np.ndarray | None = None
    shadow_fraction: np.ndarray | None = None
    surface_temperature: np.ndarray | None = None

    @property
    def cloud(self) -> np.ndarray:
        return self.cloud_opacity >= CLOUD_MASK_OPACITY

    @property
    def shadow(self) -> np.ndarray:
        return (self.shadow_fraction >= SHADOW_MASK_FRACTION) & ~self.cloud


@dataclass(frozen=True)
class Scene:
    """Everything that is fixed for one product."""

    platform: str
    landscape: Landscape
    clouds: CloudField
    aot550: float
    geometry: Geometry
    shift_m: tuple[float, float]
    #: Added to the grid's northings to get the landscape's: 1e7 for a Landsat scene south of the equator,
    #: which USGS grids in the northern zone (negative northings) while the landscape uses the southern one.
    northing_offset_m: float = 0.0
    #: The surface's BRDF and the product's per-pixel geometry; None: a Lambertian world.
    brdf: SurfaceBRDF | None = None

    def atmosphere(self, band: str) -> SixSResult:
        """6S terms of ``band`` at this product's scene-mean geometry and aerosol (cached)."""
        g = self.geometry
        return band_atmosphere(self.platform, band, aot550=self.aot550, sun_zenith_deg=g.sun_zenith_deg,
                               view_zenith_deg=g.view_zenith_deg,
                               relative_azimuth_deg=relative_azimuth(g.sun_azimuth_deg, g.view_azimuth_deg))

    def _ground_coordinates(self, grid: PixelGrid, row_start: int, row_stop: int) -> tuple[np.ndarray, np.ndarray]:
        # the product shows the ground displaced by the shift: pixel (x, y) sees ground (x - dx, y - dy)
        dx, dy = self.shift_m
        return grid.x_centres() - dx, grid.y_centres(row_start, row_stop) - dy + self.northing_offset_m

    def render(self, grid: PixelGrid, row_start: int, row_stop: int, bands: list[str]) -> RenderedBlock:
        """Surface and TOA reflectance of reflective ``bands`` for rows ``row_start:row_stop`` of ``grid``."""
        x, y = self._ground_coordinates(grid, row_start, row_stop)
        ground = self.landscape.sample(x, y, grid.res)
        opacity = self.clouds.opacity(x, y, grid.res)
        shadow = self.clouds.shadow(x, y, grid.res)
        block = RenderedBlock(row_start, land_cover=ground.land_cover(), cloud_opacity=opacity,
                              shadow_fraction=shadow)
        table = np.stack([band_reflectance(self.platform, band) for band in bands])
        surface = ground.reflectance(table)
        directional = {}
        if self.brdf is not None:
            # the angles are those of the pixel where the product shows it (grid, not ground, coordinates)
            kernels = self.brdf.kernels(grid.x_centres(), grid.y_centres(row_start, row_stop))
            directional = {band: self.brdf.reflectance(ground.fractions, ground.texture,
                                                       self.brdf.directional_tables(self.platform, band, values),
                                                       kernels)
                           for band, values in zip(bands, table)}
        del ground
        for band, rho in zip(bands, surface):
            terms = self.atmosphere(band)
            if directional:
                block.nbar[band] = rho
                rho = directional[band]
            block.surface_reflectance[band] = rho
            lit = rho
            if not self.clouds.is_clear:
                # a shadowed surface receives only the diffuse part of the irradiance
                lit = rho * (np.float32(1.0) - shadow * np.float32(terms.direct_fraction))
            toa = toa_reflectance(lit, terms)
            if not self.clouds.is_clear:
                cloud_top = cloud_band_reflectance(self.platform, band) * \
                    terms.gas_transmittance ** _VAPOUR_ABOVE_CLOUD
                cloud = np.float32(cloud_top) * (np.float32(0.8) + np.float32(0.2) * opacity)
                toa = toa * (np.float32(1.0) - opacity) + cloud * opacity
            block.toa[band] = toa.astype(np.float32, copy=False)
        return block

    def render_thermal(self, grid: PixelGrid, row_start: int, row_stop: int, bands: list[str]) -> RenderedBlock:
        """Surface temperature and at-sensor brightness temperature (K) of thermal ``bands``."""
        x, y = self._ground_coordinates(grid, row_start, row_stop)
        ground = self.landscape.sample(x, y, THERMAL_FOOTPRINT_M)
        surface_t = ground.surface_temperature()
        del ground
        opacity = self.clouds.opacity(x, y, THERMAL_FOOTPRINT_M)
        shadow = self.clouds.shadow(x, y, THERMAL_FOOTPRINT_M)
        # shaded ground is a few kelvin cooler; the cloud top follows the lapse rate from a fixed near-surface
        # air temperature (a scene constant: a block mean would make the clouds change at block borders)
        surface_t = surface_t - np.float32(4.0) * shadow
        cloud_top_t = _AIR_TEMPERATURE_K - _LAPSE_RATE_K_PER_M * self.clouds.height_m - 20.0
        block = RenderedBlock(row_start, surface_temperature=surface_t, cloud_opacity=opacity,
                              shadow_fraction=shadow)
        for band in bands:
            cooling = _THERMAL_ATMOSPHERE_COOLING_K.get(band, 2.0)
            bt = (surface_t - np.float32(cooling)) * (np.float32(1.0) - opacity) + np.float32(cloud_top_t) * opacity
            block.toa[band] = bt.astype(np.float32)
        return block

