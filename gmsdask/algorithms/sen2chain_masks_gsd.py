"""Sen2Chain's cloud masks CM001-CM004 on a grid of any pixel size, their kernels scaled in metres (pure numpy).

Sen2Chain counts its kernels in pixels of the 20 m grid of an L2A product (:mod:`.sen2chain_masks`). A tile cube
has its own pixel size (10 m, 30 m, 60 m ...), and masks computed from the cube's own layers (gmsdask's Fmask
classes, :mod:`.fmask_sen2cor`) are computed there. The kernels keep their size on the ground:

==========================================  =======================  =====================================
kernel (Sen2Chain, 20 m pixels)             on the ground            at pixel size g (``round`` half up)
==========================================  =======================  =====================================
CM001 erosion: 3x3 cross                    disc of radius 20 m      disc of radius round(20 / g) px
CM001/CM002 dilation: 11x11 disc            disc of radius 100 m     disc of radius max(1, round(100 / g))
CM002 dark-SWIR dilation: 11x11 disc        disc of radius 100 m     same
CM002 final dilation: 13x13 disc            disc of radius 120 m     disc of radius max(1, round(120 / g))
CM003/CM004: i dilations by the 5x5 square  octagon: |dx|, |dy| <=  octagon: half-width A = max(1,
without its corners                         40 i m, |dx| + |dy| <=   round(40 i / g)), |dx| + |dy| <= B =
                                            60 i m                   round(60 i / g) clipped to [A, 2A]
==========================================  =======================  =====================================

A disc of radius r px is every offset with dx^2 + dy^2 <= r^2 (scikit-image's ``disk``; the 3x3 cross is the disc
of radius 1). The i dilations by the 5x5 kernel without corners are one dilation by their Minkowski sum, the
lattice octagon above (for i = 1 the kernel itself); ``ITER0`` is no dilation. At g = 20 m every kernel is
Sen2Chain's own and the masks equal :func:`.sen2chain_masks.cloud_mask` (the tests compare them); at 10 m the
kernels cover the same ground with four times the pixels. Coarser than 20 m the radii are rounded to whole
pixels; a dilation keeps at least one pixel (a masked pixel's neighbours stay masked, erring on the masked side),
an erosion smaller than half a pixel is none (the 20 m speckle it removes is below the grid's resolution).

Morphology is computed with distance transforms (``scipy.ndimage.distance_transform_edt`` for discs, ``_cdt``
with the taxicab metric and ``maximum_filter`` for the octagon, the Minkowski sum of a square and a diamond):
their cost does not grow with the kernel, which at 10 m is up to 25 x 25 pixels (ITER5: 41 x 41).

Blockwise evaluation works as in :mod:`.sen2chain_masks`: ``inside`` marks the image's pixels (False in the
margin beyond its edges), a block with :func:`overlap_depth_at` pixels of margin gives the whole-image result on
its core, and nothing outside the image is ever cloud.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .sen2chain_masks import CM001_PROBABILITY_PCT, CM002_DARK_SWIR_REFLECTANCE, CloudMaskSpec

__all__ = ["SEN2CHAIN_PIXEL_M", "MaskKernels", "mask_kernels", "overlap_depth_at", "cloud_mask_at",
           "disc_dilation", "disc_erosion", "octagon_dilation"]

#: The pixel size Sen2Chain's kernels are counted in, metres.
SEN2CHAIN_PIXEL_M = 20.0
_EROSION_M = 20.0
_CM001_DILATION_M = 100.0
_DARK_DILATION_M = 100.0
_CM002_DILATION_M = 120.0
_OCTAGON_HALF_WIDTH_M = 40.0  # per iteration of the 5x5 kernel without corners
_OCTAGON_L1_M = 60.0


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5 + 1e-9))


@dataclass(frozen=True)
class MaskKernels:
    """The kernels of one mask at one pixel size, in pixels.

    ``erosion`` and the ``*_dilation`` fields are disc radii; ``octagon`` is ``(A, B)``: Chebyshev half-width
    and taxicab bound of the CM003/CM004 dilation, ``(0, 0)`` for none.
    """

    erosion: int = 0
    cloud_dilation: int = 0
    dark_dilation: int = 0
    final_dilation: int = 0
    octagon: tuple[int, int] = (0, 0)


def mask_kernels(spec: CloudMaskSpec, pixel_m: float) -> MaskKernels:
    """The kernels of ``spec`` on a grid of ``pixel_m`` metres (module docstring)."""
    if not pixel_m > 0:
        raise ValueError(f"the pixel size must be positive, got {pixel_m} m")

    def dilation(metres: float) -> int:
        return max(1, _round_half_up(metres / pixel_m))

    if spec.version in ("CM001", "CM002"):
        kernels = MaskKernels(erosion=_round_half_up(_EROSION_M / pixel_m),
                              cloud_dilation=dilation(_CM001_DILATION_M))
        if spec.version == "CM002":
            kernels = MaskKernels(kernels.erosion, kernels.cloud_dilation, dilation(_DARK_DILATION_M),
                                  dilation(_CM002_DILATION_M))
        return kernels
    if spec.iterations == 0:
        return MaskKernels()
    half_width = dilation(_OCTAGON_HALF_WIDTH_M * spec.iterations)
    l1 = min(max(_round_half_up(_OCTAGON_L1_M * spec.iterations / pixel_m), half_width), 2 * half_width)
    return MaskKernels(octagon=(half_width, l1))


def overlap_depth_at(spec: CloudMaskSpec, pixel_m: float) -> int:
    """Pixels of margin a block needs at ``pixel_m`` so that its core equals the whole-image result."""
    k = mask_kernels(spec, pixel_m)
    if spec.version == "CM001":
        return k.erosion + k.cloud_dilation
    if spec.version == "CM002":
        return max(k.erosion + k.cloud_dilation, k.dark_dilation) + k.final_dilation
    return k.octagon[0]


# --- morphology ---------------------------------------------------------------------------------------------------
def disc_dilation(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` dilated by the disc of ``radius`` pixels (offsets with dx^2 + dy^2 <= radius^2)."""
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0 or not mask.any():
        return mask.copy()
    distance = ndimage.distance_transform_edt(~mask)
    return np.rint(distance * distance) <= radius * radius


def disc_erosion(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` eroded by the disc of ``radius`` pixels; beyond the array nothing is masked (scipy's
    ``border_value=0``)."""
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0 or not mask.any():
        return mask.copy()
    distance = ndimage.distance_transform_edt(np.pad(mask, 1, constant_values=False))[1:-1, 1:-1]
    return np.rint(distance * distance) > radius * radius


def octagon_dilation(mask: np.ndarray, half_width: int, l1: int) -> np.ndarray:
    """``mask`` dilated by the lattice octagon ``|dx|, |dy| <= half_width, |dx| + |dy| <= l1``
    (``half_width <= l1 <= 2 half_width``): a square of half-width ``l1 - half_width`` then a diamond of radius
    ``2 half_width - l1``."""
    mask = np.asarray(mask, dtype=bool)
    if half_width <= 0 or not mask.any():
        return mask.copy()
    if not half_width <= l1 <= 2 * half_width:
        raise ValueError(f"an octagon needs half_width <= l1 <= 2 half_width, got {half_width}, {l1}")
    square, diamond = l1 - half_width, 2 * half_width - l1
    if square:
        mask = ndimage.maximum_filter(mask.view(np.uint8), size=2 * square + 1, mode="constant", cval=0) > 0
    if diamond:
        distance = ndimage.distance_transform_cdt(~mask, metric="taxicab")
        mask = (distance >= 0) & (distance <= diamond)
    return mask


# --- the masks ------------------------------------------------------------------------------------------------------
def _cm001(probability: np.ndarray, k: MaskKernels, inside: np.ndarray) -> np.ndarray:
    cloud = (np.asarray(probability) > CM001_PROBABILITY_PCT) & inside
    cloud = disc_erosion(cloud, k.erosion) & inside
    return disc_dilation(cloud, k.cloud_dilation) & inside


def cloud_mask_at(spec: CloudMaskSpec, pixel_m: float, *, probability: np.ndarray | None = None,
                  scl: np.ndarray | None = None, swir16: np.ndarray | None = None,
                  inside: np.ndarray | None = None) -> np.ndarray:
    """The mask ``spec`` (uint8, 1 masked) on a grid of ``pixel_m`` metres from the layers it needs
    (:attr:`CloudMaskSpec.needs`: probability %, SCL classes, B11 reflectance with NaN = no data = dark)."""
    given = {"probability": probability, "scl": scl, "swir16": swir16}
    missing = [name for name in spec.needs if given[name] is None]
    if missing:
        raise ValueError(f"{spec.name} needs {', '.join(missing)}")
    shape = np.shape(given[spec.needs[0]])
    inside = np.ones(shape, dtype=bool) if inside is None else np.asarray(inside, dtype=bool)
    k = mask_kernels(spec, pixel_m)
    if spec.version == "CM001":
        out = _cm001(probability, k, inside)
    elif spec.version == "CM002":
        dark = ~(np.asarray(swir16) >= CM002_DARK_SWIR_REFLECTANCE) & inside  # NaN is dark, as in Sen2Chain
        dark = disc_dilation(dark, k.dark_dilation) & inside
        out = disc_dilation(_cm001(probability, k, inside) & ~dark, k.final_dilation) & inside
    else:
        if spec.version == "CM003":
            flagged = (np.asarray(probability) >= spec.probability) & inside
        else:
            flagged = np.isin(np.asarray(scl), spec.classes) & inside
        out = octagon_dilation(flagged, *k.octagon) & inside
    return out.astype(np.uint8)
