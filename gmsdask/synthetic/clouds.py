"""Clouds and their shadows, in world coordinates like the landscape.

Cloud opacity is thresholded fractal noise (cumulus-like blobs from 5 km down to 120 m, soft edges over
~100-200 m). The threshold is set so that the requested fraction of the product area is cloudy. A cloud
layer sits at one height; its shadow on the ground is the opacity field displaced towards the sun by
``height * tan(sun zenith)``. Grid convergence (the angle between grid and true north, ~1-3 degrees in a
UTM zone) is ignored in that displacement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .noise import derive_seed, fbm

__all__ = ["CloudField", "CLOUD_MASK_OPACITY"]

#: Opacity from which a pixel counts as cloud (and, displaced, as shadow) in the truth masks.
CLOUD_MASK_OPACITY = 0.1
_OCTAVES = (5000.0, 2000.0, 800.0, 300.0, 120.0)
_WEIGHTS = (0.45, 0.25, 0.15, 0.09, 0.06)
_EDGE_SOFTNESS = 0.05


@dataclass(frozen=True)
class CloudField:
    """A cloud layer: ``threshold`` of the noise, ``height_m`` above ground, and the shadow displacement.

    Build it with ``CloudField.for_area``; ``threshold`` is ``inf`` for a clear sky.
    """

    seed: int
    threshold: float
    height_m: float
    shadow_dx_m: float
    shadow_dy_m: float

    @classmethod
    def for_area(cls, seed: int, cloud_fraction: float, bounds: tuple[float, float, float, float],
                 sun_zenith_deg: float, sun_azimuth_deg: float) -> "CloudField":
        """Clouds covering ``cloud_fraction`` of ``bounds`` (xmin, ymin, xmax, ymax; m) for the given sun."""
        height = 800.0 + 1700.0 * (derive_seed(seed, "height") % 1000) / 1000.0
        reach = height * math.tan(math.radians(min(sun_zenith_deg, 85.0)))
        azimuth = math.radians(sun_azimuth_deg)
        # the cloud that shades a ground point lies towards the sun from it
        shadow_dx, shadow_dy = reach * math.sin(azimuth), reach * math.cos(azimuth)
        if cloud_fraction <= 0.0:
            return cls(seed, math.inf, height, shadow_dx, shadow_dy)
        xmin, ymin, xmax, ymax = bounds
        step = max(30.0, min(xmax - xmin, ymax - ymin) / 400.0)
        x = np.arange(xmin + step / 2, xmax, step)
        y = np.arange(ymax - step / 2, ymin, -step)
        noise = fbm(x, y, _OCTAVES, _WEIGHTS, seed, step)
        level = float(np.quantile(noise, 1.0 - cloud_fraction)) if cloud_fraction < 1.0 else -math.inf
        # the mask counts opacity >= CLOUD_MASK_OPACITY, which sits a little above the 0.5-opacity level
        threshold = level - (CLOUD_MASK_OPACITY - 0.5) * _EDGE_SOFTNESS
        return cls(seed, threshold, height, shadow_dx, shadow_dy)

    @property
    def is_clear(self) -> bool:
        return math.isinf(self.threshold) and self.threshold > 0

    def opacity(self, x: np.ndarray, y: np.ndarray, pixel_m: float) -> np.ndarray:
        """Cloud opacity in [0, 1] (float32) on the grid of column eastings ``x`` and row northings ``y``."""
        if self.is_clear:
            return np.zeros((len(y), len(x)), dtype=np.float32)
        noise = fbm(x, y, _OCTAVES, _WEIGHTS, self.seed, pixel_m)
        return np.clip((noise - np.float32(self.threshold)) / np.float32(_EDGE_SOFTNESS) + np.float32(0.5), 0.0, 1.0)

    def shadow(self, x: np.ndarray, y: np.ndarray, pixel_m: float) -> np.ndarray:
        """Fraction of the direct sunlight blocked on the ground, in [0, 1] (float32)."""
        return self.opacity(np.asarray(x) + self.shadow_dx_m, np.asarray(y) + self.shadow_dy_m, pixel_m)
