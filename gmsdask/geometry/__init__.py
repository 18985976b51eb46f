"""Pixel grids and lazy resampling below the levels: every level that needs a scene's grids uses these."""

from .field_warp import DisplacementField, field_layer_lazy, warp_lazy_field
from .lazy_warp import as_dask, choose_resampling, pixel_size_in, qa_fill_value, warp_lazy, warp_variable
from .scene_grid import RESOLUTION_GROUP, grid_dataset, group_geobox, resolution_groups, scene_name, shift_geobox

__all__ = [
    "RESOLUTION_GROUP", "scene_name", "resolution_groups", "group_geobox", "shift_geobox", "grid_dataset",
    "as_dask", "choose_resampling", "pixel_size_in", "qa_fill_value", "warp_lazy", "warp_variable", "DisplacementField",
    "warp_lazy_field", "field_layer_lazy",
]
