"""Cloud, cirrus and cloud-shadow flags from the products' own quality layers (pure numpy).

- Landsat Collection 2 ``QA_PIXEL``: bit 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow.
- Landsat Collection 1 ``BQA``: bit 4 cloud; bits 7-8 cloud-shadow confidence, 11-12 cirrus confidence
  (3 = high).
- Sentinel-2 L2A ``SCL``: classes 3 cloud shadow, 8 cloud medium probability, 9 cloud high probability,
  10 thin cirrus.
- Sentinel-2 L1C (baseline >= 04.00) ``MSK_CLASSI_OPAQUE`` and ``MSK_CLASSI_CIRRUS``: non-zero = flagged.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["CLOUD_DECODERS", "qa_pixel_cloud", "bqa_cloud", "scl_cloud", "classi_cloud"]

SCL_CLOUD_CLASSES = (3, 8, 9, 10)


def qa_pixel_cloud(qa: np.ndarray) -> np.ndarray:
    """Collection 2 QA_PIXEL: dilated cloud, cirrus, cloud or cloud shadow."""
    return (qa.astype(np.uint16) & 0b11110) != 0


def _confidence(bqa: np.ndarray, first_bit: int) -> np.ndarray:
    return (bqa.astype(np.uint16) >> first_bit) & 0b11


def bqa_cloud(bqa: np.ndarray) -> np.ndarray:
    """Collection 1 BQA: cloud, or high-confidence cloud shadow or cirrus."""
    bqa = bqa.astype(np.uint16)
    return ((bqa >> 4) & 1).astype(bool) | (_confidence(bqa, 7) == 3) | (_confidence(bqa, 11) == 3)


def scl_cloud(scl: np.ndarray) -> np.ndarray:
    """Sentinel-2 scene classification: cloud shadow, medium/high-probability cloud, thin cirrus."""
    return np.isin(scl, SCL_CLOUD_CLASSES)


def classi_cloud(mask: np.ndarray) -> np.ndarray:
    """Sentinel-2 L1C MSK_CLASSI opaque-cloud or cirrus layer."""
    return mask != 0


#: Quality layer name -> its cloud decoder.
CLOUD_DECODERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "QA_PIXEL": qa_pixel_cloud,
    "BQA": bqa_cloud,
    "SCL": scl_cloud,
    "MSK_CLASSI_OPAQUE": classi_cloud,
    "MSK_CLASSI_CIRRUS": classi_cloud,
}
