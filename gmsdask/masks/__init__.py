"""Cloud, cloud-shadow, snow and water masks of scenes, lazily on Dask (see ``docs/cloud-masks.md``)."""

from .apply import coarse_masks, mask_scene
from .fmask import CONFIDENCE_NODATA, fmask_band_names, fmask_scene
from .product_qa import mask_on_grid, product_qa_masks
from .summary import class_cover_pct

__all__ = ["CONFIDENCE_NODATA", "class_cover_pct", "coarse_masks", "fmask_band_names", "fmask_scene", "mask_on_grid",
           "mask_scene", "product_qa_masks"]
