"""Fmask's scene statistics and cloud probabilities (pass two of Zhu & Woodcock 2012, as in Fmask 4).

Pure numpy. The statistics are percentiles over the scene's clear-sky pixels (17.5 % / 82.5 %); they are
computed once per scene from a sample of pixels (:func:`scene_statistics`) and then applied to every block
(:func:`cloud_probability`), so a chunked computation gives the same result as a whole-scene one.

- land: ``p = temperature * variability * brightness + cirrus_weight * cirrus`` where temperature is
  ``(T_high + 4 - BT) / (T_high + 4 - (T_low - 4))`` (thermal sensors) and brightness is the HOT normalized
  between its clear-land percentiles +- 0.04 (no thermal band, Fmask 4); the other factor is 1.
- water: ``p = (T_water - BT) / 4 * min(SWIR1, 0.11) / 0.11 + cirrus_weight * cirrus``.
- cloud = potential cloud pixel and ``p`` above the 82.5th percentile of ``p`` over clear land (water) plus
  the threshold (Fmask 4: 17.5 % Landsat, 20 % Sentinel-2); plus, with a thermal band, every pixel colder
  than ``T_low - 35 K``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .fmask_spectral import SpectralFeatures

__all__ = ["HIGH_PERCENT", "LOW_PERCENT", "SceneStatistics", "cloud_probability", "scene_statistics"]

LOW_PERCENT = 17.5
HIGH_PERCENT = 82.5
_TEMPERATURE_BUFFER_K = 4.0
_HOT_BUFFER = 0.04
_COLD_CLOUD_K = 35.0
_WATER_BRIGHTNESS = 0.11
#: Fmask treats a scene with fewer clear pixels than 40 000 Landsat pixels (36 km2) as all cloud where the
#: potential-cloud tests say so; here it is an area, so that downsampled scenes behave like full ones ...
MIN_CLEAR_AREA_M2 = 40_000 * 30.0 * 30.0
#: ... or this share of the scene's valid pixels, whichever is smaller ...
MIN_CLEAR_FRACTION = 0.001
#: ... but a statistic is never taken from fewer pixels than this.
MIN_CLEAR_SAMPLES = 20


@dataclass(frozen=True)
class SceneStatistics:
    """Scene-wide numbers of Fmask pass two (reflectance unitless, temperatures K, probabilities 0-1).

    ``enough_clear`` False means too few clear pixels for percentiles: every potential cloud pixel is cloud.
    Values that could not be computed are NaN.
    """

    clear_pixels: int
    enough_clear: bool
    land_bt_low: float
    land_bt_high: float
    water_bt_high: float
    land_hot_low: float
    land_hot_high: float
    land_threshold: float
    water_threshold: float
    nir_background: float
    swir1_background: float
    #: ``nir_background``/``swir1_background`` are the clear-land 17.5th percentiles of NIR and SWIR1, Fmask's
    #: padding of the flood-fill (Zhu & Woodcock 2012). Where many shadows make that percentile itself a shadow
    #: level, :func:`gmsdask.algorithms.fmask_shadow.potential_shadow` re-takes it without the dark holes found
    #: (the median used before made every pixel 0.02 below it a "hole": on the demo's Sentinel-2B scene the
    #: potential-shadow layer was 80 % false and the matched heights wrong, shadow F1 0.40)

    def as_dict(self) -> dict[str, float | int | bool]:
        """JSON-able (NaN becomes None)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else math.nan


def _land_probability(f: SpectralFeatures, s: SceneStatistics, cirrus_weight: float) -> np.ndarray:
    probability = f.variability_probability.astype(np.float32)
    if f.bt is not None and math.isfinite(s.land_bt_low):
        high = s.land_bt_high + _TEMPERATURE_BUFFER_K
        low = s.land_bt_low - _TEMPERATURE_BUFFER_K
        temperature = np.clip((high - f.bt) / max(high - low, 1e-3), 0, None)
        probability = probability * temperature
    elif f.bt is None and math.isfinite(s.land_hot_low):
        low, high = s.land_hot_low - _HOT_BUFFER, s.land_hot_high + _HOT_BUFFER
        probability = probability * np.clip((f.hot - low) / max(high - low, 1e-6), 0, 1)
    return (probability + np.float32(cirrus_weight) * f.cirrus_probability).astype(np.float32)


def _water_probability(f: SpectralFeatures, s: SceneStatistics, cirrus_weight: float) -> np.ndarray:
    brightness = np.clip(f.swir1 / np.float32(_WATER_BRIGHTNESS), 0, 1)
    if f.bt is not None and math.isfinite(s.water_bt_high):
        brightness = brightness * np.clip((s.water_bt_high - f.bt) / 4.0, 0, None)
    return (brightness + np.float32(cirrus_weight) * f.cirrus_probability).astype(np.float32)


def scene_statistics(sample: SpectralFeatures, *, sample_pixel_m: float, threshold: float,
                     cirrus_weight: float) -> SceneStatistics:
    """Percentile statistics from a sample of the scene's pixels.

    Parameters
    ----------
    sample
        Spectral features of the sampled pixels (e.g. every k-th pixel of the scene in both directions).
    sample_pixel_m
        Ground size of one sample pixel, metres (pixel size times the sampling step), for the minimum
        clear-sky area.
    threshold
        Cloud probability threshold added to the clear-sky 82.5th percentile (0-1; Fmask 4: 0.175 Landsat,
        0.20 Sentinel-2).
    cirrus_weight
        Weight of the cirrus probability (Fmask 4: 0.3).
    """
    clear_land, clear_water, clear = sample.clear_land, sample.clear_water, sample.clear
    clear_count = int(clear.sum())
    valid_count = int(sample.valid.sum())
    # Fmask's 40 000 pixels are ~0.1 % of a Landsat scene: the smaller of that area and 0.1 % of the scene,
    # so that a small scene (a tile corner, a test product) is not declared overcast for being small
    needed_area = min(math.ceil(MIN_CLEAR_AREA_M2 / sample_pixel_m ** 2), math.ceil(MIN_CLEAR_FRACTION * valid_count))
    enough = clear_count >= max(MIN_CLEAR_SAMPLES, needed_area)
    # Fmask: statistics over clear land; where land is (almost) all water or cloud, over all clear pixels
    used = clear_land if clear_land.sum() >= max(MIN_CLEAR_SAMPLES, MIN_CLEAR_FRACTION * valid_count) else clear
    nan = math.nan
    bt_low = bt_high = water_high = nan
    if sample.bt is not None:
        bt_low = _percentile(sample.bt[used], LOW_PERCENT)
        bt_high = _percentile(sample.bt[used], HIGH_PERCENT)
        if clear_water.sum() >= MIN_CLEAR_SAMPLES:
            water_high = _percentile(sample.bt[clear_water], HIGH_PERCENT)
    provisional = SceneStatistics(
        clear_pixels=clear_count, enough_clear=enough, land_bt_low=bt_low, land_bt_high=bt_high,
        water_bt_high=water_high, land_hot_low=_percentile(sample.hot[used], LOW_PERCENT),
        land_hot_high=_percentile(sample.hot[used], HIGH_PERCENT), land_threshold=nan, water_threshold=nan,
        nir_background=_percentile(sample.nir[used], LOW_PERCENT),
        swir1_background=_percentile(sample.swir1[used], LOW_PERCENT))
    land_p = _land_probability(sample, provisional, cirrus_weight)
    water_p = _water_probability(sample, provisional, cirrus_weight)
    land_threshold = _percentile(land_p[clear_land], HIGH_PERCENT) + threshold if clear_land.any() else threshold
    water_threshold = (_percentile(water_p[clear_water], HIGH_PERCENT) + threshold if clear_water.any()
                       else threshold)
    return SceneStatistics(**{**asdict(provisional), "land_threshold": land_threshold,
                              "water_threshold": water_threshold})


def cloud_probability(features: SpectralFeatures, stats: SceneStatistics, *,
                      cirrus_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """``(cloud, probability)`` of every pixel: boolean cloud of pass two and the cloud probability (0-1,
    land or water formula by the pixel's water test; 1 where the scene has too few clear pixels and the
    pixel is a potential cloud pixel, 0 where it is not)."""
    f = features
    if not stats.enough_clear:
        cloud = f.potential_cloud.copy()
        return cloud, cloud.astype(np.float32)
    land_p = _land_probability(f, stats, cirrus_weight)
    water_p = _water_probability(f, stats, cirrus_weight)
    probability = np.where(f.water, water_p, land_p)
    above = np.where(f.water, water_p > stats.water_threshold, land_p > stats.land_threshold)
    cloud = f.potential_cloud & above
    if f.bt is not None and math.isfinite(stats.land_bt_low):
        with np.errstate(invalid="ignore"):
            cloud |= f.valid & (f.bt < stats.land_bt_low - _COLD_CLOUD_K)
    return cloud, np.where(f.valid, probability, 0).astype(np.float32)
