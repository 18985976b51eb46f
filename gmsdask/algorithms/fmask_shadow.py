"""Fmask cloud shadows: the potential-shadow layer and the matching of cloud objects (Zhu & Woodcock 2012).

numpy on one whole grid (the caller uses a coarse grid of the scene: labelling cloud objects and flood-filling
are scene-wide operations that cannot be done per chunk); the flood and the per-object scoring of the matching are
compiled loops (:mod:`.priority_flood`, :mod:`._shadow_kernels`).

- Potential shadow: shadows are local dark "holes" in NIR and SWIR1. Each band is flood-filled (grayscale
  hole filling, the morphological reconstruction by erosion from the border, computed by a priority flood:
  :mod:`gmsdask.algorithms.priority_flood`); no-data and the image border take Fmask's background, the 17.5th
  percentile of clear land. A pixel is potential shadow where both filled-minus-original differences exceed
  0.02. Given the clear-land pixels, the background is taken twice:
  clear land is land free of clouds *and shadows*, so the second pass takes the percentile without the dark
  holes the first pass found (in a scene with many shadows the first percentile is itself a shadow level, and
  shadows touching the image edge drained away: shadow F1 0.50 instead of 0.73 on a half-cloudy low-sun scene).
- Matching: every 8-connected cloud object is projected away from the sun for cloud heights from
  ``min_height_m`` to ``max_height_m`` in steps of one pixel of displacement. Fmask's similarity is the share
  of projected pixels (not on the object itself, inside the valid image) that land on potential shadow or on
  another cloud; an object whose similarity never reaches ``similarity`` casts no shadow. Among the heights
  that reach it, the one with the most evidence wins: projected pixels on potential shadow (outside clouds)
  minus projected pixels on clear ground that is not potential shadow. Fmask's own choice, the first
  similarity maximum, picks the lowest height of a plateau (from the object's edge up to the true height the
  part of the object that leaves itself lands on its shadow, so the ratio is flat; on synthetic truth that
  rule matched heights ~40 % too low); the most shadow hits alone drifted to large heights over dark
  forests on large scenes. The matched shadow is the whole object footprint at that height. The sun is one
  direction for the scene (its centre); the view parallax of a cloud (``h tan(view zenith)``) is ignored.
- Clouds beyond the image (not in the papers): a cloud outside the image, or over its no-data, casts its
  shadow into the image, and no object matching can find it (on the demo's 9 km Sentinel-2B scene that was
  60 % of the shadow pixels left clear). :func:`edge_shadows` labels shadow the potential-shadow objects that
  touch the image edge or no data on the sun side, where such a cloud would be (option ``edge_shadows``).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["ShadowMatch", "edge_shadows", "fill_holes", "match_shadows", "potential_shadow"]

_SHADOW_DARKENING = 0.02
#: Fmask's background percentile of clear land for the flood-fill (Zhu & Woodcock 2012).
_BACKGROUND_PERCENT = 17.5
#: Fewest clear-land pixels for a second-pass background (fewer: the first pass stands).
_MIN_BACKGROUND_PIXELS = 20
#: A sun direction component (north or east, of 1) below this (~0.6 degree) does not point beyond an edge.
_SUNWARD_COMPONENT = 0.01
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
#: Object pixels used to score a height (a larger object is sampled with a fixed stride: deterministic).
_MAX_SCORED_PIXELS = 20_000


def fill_holes(image: np.ndarray, border_value: float, valid: np.ndarray | None = None) -> np.ndarray:
    """Grayscale hole filling: every local basin not connected to the border is raised to its spill level.

    NaN pixels, pixels outside ``valid`` (bool, optional) and the image border count as ``border_value``.
    """
    # imported here: numba's import and first compilation (~0.7 s and ~3 s, then cached) are paid by the
    # processes that fill holes, not by every process that imports the masks
    from .priority_flood import fill_holes_from_border

    values = np.where(_usable(image, valid), image, border_value)  # float32 (TOA blocks) stays float32
    if values.dtype != np.float32:
        values = values.astype(np.float64)
    if min(values.shape) < 3:
        return values
    # the border pixels keep their own value, but never below the background, as Fmask pads with it
    border = np.ones(values.shape, dtype=bool)
    border[1:-1, 1:-1] = False
    values[border] = np.maximum(values[border], border_value)
    return fill_holes_from_border(values, overwrite=True)  # values is this function's own copy


def _usable(band: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    return np.isfinite(band) if valid is None else valid & np.isfinite(band)


#: The background of a fill that any later background can be put on (:func:`_spill_levels`): far below any
#: reflectance, and finite, as the flood needs.
_LOWEST = float(np.finfo(np.float32).min)


def _spill_levels(nir: np.ndarray, swir1: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both bands filled with no data and the image border at :data:`_LOWEST`.

    The fill with a background ``b`` is ``max(b, this)`` pixel for pixel: every path from a pixel to the border
    ends at a pixel padded with ``b``, so ``b`` is part of every path's maximum, and taking the least of those
    maxima commutes with ``max(b, .)``. The values are copies of the image's, so the equality is exact. The two
    passes of :func:`potential_shadow` therefore flood each band once, not twice (on a Landsat scene's 60 m grid
    the four floods were ~4.2 s of a ~9.5 s task that every later block waits for).

    The two fills are independent and the priority flood releases the GIL: filled side by side they take the
    time of one, and a second worker has nothing else to do meanwhile."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="fmask-fill") as pool:
        filled_nir, filled_swir = pool.map(fill_holes, (nir, swir1), (_LOWEST, _LOWEST), (valid, valid))
    return filled_nir, filled_swir


def _dark_holes(nir: np.ndarray, swir1: np.ndarray, valid: np.ndarray, nir_background: float,
                swir1_background: float, spill_levels: tuple[np.ndarray, np.ndarray], *,
                last: bool = False) -> np.ndarray:
    """Pixels darker than their fill with these backgrounds in both bands; ``last``: the spill levels are not
    needed afterwards, and the fills are made in them."""
    if not math.isfinite(nir_background):
        nir_background = float(np.nanmedian(np.where(valid, nir, np.nan)))
    if not math.isfinite(swir1_background):
        swir1_background = float(np.nanmedian(np.where(valid, swir1, np.nan)))
    # the fills with these backgrounds (_spill_levels), and the darkening in place: this task's memory is an
    # area's worth of float32 layers (a whole Sentinel-2 tile's 60 m grid: 13 MiB each), and it peaks here
    filled_nir, filled_swir = (np.maximum(spill, spill.dtype.type(background), out=spill if last else None)
                               for spill, background in zip(spill_levels, (nir_background, swir1_background)))
    dark_nir = np.subtract(filled_nir, np.where(_usable(nir, valid), nir, nir_background), out=filled_nir)
    dark_swir = np.subtract(filled_swir, np.where(_usable(swir1, valid), swir1, swir1_background), out=filled_swir)
    return (np.minimum(dark_nir, dark_swir, out=dark_nir) > _SHADOW_DARKENING) & valid


def potential_shadow(nir: np.ndarray, swir1: np.ndarray, valid: np.ndarray, *, nir_background: float,
                     swir1_background: float, clear_land: np.ndarray | None = None) -> np.ndarray:
    """Potential cloud-shadow pixels (bool): dark holes in both NIR and SWIR1 (TOA reflectance).

    ``nir_background``/``swir1_background`` pad no data (outside ``valid``, or NaN) and the image border (Fmask:
    the clear-land 17.5th percentiles; NaN: the median of the valid pixels). With ``clear_land`` (bool, pixels
    free of cloud and water), the holes are found a second time with the 17.5th percentiles of the clear land
    outside the first pass's holes.
    """
    spill_levels = _spill_levels(nir, swir1, valid)
    holes = _dark_holes(nir, swir1, valid, nir_background, swir1_background, spill_levels, last=clear_land is None)
    if clear_land is None:
        return holes
    lit = clear_land & ~holes & _usable(nir, valid) & _usable(swir1, valid)
    if lit.sum() < _MIN_BACKGROUND_PIXELS:
        return holes
    return _dark_holes(nir, swir1, valid, float(np.percentile(nir[lit], _BACKGROUND_PERCENT)),
                       float(np.percentile(swir1[lit], _BACKGROUND_PERCENT)), spill_levels, last=True)


def edge_shadows(potential: np.ndarray, cloud: np.ndarray, valid: np.ndarray, *, sun_azimuth_deg: float,
                 reach_px: float) -> np.ndarray:
    """Potential-shadow objects (bool) that may be cast by clouds beyond the image or its no data.

    An 8-connected object of ``potential`` (outside ``cloud``) qualifies where one of its pixels has the image
    edge or an invalid pixel as its neighbour towards the sun: the row towards the sun where the sun has a
    north-south component, the column towards it where it has an east-west one (azimuth clockwise from north,
    degrees; rows south, columns east). Of such an object, only the pixels within ``reach_px`` pixels of the
    edge or no data, looking towards the sun, are returned: the caller passes the shadow displacement of the
    image's typical matched cloud height (clouds beyond it are taken to be as high; 0: none matched).
    """
    candidates = potential & ~cloud & valid
    labels, count = ndimage.label(candidates, structure=_EIGHT_CONNECTED)
    if count == 0:
        return np.zeros(potential.shape, dtype=bool)
    azimuth = math.radians(sun_azimuth_deg)
    east, north = math.sin(azimuth), math.cos(azimuth)
    # the neighbours towards the sun: the row above/below and the column right/left, for each component
    steps = [(-int(np.sign(north)), 0)] if abs(north) > _SUNWARD_COMPONENT else []
    steps += [(0, int(np.sign(east)))] if abs(east) > _SUNWARD_COMPONENT else []
    beyond = np.ones((potential.shape[0] + 2, potential.shape[1] + 2), dtype=bool)
    beyond[1:-1, 1:-1] = ~valid
    rows, cols = potential.shape
    sunward = np.zeros(potential.shape, dtype=bool)
    for d_row, d_col in steps:
        sunward |= beyond[1 + d_row:1 + d_row + rows, 1 + d_col:1 + d_col + cols]
    touching = np.zeros(count + 1, dtype=bool)
    touching[np.unique(labels[sunward & (labels > 0)])] = True
    touching[0] = False
    reach = math.ceil(max(reach_px, 0.0))
    padded = np.pad(~valid, reach, constant_values=True)
    near = np.zeros(potential.shape, dtype=bool)
    for t in range(1, reach + 1):
        d_row, d_col = reach + round(-north * t), reach + round(east * t)
        near |= padded[d_row:d_row + rows, d_col:d_col + cols]
    return touching[labels] & near


@dataclass(frozen=True)
class ShadowMatch:
    """The matched shadow mask (bool, without the clouds themselves), per matched object the chosen height and
    the object's pixel count."""

    shadow: np.ndarray
    objects: int
    matched: int
    heights_m: tuple[float, ...]
    pixels: tuple[int, ...] = ()

    @property
    def typical_height_m(self) -> float:
        """The pixel-weighted median of the matched heights (m; 0 when nothing matched): the scene's cloud
        height, which specks of one pixel matched at any height barely move."""
        if not self.heights_m:
            return 0.0
        order = np.argsort(self.heights_m)
        weights = np.asarray(self.pixels, dtype=float)[order] if self.pixels else np.ones(len(order))
        cumulative = np.cumsum(weights)
        return float(np.asarray(self.heights_m)[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def _scored_pixels(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if rows.size <= _MAX_SCORED_PIXELS:
        return rows, cols
    stride = math.ceil(rows.size / _MAX_SCORED_PIXELS)
    return rows[::stride], cols[::stride]


def _best_height(similarity: np.ndarray, evidence: np.ndarray, threshold: float) -> int | None:
    """Index of the matched height: the most evidence (projected pixels on potential shadow minus those on
    clear ground that is not potential shadow), among the heights whose similarity reaches ``threshold``."""
    eligible = similarity >= threshold
    if not eligible.any():
        return None
    return int(np.argmax(np.where(eligible, evidence, np.iinfo(np.int64).min)))


def match_shadows(cloud: np.ndarray, potential: np.ndarray, valid: np.ndarray, *, pixel_m: float,
                  sun_zenith_deg: float, sun_azimuth_deg: float, min_height_m: float = 200.0,
                  max_height_m: float = 12_000.0, similarity: float = 0.3) -> ShadowMatch:
    """Shadows of the cloud objects of ``cloud`` matched against ``potential`` (all bool, one grid).

    ``pixel_m`` is the grid's pixel size; rows run south, columns east (north-up grid). Azimuth clockwise
    from north, degrees.
    """
    labels, count = ndimage.label(cloud, structure=_EIGHT_CONNECTED)
    shadow = np.zeros(cloud.shape, dtype=bool)
    reach = math.tan(math.radians(min(sun_zenith_deg, 85.0)))
    if count == 0 or reach <= 0:
        return ShadowMatch(shadow, count, 0, ())
    azimuth = math.radians(sun_azimuth_deg)
    # shadows fall away from the sun: east -sin(az), north -cos(az); rows count southwards
    per_metre = np.array([reach * math.cos(azimuth), -reach * math.sin(azimuth)]) / pixel_m
    step_m = pixel_m / max(reach * max(abs(math.cos(azimuth)), abs(math.sin(azimuth))), 1e-6)
    heights = np.arange(min_height_m, max_height_m + step_m / 2, step_m)
    target = potential | cloud
    shade = potential & ~cloud
    heights_found: list[float] = []
    pixels_found: list[int] = []
    # imported here, as the flood's kernels are: numba's import and compilation are paid by the processes that
    # match shadows, not by every process that imports the masks
    from ._shadow_kernels import height_scores

    # each object's pixels in row-major order, from one pass over the labels (not one per object's bounding box)
    pixels = ndimage.value_indices(labels, ignore_value=0)
    for label in range(1, count + 1):
        rows, cols = pixels[label]
        scored_rows, scored_cols = _scored_pixels(rows, cols)
        scores, shaded = height_scores(scored_rows, scored_cols, heights, float(per_metre[0]), float(per_metre[1]),
                                       label, labels, valid, target, shade)
        best = _best_height(scores, shaded, similarity)
        if best is None:
            continue
        heights_found.append(float(heights[best]))
        pixels_found.append(int(rows.size))
        r = np.rint(rows + heights[best] * per_metre[0]).astype(np.int64)
        c = np.rint(cols + heights[best] * per_metre[1]).astype(np.int64)
        inside = (r >= 0) & (r < shadow.shape[0]) & (c >= 0) & (c < shadow.shape[1])
        shadow[r[inside], c[inside]] = True
    return ShadowMatch(shadow & ~cloud & valid, count, len(heights_found), tuple(heights_found),
                       tuple(pixels_found))
