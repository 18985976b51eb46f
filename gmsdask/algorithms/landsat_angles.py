"""Sun and view angles of Landsat pixels from the rational polynomials of a USGS ``ANG.txt`` file.

USGS ships, per band, two sets of polynomials (the same model its ``ias_angle_gen`` / ``landsat_angles``
tools evaluate):

1. **L1T -> L1R**, per detector module (OLI/TIRS: one per SCA) or per scan direction (TM/ETM+: forward
   and reverse): the raw-image (L1R) line and sample that saw a map-grid (L1T) pixel. With offsets
   ``l = line - mean line``, ``s = sample - mean sample``, ``h = height - mean height``::

       L1R = mean_L1R + (a0 + a1 l + a2 s + a3 h + a4 l s) / (1 + b0 l + b1 s + b2 h + b3 l s)

   A pixel belongs to the module(s) whose L1R coordinates fall inside the raw image (``0 .. samples - 1``,
   ``0 .. lines - 1``); OLI's neighbouring SCAs overlap by a few pixels, where both count. OLI's L1R sample
   is then counted across the whole focal plane (``SCA index x samples per SCA`` is added).
2. **The direction vector** towards the satellite (``SAT``) or the sun (``SUN``) in a local frame with x east,
   y north, z up, one component at a time, from the L1T offsets and the L1R offsets ``L``, ``S`` (L1R
   coordinates minus the band's mean L1R line and sample)::

       v = mean_vector + (c0 + c1 l + c2 s + c3 h + c4 L + c5 l^2 + c6 l s + c7 s^2 + c8 S L^2 + c9 L^3)
                       / (1 + d0 l + d1 s + d2 h + d3 L + d4 l^2 + d5 l s + d6 s^2 + d7 S L^2 + d8 L^3)

   normalized to unit length; zenith ``arccos(z)``, azimuth ``atan2(x, y)`` clockwise from north. So the
   azimuth is the direction from the pixel towards the satellite (or the sun): the convention of
   Sentinel-2's ``MTD_TL`` grids and of ``gmsdask.algorithms.brdf``.

Where a pixel lies in two modules USGS averages the two angles; here the two unit vectors are averaged
(the same within 0.001 degree, and it cannot go wrong where the azimuth wraps at north or flips at nadir).
Pixels outside every module (outside the imaged swath) are NaN, or, within a chosen distance of the swath,
the nearest module's polynomials extrapolated. The height is the band's mean scene height
unless given: a 1 km terrain step changes the view zenith by < 0.01 degree.

Why not a library: USGS's tools are C programs that write whole-scene rasters per band; no Python package
evaluates the coefficients. The model is two closed-form rational functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DetectorMapping", "VectorPolynomials", "BandAngleModel", "l1t_line_sample", "l1r_coordinates",
           "band_angles"]


@dataclass(frozen=True)
class DetectorMapping:
    """L1T -> L1R polynomials of one detector module (SCA) or one scan direction.

    ``*_numerator`` have 5 coefficients (constant, line, sample, height, line x sample), ``*_denominator`` 4
    (line, sample, height, line x sample; the constant is 1). Means: (line, sample) pixels, height metres.
    ``l1r_sample_offset`` is added to the module's own L1R sample to count it across the focal plane.
    """

    l1t_mean: tuple[float, float]
    l1r_mean: tuple[float, float]
    mean_height_m: float
    line_numerator: tuple[float, ...]
    line_denominator: tuple[float, ...]
    sample_numerator: tuple[float, ...]
    sample_denominator: tuple[float, ...]
    l1r_sample_offset: float = 0.0


@dataclass(frozen=True)
class VectorPolynomials:
    """The satellite or sun direction polynomials of a band: ``mean_vector`` (x east, y north, z up) and, per
    component, 10 numerator and 9 denominator coefficients (term order in the module docstring)."""

    mean_vector: tuple[float, float, float]
    numerators: tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]
    denominators: tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True)
class BandAngleModel:
    """Everything needed to evaluate one band's angles.

    ``l1t_mean``/``l1r_mean``: the band's mean (line, sample) in the map grid and in the raw image;
    ``l1r_lines``/``l1r_samples``: the raw image size of one module; ``mappings``: one per SCA (OLI, in SCA
    order) or per scan direction (TM/ETM+).
    """

    l1t_mean: tuple[float, float]
    l1r_mean: tuple[float, float]
    mean_height_m: float
    l1r_lines: int
    l1r_samples: int
    mappings: tuple[DetectorMapping, ...]
    satellite: VectorPolynomials
    sun: VectorPolynomials


def l1t_line_sample(x, y, *, ul_x: float, ul_y: float, pixel_size_m: float) -> tuple[np.ndarray, np.ndarray]:
    """L1T line and sample (pixels, fractional) of map coordinates ``x``, ``y`` (metres, the product's CRS).

    ``ul_x``/``ul_y`` are the centre of the upper-left L1T pixel (the ``ANG.txt``/MTL corner convention),
    which is line 0, sample 0.
    """
    return ((ul_y - np.asarray(y, dtype=np.float64)) / pixel_size_m,
            (np.asarray(x, dtype=np.float64) - ul_x) / pixel_size_m)


def _ratio(numerator, denominator, terms) -> np.ndarray:
    """``numerator . (1, terms...) / (1 + denominator . terms)``."""
    top = numerator[0] + sum(c * t for c, t in zip(numerator[1:], terms))
    bottom = 1.0 + sum(c * t for c, t in zip(denominator, terms))
    return top / bottom


def l1r_coordinates(mapping: DetectorMapping, line, sample, height_m) -> tuple[np.ndarray, np.ndarray]:
    """L1R line and sample (within the module, before ``l1r_sample_offset``) of L1T ``line``/``sample`` at
    ``height_m`` (metres above the ellipsoid)."""
    dl = np.asarray(line, dtype=np.float64) - mapping.l1t_mean[0]
    ds = np.asarray(sample, dtype=np.float64) - mapping.l1t_mean[1]
    dh = np.asarray(height_m, dtype=np.float64) - mapping.mean_height_m
    terms = (dl, ds, dh, dl * ds)
    return (_ratio(mapping.line_numerator, mapping.line_denominator, terms) + mapping.l1r_mean[0],
            _ratio(mapping.sample_numerator, mapping.sample_denominator, terms) + mapping.l1r_mean[1])


def _unit_vector(polynomials: VectorPolynomials, terms: tuple[np.ndarray, ...]) -> np.ndarray:
    """Unit direction vectors (last axis x, y, z) from the 9 polynomial terms."""
    vector = np.stack([mean + _ratio(num, den, terms) for mean, num, den in
                       zip(polynomials.mean_vector, polynomials.numerators, polynomials.denominators)], axis=-1)
    return vector / np.linalg.norm(vector, axis=-1, keepdims=True)


def band_angles(model: BandAngleModel, line, sample, *, target: str = "satellite", height_m=None,
                extrapolate_px: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Zenith and azimuth (degrees; azimuth 0-360 clockwise from north, from the pixel towards the target) of
    the ``"satellite"`` or the ``"sun"`` at L1T ``line``/``sample`` (see ``l1t_line_sample``).

    ``height_m``: terrain height (metres, scalar or like ``line``); the band's mean height if None. NaN where
    no detector module saw the pixel, except within ``extrapolate_px`` raw-image pixels of a module's edge:
    there the nearest module's polynomials are extrapolated (smooth; what a coarse grid needs so that the
    pixels between its last node inside the swath and the swath edge are interpolated, not held constant).
    """
    if target not in ("satellite", "sun"):
        raise ValueError(f"target must be 'satellite' or 'sun', not {target!r}")
    polynomials = model.satellite if target == "satellite" else model.sun
    line, sample = np.broadcast_arrays(np.asarray(line, dtype=np.float64), np.asarray(sample, dtype=np.float64))
    height = np.full(line.shape, model.mean_height_m) if height_m is None else (
        np.broadcast_to(np.asarray(height_m, dtype=np.float64), line.shape))
    dl, ds, dh = line - model.l1t_mean[0], sample - model.l1t_mean[1], height - model.mean_height_m
    total = np.zeros(line.shape + (3,))
    count = np.zeros(line.shape)
    nearest = np.full(line.shape + (3,), np.nan)  # the nearest module's vector, for pixels outside all
    nearest_distance = np.full(line.shape, np.inf)
    for mapping in model.mappings:
        r_line, r_sample = l1r_coordinates(mapping, line, sample, height)
        outside_by = (np.maximum(0.0, np.maximum(-r_sample, r_sample - (model.l1r_samples - 1)))
                      + np.maximum(0.0, np.maximum(-r_line, r_line - (model.l1r_lines - 1))))
        inside = outside_by == 0.0
        closer = ~inside & (outside_by <= extrapolate_px) & (outside_by < nearest_distance)
        if not (inside.any() or closer.any()):
            continue
        big_l = r_line - model.l1r_mean[0]
        big_s = r_sample + mapping.l1r_sample_offset - model.l1r_mean[1]
        terms = (dl, ds, dh, big_l, dl * dl, dl * ds, ds * ds, big_s * big_l * big_l, big_l ** 3)
        unit = _unit_vector(polynomials, terms)
        total += np.where(inside[..., None], unit, 0.0)
        count += inside
        nearest = np.where(closer[..., None], unit, nearest)
        nearest_distance = np.where(closer, outside_by, nearest_distance)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / np.linalg.norm(total, axis=-1, keepdims=True)
    mean = np.where((count == 0)[..., None], nearest, mean)
    zenith = np.rad2deg(np.arccos(np.clip(mean[..., 2], -1.0, 1.0)))
    azimuth = np.rad2deg(np.arctan2(mean[..., 0], mean[..., 1])) % 360.0
    return zenith, azimuth
