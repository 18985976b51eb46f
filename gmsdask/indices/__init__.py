"""Sen2Chain's indices and cloud masks on gmsdask scenes and MGRS tile cubes.

- :mod:`.registry`: the 12 indices, declared once (formula, bands by common name, valid range);
- :mod:`.compute`: an index of a dataset of harmonized bands, lazily, optionally cloud-masked;
- :mod:`.cloudmasks`: CM001-CM004 per chunk on the product's own grid, carried conservatively to a target grid;
- :mod:`.cube`: masks and masked indices of cube slots computed and written (``write_indices_to_cube``);
- :mod:`.cube_store`: the Icechunk transaction storing them in the cube's slots (``store_slot_variables``);
- :mod:`.export`: the cube's indices and masks as GeoTIFFs in Sen2Chain's folder layout.
"""

from .registry import INDICES, IndexSpec, get_index, parse_indices

__all__ = ["INDICES", "IndexSpec", "get_index", "parse_indices"]
