"""Sentinel-2 MSI products as scene trees: L1C and L2A SAFE (directory or ``.zip``) and the older per-tile
"AWS PDS" L1C layout (``B01.jp2`` .. ``B12.jp2``, tile ``metadata.xml``, ``datastrip/metadata.xml``).

Radiometry (FACTS.md section 2): reflectance ``(DN + offset) / quantification``; L1C TOA with
``QUANTIFICATION_VALUE`` and ``RADIO_ADD_OFFSET``, L2A BOA with ``BOA_QUANTIFICATION_VALUE`` and ``BOA_ADD_OFFSET``
(offsets exist from processing baseline 04.00, -1000; before it they are 0). DN 0 is no data (NaN), DN 65535
is saturated. ESA numbers bands 0..12 in the order B01..B08, B8A, B09..B12 in every ``bandId``/``band_id``.

Opening reads only XML metadata and raster headers; pixels are read by the Dask tasks.
"""

from __future__ import annotations

from .reader import open_sentinel2
from .xml import ESA_BAND_ORDER

__all__ = ["open_sentinel2", "ESA_BAND_ORDER"]
