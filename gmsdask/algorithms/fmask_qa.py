"""The products' own quality layers translated into the Fmask classes of gmsdask (pure numpy).

Classes (GeoMultiSens, FACTS.md section 1): 0 no data, 1 clear land, 2 cloud, 3 cloud shadow, 4 snow/ice,
5 water. Where a pixel carries several flags the first of cloud > shadow > snow > water wins (as in
:func:`gmsdask.algorithms.fmask_classes.combine_classes`).

- Landsat Collection 2 ``QA_PIXEL``: bit 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud (all three: cloud),
  4 cloud shadow, 5 snow, 7 water.
- Landsat Collection 1 ``BQA``: bit 0 designated fill, bit 4 cloud; two-bit confidences (3 = high) of cloud
  shadow (bits 7-8), snow/ice (9-10) and cirrus (11-12, OLI only; cirrus counts as cloud). C1 has no water bit.
- Sentinel-2 L2A ``SCL``: 0 no data, 1 saturated/defective (no data), 3 cloud shadow, 6 water,
  8/9 cloud medium/high probability and 10 thin cirrus (cloud), 11 snow; the rest clear (2 dark area,
  4 vegetation, 5 bare soil, 7 unclassified).
- Sentinel-2 L1C (baseline >= 04.00) ``MSK_CLASSI_OPAQUE``/``_CIRRUS`` (cloud) and ``_SNOW_ICE`` (snow), 0/1.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = [
    "CLASS_NAMES",
    "CLEAR",
    "CLOUD",
    "NODATA",
    "QA_LAYERS",
    "SHADOW",
    "SNOW",
    "WATER",
    "combine_classes",
    "product_qa_classes",
]

NODATA, CLEAR, CLOUD, SHADOW, SNOW, WATER = 0, 1, 2, 3, 4, 5
CLASS_NAMES = {NODATA: "no_data", CLEAR: "clear_land", CLOUD: "cloud", SHADOW: "cloud_shadow", SNOW: "snow_ice",
               WATER: "water"}
#: QA layers :func:`product_qa_classes` understands, in the order they are preferred.
QA_LAYERS = ("QA_PIXEL", "BQA", "SCL", "MSK_CLASSI_OPAQUE", "MSK_CLASSI_CIRRUS", "MSK_CLASSI_SNOW_ICE")
_SCL_CLASSES = np.array([NODATA, NODATA, CLEAR, SHADOW, CLEAR, CLEAR, WATER, CLEAR, CLOUD, CLOUD, CLOUD, SNOW],
                        dtype=np.uint8)


def combine_classes(nodata: np.ndarray, cloud: np.ndarray, shadow: np.ndarray, snow: np.ndarray,
                    water: np.ndarray) -> np.ndarray:
    """uint8 classes from boolean layers; precedence no data > cloud > shadow > snow > water > clear."""
    classes = np.full(nodata.shape, CLEAR, dtype=np.uint8)
    classes[water] = WATER
    classes[snow] = SNOW
    classes[shadow] = SHADOW
    classes[cloud] = CLOUD
    classes[nodata] = NODATA
    return classes


def _bit(values: np.ndarray, position: int) -> np.ndarray:
    return ((values >> position) & 1).astype(bool)


def _high(values: np.ndarray, first_bit: int) -> np.ndarray:
    return ((values >> first_bit) & 0b11) == 3


def _qa_pixel(qa: np.ndarray) -> tuple[np.ndarray, ...]:
    qa = qa.astype(np.uint16)
    cloud = (qa & 0b1110) != 0
    return _bit(qa, 0), cloud, _bit(qa, 4), _bit(qa, 5), _bit(qa, 7)


def _bqa(bqa: np.ndarray) -> tuple[np.ndarray, ...]:
    bqa = bqa.astype(np.uint16)
    cloud = _bit(bqa, 4) | _high(bqa, 11)
    return _bit(bqa, 0), cloud, _high(bqa, 7), _high(bqa, 9), np.zeros(bqa.shape, dtype=bool)


def product_qa_classes(layers: Mapping[str, np.ndarray], nodata: np.ndarray | None = None) -> np.ndarray:
    """The Fmask classes (uint8) of a product's own quality layers, all on one grid.

    Parameters
    ----------
    layers
        Layer name -> integer array: ``QA_PIXEL`` or ``BQA`` (Landsat), ``SCL`` and/or ``MSK_CLASSI_*``
        (Sentinel-2). The first of ``QA_PIXEL``, ``BQA``, ``SCL`` present drives the classes;
        ``MSK_CLASSI_*`` layers add cloud/snow on top (alone they give clear/cloud/snow only).
    nodata
        Optional extra no-data mask (e.g. the scene's ``nodata``), OR-ed in.

    Raises
    ------
    KeyError
        When no known layer is given (the message lists what is understood).
    """
    known = [name for name in QA_LAYERS if name in layers]
    if not known:
        raise KeyError(f"no product quality layer among {sorted(layers)}; understood are {', '.join(QA_LAYERS)}")
    shape = np.shape(layers[known[0]])
    empty = np.zeros(shape, dtype=bool)
    fill, cloud, shadow, snow, water = empty, empty.copy(), empty.copy(), empty.copy(), empty.copy()
    if "QA_PIXEL" in layers:
        fill, cloud, shadow, snow, water = _qa_pixel(np.asarray(layers["QA_PIXEL"]))
    elif "BQA" in layers:
        fill, cloud, shadow, snow, water = _bqa(np.asarray(layers["BQA"]))
    elif "SCL" in layers:
        scl = np.asarray(layers["SCL"]).astype(np.int64)
        classes = np.where((scl >= 0) & (scl < _SCL_CLASSES.size), _SCL_CLASSES[np.clip(scl, 0, 11)], NODATA)
        fill, cloud, shadow = classes == NODATA, classes == CLOUD, classes == SHADOW
        snow, water = classes == SNOW, classes == WATER
    for name in ("MSK_CLASSI_OPAQUE", "MSK_CLASSI_CIRRUS"):
        if name in layers:
            cloud = cloud | (np.asarray(layers[name]) != 0)
    if "MSK_CLASSI_SNOW_ICE" in layers:
        snow = snow | (np.asarray(layers["MSK_CLASSI_SNOW_ICE"]) != 0)
    if nodata is not None:
        fill = fill | nodata
    return combine_classes(fill, cloud, shadow, snow, water)
