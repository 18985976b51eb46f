"""Atmospheric correction of Level-1 scenes with 6S: lookup tables, aerosol retrieval, per-pixel inversion.

``correct_scene`` is the entry point (see ``gmsdask.atmosphere.correct``); ``sixs`` runs 6S, ``lut`` builds and
caches the tables, ``aerosol`` retrieves the aerosol field, ``inputs`` gathers geometry, elevation and water
vapour. The arithmetic is in ``gmsdask.algorithms.atmospheric`` (pure numpy).
"""

from .correct import ATMOSPHERE_GROUP, SURFACE_REFLECTANCE, AtmosphereInfo, correct_scene, corrected_bands
from .lut import default_cache_dir

__all__ = ["correct_scene", "AtmosphereInfo", "corrected_bands", "ATMOSPHERE_GROUP", "SURFACE_REFLECTANCE",
           "default_cache_dir"]
