"""Spectral homogenization to a virtual sensor and BRDF normalization (the L2B algorithms' public faces).

``SpectralHomogenizer`` works on any spectra; ``homogenize_dataset`` and ``nbar_dataset`` are the lazy,
per-chunk scene steps L2B uses (NBAR first, as HLS does, then homogenization).
"""

from .angles import angles_on_grid
from .bands import surface_reflectance_bands
from .brdf import nbar_dataset
from .dataset import ERROR_PREFIX, homogenize_dataset
from .homogenizer import METHODS, SpectralHomogenizer, fitted_pairs

__all__ = ["SpectralHomogenizer", "METHODS", "fitted_pairs", "homogenize_dataset", "nbar_dataset", "angles_on_grid",
           "surface_reflectance_bands", "ERROR_PREFIX"]
