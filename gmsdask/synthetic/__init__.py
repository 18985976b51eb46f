"""Synthetic Landsat and Sentinel-2 products in the real formats, with known truth.

One seeded landscape in world (UTM) coordinates is seen through each sensor's real spectral responses,
a 6S atmosphere (direct runs at each product's geometry and aerosol) and the providers' calibration and
quantization, and written exactly as the providers deliver it: Landsat Collection 2 L1TP (GeoTIFFs + MTL/ANG),
Sentinel-2 L1C and L2A (SAFE, lossless JPEG 2000). The truth (surface and TOA reflectance per band on every grid, land cover, cloud and shadow
masks, shift, aerosol, angles) comes back as a ``SyntheticProduct`` and is written beside the product
(``<id>_truth.json`` and ``<id>_truth.zarr``). The same arguments give byte-identical files.

    >>> from gmsdask.synthetic import write_sentinel2_l1c, write_landsat_l1, sentinel2_extent
    >>> s2 = write_sentinel2_l1c("out", tile="33UUU", size=(600, 600), cloud_fraction=0.1)
    >>> l9 = write_landsat_l1("out", location=sentinel2_extent("33UUU", (600, 600)), shift_m=(30, 0))
"""

from .atmosphere import band_atmosphere, relative_azimuth, surface_reflectance, toa_reflectance
from .grid import (DEFAULT_SENTINEL2_SIZE, DEFAULT_TILE, PixelGrid, UtmBox, landsat_grid, sentinel2_extent,
                   sentinel2_tile_origin)
from .landsat import LANDSAT_SCENE_SIZE, write_landsat_l1
from .landscape import Landscape
from .parameters import SyntheticParameterError
from .sentinel2 import SENTINEL2_TILE_SIZE, write_sentinel2_l1c, write_sentinel2_l2a
from .truth import SyntheticProduct

__all__ = [
    "write_landsat_l1",
    "write_sentinel2_l1c",
    "write_sentinel2_l2a",
    "SyntheticProduct",
    "SyntheticParameterError",
    "sentinel2_tile_origin",
    "sentinel2_extent",
    "landsat_grid",
    "UtmBox",
    "PixelGrid",
    "Landscape",
    "toa_reflectance",
    "surface_reflectance",
    "band_atmosphere",
    "relative_azimuth",
    "LANDSAT_SCENE_SIZE",
    "SENTINEL2_TILE_SIZE",
    "DEFAULT_TILE",
    "DEFAULT_SENTINEL2_SIZE",
]
