"""gmsdask's Fmask classes and cloud confidence as the Sen2Cor layers Sen2Chain's cloud masks read (pure numpy).

Sen2Chain's masks CM001-CM004 read two layers of a Sentinel-2 L2A product: ``MSK_CLDPRB`` (cloud probability,
0-100 %) and ``SCL`` (Sen2Cor's scene classes). Scenes gmsdask corrected itself (Level-1 products through L1C:
Fmask + 6S) have neither; they carry ``fmask`` (0 no data, 1 clear land, 2 cloud, 3 cloud shadow, 4 snow/ice,
5 water; 255 where nothing was written) and, with Fmask, ``cloud_confidence`` (Fmask's cloud probability in
percent, 0 where a pixel fails the potential-cloud tests, 255 no data). This module translates them.

SCL classes (ESA, Sen2Cor): 0 no data, 1 saturated/defective, 2 dark area, 3 cloud shadow, 4 vegetation, 5 not
vegetated, 6 water, 7 unclassified, 8 cloud medium probability, 9 cloud high probability, 10 thin cirrus,
11 snow/ice.

=============  ===========================================================  ==============================
fmask          SCL                                                          MSK_CLDPRB without confidence
=============  ===========================================================  ==============================
0 no data      0 no data                                                    0
1 clear land   5 not vegetated                                              0
2 cloud        9 when cloud_confidence >= 65 %, else 8; 9 without it        100
3 shadow       3 cloud shadow                                               0
4 snow/ice     11 snow                                                      0
5 water        6 water                                                      0
other (255)    0 no data                                                    0
=============  ===========================================================  ==============================

Why these choices:

- **Cloud: 8 or 9 by the confidence, thresholds 35 % / 65 %.** Sen2Cor's Level-2A algorithm splits its cloud
  probability into low (below 35 %: not a cloud class), medium (35-65 %: class 8) and high (above 65 %: class 9)
  probability clouds. Fmask already decided that the pixel is cloud (its own threshold, ~17.5-22.5 %, plus the
  cloud buffer), so a cloud pixel is never "low": below 65 % it is class 8, from 65 % class 9. Without a
  confidence (``cloud_masking_algorithm = PRODUCT_QA``: no layer, or 255 in a cube whose other slots have one)
  a cloud is class 9, as certain as the product says.
  Fmask has no cirrus class, so CM004's TCI flag (class 10) selects nothing; cirrus Fmask detects is cloud.
- **Clear land: 5, not 4.** Fmask does not tell vegetation from bare soil, and none of Sen2Chain's rules reads
  classes 4 or 5 (CM004 selects 3, 8, 9, 10 only; CM001-CM003 read the probability): the choice never changes a
  mask. Class 5 ("not vegetated") is the one that claims nothing the data did not show; 4 would assert
  vegetation on every clear pixel, which tools reading the exported classes could mistake for a land-cover fact.
- **Probability = cloud_confidence**, clipped to 0-100; every pixel Fmask marks no data is 0: outside the data
  nothing is cloud, as beyond an image's edge in Sen2Chain. Without a confidence (no layer, or 255 where the
  classes have data) a cloud pixel gets 100 % and every other class 0 %: the classification is all there is,
  and 100 keeps every CM003-PRBp (p <= 100) and CM001 (> 25 %) agreeing with the classes.
- **B11 for CM002.** L1C blanks cloud and shadow pixels (NaN in every band) before the correction, so in the
  cube their B11 is unknown. Sen2Chain treats B11 no data as dark, which would delete every cloud from CM002;
  :func:`swir16_for_cm002` therefore treats blanked cloud and shadow pixels as bright (not dark). Other no-data
  pixels stay no data (dark), as in Sen2Chain.
"""

from __future__ import annotations

import numpy as np

from .fmask_qa import CLEAR, CLOUD, NODATA, SHADOW, SNOW, WATER

__all__ = ["SCL_CLOUD_HIGH_PROBABILITY_PCT", "SCL_CLOUD_MEDIUM_PROBABILITY_PCT", "FMASK_TO_SCL",
           "PROBABILITY_WITHOUT_CONFIDENCE_PCT", "CONFIDENCE_NODATA", "fmask_has_data", "fmask_to_scl",
           "fmask_cloud_probability", "swir16_for_cm002"]

#: Sen2Cor: cloud probability from which a cloud is "high probability" (SCL 9), percent.
SCL_CLOUD_HIGH_PROBABILITY_PCT = 65
#: Sen2Cor: cloud probability from which a cloud is "medium probability" (SCL 8), percent (Fmask clouds below it
#: are class 8 too: Fmask has classified them as cloud).
SCL_CLOUD_MEDIUM_PROBABILITY_PCT = 35
#: Fmask class -> SCL class for every class but cloud (8 or 9 by the confidence).
FMASK_TO_SCL: dict[int, int] = {NODATA: 0, CLEAR: 5, CLOUD: 9, SHADOW: 3, SNOW: 11, WATER: 6}
#: MSK_CLDPRB per Fmask class where there is no ``cloud_confidence`` layer, percent.
PROBABILITY_WITHOUT_CONFIDENCE_PCT: dict[int, int] = {NODATA: 0, CLEAR: 0, CLOUD: 100, SHADOW: 0, SNOW: 0,
                                                      WATER: 0}
#: ``cloud_confidence`` of no-data pixels.
CONFIDENCE_NODATA = 255


def _lookup_table(values: dict[int, int]) -> np.ndarray:
    """A read-only uint8 table over every uint8 class; classes not in ``values`` (255 = never written) get 0."""
    table = np.zeros(256, dtype=np.uint8)
    table[list(values)] = list(values.values())
    table.setflags(write=False)
    return table


_SCL_TABLE = _lookup_table(FMASK_TO_SCL)
_PROBABILITY_TABLE = _lookup_table(PROBABILITY_WITHOUT_CONFIDENCE_PCT)


def _classes(fmask: np.ndarray) -> np.ndarray:
    return np.asarray(fmask).astype(np.uint8, copy=False)


def fmask_has_data(fmask: np.ndarray) -> np.ndarray:
    """True where ``fmask`` holds a class (1-5), False for no data (0) and anything else (255 never written)."""
    classes = _classes(fmask)
    return (classes >= CLEAR) & (classes <= WATER)


def fmask_to_scl(fmask: np.ndarray, cloud_confidence: np.ndarray | None = None) -> np.ndarray:
    """SCL classes (uint8) of Fmask classes; clouds are 8 or 9 by ``cloud_confidence`` (%), 9 where there is no
    confidence (no layer, or its no-data value 255: a slot masked with the product's QA in a cube whose other slots
    have Fmask's confidence)."""
    classes = _classes(fmask)
    scl = _SCL_TABLE[classes]
    if cloud_confidence is not None:
        confidence = np.asarray(cloud_confidence)
        medium = (classes == CLOUD) & (confidence < SCL_CLOUD_HIGH_PROBABILITY_PCT)
        scl = np.where(medium, np.uint8(8), scl).astype(np.uint8)
    return scl


def fmask_cloud_probability(fmask: np.ndarray, cloud_confidence: np.ndarray | None = None) -> np.ndarray:
    """MSK_CLDPRB (uint8 %) of Fmask classes: ``cloud_confidence`` clipped to 0-100 where Fmask has data, 0
    where it has none; where there is no confidence (no layer, or 255) the per-class values of
    :data:`PROBABILITY_WITHOUT_CONFIDENCE_PCT`."""
    classes = _classes(fmask)
    by_class = _PROBABILITY_TABLE[classes]
    if cloud_confidence is None:
        return by_class
    confidence = np.asarray(cloud_confidence)
    known = fmask_has_data(classes) & (confidence != CONFIDENCE_NODATA)
    return np.where(known, np.clip(confidence, 0, 100), by_class).astype(np.uint8)


def swir16_for_cm002(swir16: np.ndarray, fmask: np.ndarray) -> np.ndarray:
    """B11 reflectance for CM002's dark-SWIR test: +inf (bright) where L1C blanked a cloud or shadow pixel, the
    value (NaN = no data = dark) elsewhere."""
    classes = _classes(fmask)
    blanked = (classes == CLOUD) | (classes == SHADOW)
    return np.where(blanked, np.inf, np.asarray(swir16, dtype=np.float32)).astype(np.float32)
